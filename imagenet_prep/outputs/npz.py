"""Downsampled ImageNet batches in the format of Chrabaszcz et al. 2017 ("A Downsampled Variant of ImageNet as an
Alternative to the CIFAR datasets"; PatrykChrabaszcz/Imagenet32_Scripts ``image2numpy_imagenet_train.py`` and
``_val.py``; the Imagenet32/64 ``.npz`` files and TFDS ``imagenet_resized`` read them).

Layout of OUT:

- ``train_data_batch_1.npz`` .. ``train_data_batch_10.npz``: ``data`` (N x 3*S*S uint8, planar: the R plane, then
  G, then B, each row-major, rows top to bottom), ``labels`` (int64, 1..1000: the class's ILSVRC2012_ID, the order
  of the devkit and of ``map_clsloc.txt``), ``mean`` (float64, 3*S*S: the mean image of the whole train split
  built, the same in every batch); the original split: batches 1-9 hold ``N // 10`` rows each, batch 10 the rest.
  Rows in file order: classes by ILSVRC2012_ID (the original's folder loop), files by name within a class (the
  original then shuffled with an unseeded permutation, which nobody can reproduce: shuffle when loading);
- ``val_data.npz``: ``data`` and ``labels``, files by name;
- ``parts/<unit>.u8``: each unit's rows (raw planar bytes, manifest order): the resumable unit output;
  ``finalize`` assembles the batches from them (no image is decoded again). Delete ``parts/`` once final;
- ``<split>.csv``: ``file,row,source,label,wnid,width,height`` and the label maps (outputs/labels.py; their index
  is the sorted one, ``classes.csv`` has both).

Each ``.npz`` is a zip of ``.npy`` members as ``np.savez`` writes them (stored, zip64 headers, ``data``,
``labels``, ``mean`` in that order) but with one fixed timestamp (``np.savez`` stamps the current time), so the
bytes depend only on the content; ``np.load`` reads it as it is. Images: PNG (lossless) of one size; the
configs use ``--resize downsampled --filter box`` (the published files' resize, pixel for pixel).
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

from ..errors import UsageError
from ..io.atomic import write_text_atomic
from ..records import ManifestRow, Sample, UnitResult, WorkUnit
from ..taxonomy import classes
from . import labels
from .base import CheckReport, Groups, Problems, Writer, WriterContext
from .shard_writer import ShardUnit
from .shards import check_start, present_manifests
from .zip import PARTS, read_manifest, require_fixed_png, stored_entry

if TYPE_CHECKING:
    import numpy as np

    from ..image import ImageResult


TRAIN_BATCHES = 10
MANIFEST_FIELDS = ("file", "row", "source", "label", "wnid", "width", "height")
_CHUNK_ROWS = 4096  # rows copied at a time while assembling (a few MB at 64x64)


def batch_files(split: str) -> list[str]:
    if split == "train":
        return [f"train_data_batch_{i}.npz" for i in range(1, TRAIN_BATCHES + 1)]
    return [f"{split}_data.npz"]


def batch_bounds(total: int) -> list[tuple[int, int]]:
    """The original split of ``total`` train rows: nine batches of ``total // 10``, the tenth the rest."""
    size = total // TRAIN_BATCHES
    starts = [i * size for i in range(TRAIN_BATCHES)]
    return [(start, starts[i + 1] if i + 1 < TRAIN_BATCHES else total) for i, start in enumerate(starts)]


def planar(data: bytes) -> bytes:
    """An encoded RGB image as one row: all R, then G, then B, each plane row-major."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)).tobytes()


class NpzPartUnit(ShardUnit):
    """A unit's rows, raw, streamed to a temporary file and moved into ``parts/`` on commit."""

    def __init__(self, out: str, unit: WorkUnit) -> None:
        super().__init__(out, f"{PARTS}/{unit.unit_id}.u8")
        self._handle: BinaryIO | None = None
        self._size = 0

    def _file(self) -> BinaryIO:
        if self._handle is None:
            self._handle = open(self.tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        return self._handle

    def add(self, sample: Sample, image: ImageResult) -> ManifestRow:
        row = planar(image.data)
        self._file().write(row)
        self._size += len(row)
        return ManifestRow(
            f"{sample.split}/{sample.wnid}/{sample.key}", sample.label, sample.wnid, image.width, image.height
        )

    def commit(self) -> None:
        handle = self._file()
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        self._handle = None
        self._publish({self.shard: self._size})

    def _close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()


Located = list[tuple[ManifestRow, str, int]]  # (row, unit id, row number in the unit's part)


def _order(results: Sequence[UnitResult], split: str) -> Located:
    """(row, unit id, row number in its part) in file order: train by (ILSVRC2012_ID, name), others by name."""
    rows = [
        (row, result.unit_id, position)
        for result in results
        if result.split == split
        for position, row in enumerate(result.rows)
    ]
    if split == "train":
        rows.sort(key=lambda item: (classes.by_wnid(item[0].wnid).ilsvrc2012_id, item[0].path))
    else:
        rows.sort(key=lambda item: item[0].path.rsplit("/", 1)[1])
    return rows


def write_npz(path: Path, members: Iterable[tuple[str, Any, Callable[[BinaryIO], None] | None]]) -> None:
    """An ``.npz`` as np.savez writes it, with a fixed timestamp; each member ``(name, array, stream)``: the array
    itself, or (``stream`` given) its .npy header dict, whose data ``stream(handle)`` then writes."""
    import numpy as np

    from ..io.atomic import atomic_file

    with atomic_file(path) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
        for name, array, stream in members:
            with archive.open(stored_entry(f"{name}.npy"), "w", force_zip64=True) as member:
                if stream is None:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
                else:
                    np.lib.format.write_array_header_1_0(member, array)
                    stream(member)  # type: ignore[arg-type]  # a zip member: a binary writer


def _chunks(ordered: Located, parts: dict[str, np.ndarray], start: int, end: int) -> Iterator[np.ndarray]:
    """Rows ``start:end`` of ``ordered``, gathered from the parts a few thousand at a time."""
    import numpy as np

    for first in range(start, end, _CHUNK_ROWS):
        chunk = ordered[first : min(end, first + _CHUNK_ROWS)]
        yield np.stack([parts[unit_id][position] for _, unit_id, position in chunk])


def _writer(
    parts: dict[str, np.ndarray], ordered: Located, start: int, end: int
) -> Callable[[BinaryIO], None]:
    def stream(handle: BinaryIO) -> None:
        for chunk in _chunks(ordered, parts, start, end):
            handle.write(chunk.tobytes())

    return stream


def assemble_split(out: Path, split: str, ordered: Located) -> None:
    """A split's batch files and manifest from the parts (rows in ``ordered``'s order)."""
    import numpy as np

    side = ordered[0][0].width if ordered else 0
    row_bytes = 3 * side * side
    parts = {
        unit_id: np.memmap(out / PARTS / f"{unit_id}.u8", np.uint8, "r").reshape(-1, row_bytes)
        for unit_id in sorted({unit_id for _, unit_id, _ in ordered})
    }
    ids = np.array([classes.by_wnid(row.wnid).ilsvrc2012_id for row, _, _ in ordered], np.int64)
    mean = None
    if split == "train":
        total = np.zeros(row_bytes, np.int64)
        for chunk in _chunks(ordered, parts, 0, len(ordered)):
            total += chunk.sum(axis=0, dtype=np.int64)
        # integer sums are exact, so this equals the original's np.mean(x, axis=0) (float64)
        mean = total / len(ordered) if ordered else np.zeros(row_bytes)
    bounds = batch_bounds(len(ordered)) if split == "train" else [(0, len(ordered))]
    manifest = io.StringIO()
    writer = csv.writer(manifest, lineterminator="\n")
    writer.writerow(MANIFEST_FIELDS)
    for name, (start, end) in zip(batch_files(split), bounds, strict=True):
        header = {"descr": "|u1", "fortran_order": False, "shape": (end - start, row_bytes)}
        members: list[tuple[str, Any, Callable[[BinaryIO], None] | None]] = [
            ("data", header, _writer(parts, ordered, start, end)),
            ("labels", ids[start:end], None),
        ]
        if mean is not None:
            members.append(("mean", mean, None))
        write_npz(out / name, members)
        for number, (row, _, _) in enumerate(ordered[start:end]):
            source = row.path.split("/", 1)[1]
            writer.writerow((name, number, source, ids[start + number], row.wnid, row.width, row.height))
    write_text_atomic(out / f"{split}.csv", manifest.getvalue())


@dataclass(frozen=True)
class NpzWriter(Writer):
    """Downsampled-ImageNet batches (no options: the published format fixes the layout)."""

    name: ClassVar[str] = "npz"
    needs: ClassVar[dict[str, object]] = {"resize": "downsampled", "filter": "box", "format": "png"}

    def accepts(self, image: Any) -> None:
        require_fixed_png(self.name, image)

    def group(self, split: str, groups: Groups) -> Groups:
        return groups  # any grouping: the order is made when the batches are assembled

    def prepare(self, out: Path, context: WriterContext) -> None:
        outside = [wnid for wnid in context.wnids if not classes.is_imagenet1k(wnid)]
        if outside:
            raise UsageError(
                f"--output npz labels images by their ILSVRC2012_ID (1..1000); {outside[0]} and "
                f"{len(outside) - 1} more classes are outside ImageNet-1K: use another output."
            )
        (out / PARTS).mkdir(parents=True, exist_ok=True)

    def work_dirs(self, units: Sequence[WorkUnit]) -> list[str]:
        return [PARTS]

    def managed_entries(self, out: Path) -> list[Path]:
        names = (PARTS, *batch_files("train"), *batch_files("val"), *labels.LABEL_FILES)
        return [out / name for name in (*names, "train.csv", "val.csv", "build.json")]

    def open_unit(self, out: str, unit: WorkUnit) -> NpzPartUnit:
        return NpzPartUnit(out, unit)

    def finalize(self, out: Path, context: WriterContext, results: Sequence[UnitResult]) -> None:
        labels.write_class_set_maps(out, context.class_set)
        for split in context.splits:
            assemble_split(out, split, _order(results, split))

    def check(self, out: Path, decode: bool, progress: Callable[[int], None] | None) -> CheckReport:
        return check_npz(out, decode, progress)


def check_npz(out: Path, decode: bool = False, progress: Callable[[int], None] | None = None) -> CheckReport:
    """Each batch against the manifest: readable by np.load (every member's CRC), dtypes and shapes, labels
    (the ILSVRC2012_IDs of the manifest's wnids), the train mean against a recomputed one; the parts against
    the sizes their units recorded."""
    import numpy as np

    out = Path(out)
    problems = Problems()
    check_start(out, problems)
    checked = 0
    for split, manifest in present_manifests(out):
        by_file: dict[str, list[dict[str, str]]] = {}
        for row in read_manifest(manifest):
            by_file.setdefault(row["file"], []).append(row)
        total, count, means = None, 0, {}
        for name in batch_files(split):
            rows = by_file.get(name, [])
            try:
                with np.load(out / name, allow_pickle=False) as batch:
                    data, ids = batch["data"], batch["labels"]
                    means[name] = batch["mean"] if split == "train" else None
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                problems.add(f"{name}: missing or unreadable ({exc})")
                continue
            side = int(rows[0]["width"]) if rows else None
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[0] != len(rows):
                problems.add(
                    f"{name}: data is {data.dtype} {data.shape}, the manifest lists {len(rows)} rows"
                )
            elif side is not None and data.shape[1] != 3 * side * side:
                problems.add(f"{name}: rows of {data.shape[1]} values, expected 3 x {side} x {side}")
            wanted = [classes.by_wnid(row["wnid"]).ilsvrc2012_id for row in rows]
            if ids.tolist() != wanted or [int(row["label"]) for row in rows] != wanted:
                problems.add(f"{name}: labels differ from the manifest's classes' ILSVRC2012_IDs")
            if split == "train" and data.ndim == 2:
                sums = data.sum(axis=0, dtype=np.int64)
                total = sums if total is None else total + sums if total.shape == sums.shape else total
                count += data.shape[0]
            checked += len(rows)
            if progress is not None:
                progress(len(rows))
        if split == "train" and total is not None and count:
            recomputed = total / count
            for name, mean in means.items():
                if mean is None or mean.shape != recomputed.shape or not np.array_equal(mean, recomputed):
                    problems.add(f"{name}: mean is not the mean image of the train batches")
    return CheckReport(checked, tuple(problems.items), problems.count)
