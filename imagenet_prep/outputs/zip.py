"""The EDM2 / StyleGAN dataset zip: one uncompressed zip per split that ``ImageFolderDataset`` (NVlabs/edm2,
stylegan2-ada-pytorch, stylegan3, edm) loads as it is.

Layout of OUT (the convention of NVlabs/edm2 ``dataset_tool.py convert``):

- ``<split>.zip``: ZIP_STORED entries ``{idx // 1000:05d}/img{idx:08d}.png``, image ``idx`` (0-based) in the order
  dataset_tool gives an ImageFolder source: the sorted relative paths ``<wnid>/<file>``; then ``dataset.json`` =
  ``{"labels": [["00000/img00000000.png", 3], ...]}`` (label = the class index of this build, as in labels.txt;
  ``json.dumps`` spacing, written last, as dataset_tool does). Every entry has the same fixed timestamp
  (1980-01-01) and attributes, so the bytes depend only on the images;
- ``parts/<unit>.zip``: each unit's images (a stored zip, entries ``<wnid>/<key>.png``): the resumable unit
  output. ``finalize`` assembles ``<split>.zip`` from the parts without re-encoding (a repaired unit is
  re-assembled; the parts stay, so a later repair rebuilds only what is damaged: delete ``parts/`` to save the
  space once the build is final);
- ``<split>.csv``: ``entry,source,label,wnid,width,height`` (``source`` = ``<wnid>/<key>``, the image's name in
  the source), and the label maps (outputs/labels.py).

Images must be PNG (dataset_tool writes PNG; pixels stay lossless) from a fixed-shape resize mode (dataset_tool
refuses images of different sizes); ``--resize adm`` reproduces ``--transform=center-crop-dhariwal``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import UsageError
from ..image import OutputFormat, ResizeMode
from ..io.atomic import atomic_file, write_text_atomic
from ..records import ManifestRow, Sample, UnitResult, WorkUnit
from . import labels
from .base import CheckReport, Groups, Problems, Writer, WriterContext
from .shard_writer import ShardUnit
from .shards import check_image, check_start, present_manifests

if TYPE_CHECKING:
    from ..image import ImageResult

PARTS = "parts"
META = "dataset.json"
ENTRY_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest zip date: fixed, so the bytes depend only on the content
MANIFEST_FIELDS = ("entry", "source", "label", "wnid", "width", "height")
FIXED_SHAPE_MODES = (ResizeMode.SQUARE, ResizeMode.CENTER_CROP, ResizeMode.ADM, ResizeMode.DOWNSAMPLED)
_OPEN_PARTS = 32  # parts kept open while assembling (val mixes classes across parts)


def entry_name(idx: int) -> str:
    """dataset_tool's name of image ``idx``: ``f'{idx:08d}'[:5]/img{idx:08d}.png``."""
    return f"{idx // 1000:05d}/img{idx:08d}.png"


def stored_entry(name: str) -> zipfile.ZipInfo:
    """A ZIP_STORED entry whose header depends only on its name (fixed time, system and attributes)."""
    info = zipfile.ZipInfo(name, ENTRY_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    return info


def require_fixed_png(output: str, image: Any) -> None:
    """The image options a pixel-dataset output takes: PNG (lossless) from a fixed-shape resize mode."""
    if image.format is not OutputFormat.PNG:
        raise UsageError(f"--output {output} stores lossless pixels: add --format png.")
    if image.resize not in FIXED_SHAPE_MODES:
        modes = ", ".join(mode.value for mode in FIXED_SHAPE_MODES)
        raise UsageError(
            f"--output {output} needs images of one size: use --resize {modes} (e.g. --resize adm)."
        )


class ZipPartUnit(ShardUnit):
    """A unit's images in a stored zip streamed to a temporary file, moved into ``parts/`` on commit."""

    def __init__(self, out: str, unit: WorkUnit) -> None:
        super().__init__(out, f"{PARTS}/{unit.unit_id}.zip")
        self._zip: zipfile.ZipFile | None = None

    def _file(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED)
        return self._zip

    def add(self, sample: Sample, image: ImageResult) -> ManifestRow:
        name = f"{sample.wnid}/{sample.key}{image.extension}"
        self._file().writestr(stored_entry(name), image.data)
        return ManifestRow(f"{sample.split}/{name}", sample.label, sample.wnid, image.width, image.height)

    def commit(self) -> None:
        self._file().close()
        self._zip = None
        self._publish({self.shard: os.stat(self.tmp).st_size})

    def _close(self) -> None:
        if self._zip is not None:
            handle, self._zip = self._zip, None
            handle.close()


def assembly_order(results: Sequence[UnitResult], split: str) -> list[tuple[ManifestRow, str]]:
    """(row, unit id) of a split's images in dataset_tool's order: sorted ``<wnid>/<file>`` paths."""
    rows = [(row, result.unit_id) for result in results if result.split == split for row in result.rows]
    rows.sort(key=lambda item: item[0].path)
    return rows


class _Parts:
    """Part zips opened on demand, the last few kept open."""

    def __init__(self, out: Path) -> None:
        self._out = out
        self._open: OrderedDict[str, zipfile.ZipFile] = OrderedDict()

    def read(self, unit_id: str, name: str) -> bytes:
        part = self._open.pop(unit_id, None) or zipfile.ZipFile(self._out / PARTS / f"{unit_id}.zip")
        self._open[unit_id] = part
        while len(self._open) > _OPEN_PARTS:
            self._open.popitem(last=False)[1].close()
        return part.read(name)

    def close(self) -> None:
        for part in self._open.values():
            part.close()
        self._open.clear()


@dataclass(frozen=True)
class ZipWriter(Writer):
    """The EDM2 / StyleGAN dataset zip (no options: the convention fixes the layout)."""

    name: ClassVar[str] = "zip"
    needs: ClassVar[dict[str, object]] = {"resize": "square", "format": "png"}

    def accepts(self, image: Any) -> None:
        require_fixed_png(self.name, image)

    def group(self, split: str, groups: Groups) -> Groups:
        return groups  # any grouping: the order is made when the zip is assembled

    def prepare(self, out: Path, context: WriterContext) -> None:
        (out / PARTS).mkdir(parents=True, exist_ok=True)

    def work_dirs(self, units: Sequence[WorkUnit]) -> list[str]:
        return [PARTS]

    def managed_entries(self, out: Path) -> list[Path]:
        names = (PARTS, "train.zip", "val.zip", *labels.LABEL_FILES, "train.csv", "val.csv", "build.json")
        return [out / name for name in names]

    def open_unit(self, out: str, unit: WorkUnit) -> ZipPartUnit:
        return ZipPartUnit(out, unit)

    def finalize(self, out: Path, context: WriterContext, results: Sequence[UnitResult]) -> None:
        labels.write_class_set_maps(out, context.class_set)
        for split in context.splits:
            ordered = assembly_order(results, split)
            parts = _Parts(out)
            entries: list[list[Any]] = []
            manifest = io.StringIO()
            writer = csv.writer(manifest, lineterminator="\n")
            writer.writerow(MANIFEST_FIELDS)
            try:
                with atomic_file(out / f"{split}.zip") as handle, zipfile.ZipFile(handle, "w") as archive:
                    for idx, (row, unit_id) in enumerate(ordered):
                        name = entry_name(idx)
                        inner = row.path.split("/", 1)[1]  # <wnid>/<key>.png in the part
                        archive.writestr(stored_entry(name), parts.read(unit_id, inner))
                        entries.append([name, row.label])
                        source = inner.rsplit(".", 1)[0]
                        writer.writerow((name, source, row.label, row.wnid, row.width, row.height))
                    archive.writestr(stored_entry(META), json.dumps({"labels": entries}))
            finally:
                parts.close()
            write_text_atomic(out / f"{split}.csv", manifest.getvalue())

    def check(self, out: Path, decode: bool, progress: Callable[[int], None] | None) -> CheckReport:
        return check_zip(out, decode, progress)


def read_manifest(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def check_zip(out: Path, decode: bool = False, progress: Callable[[int], None] | None = None) -> CheckReport:
    """Each split's zip against its manifest: entry names and order, every entry stored with a matching CRC,
    dataset.json's labels (and labels.txt's), one square image size, the images readable (``decode``: fully);
    the parts against the sizes their units recorded."""
    out = Path(out)
    problems = Problems()
    label_of = check_start(out, problems)
    checked = 0
    for split, manifest in present_manifests(out):
        path = out / f"{split}.zip"
        rows = read_manifest(manifest)
        try:
            with zipfile.ZipFile(path) as archive:
                checked += _check_archive(archive, path.name, rows, label_of, decode, problems, progress)
        except (OSError, zipfile.BadZipFile) as exc:
            problems.add(f"{path.name}: missing or not a readable zip ({exc})")
    return CheckReport(checked, tuple(problems.items), problems.count)


def _check_archive(
    archive: zipfile.ZipFile,
    zip_name: str,
    rows: list[dict[str, str]],
    label_of: dict[str, int],
    decode: bool,
    problems: Problems,
    progress: Callable[[int], None] | None,
) -> int:
    names = [entry_name(idx) for idx in range(len(rows))]
    if archive.namelist() != [*names, META]:
        problems.add(
            f"{zip_name}: its entries are not {len(rows)} images named 00000/img00000000.png ... + {META}"
        )
    if [row["entry"] for row in rows] != names:
        problems.add(f"{zip_name}: the manifest's entries are not in order")
    paths = [f"{row['source']}.png" for row in rows]  # dataset_tool sorts the file paths, extension included
    if paths != sorted(paths):
        problems.add(f"{zip_name}: images are not in sorted <wnid>/<file> order")
    wanted, shapes = set(names), set()
    for info in archive.infolist():
        if info.compress_type != zipfile.ZIP_STORED:
            problems.add(f"{zip_name}: {info.filename} is compressed (the convention is ZIP_STORED)")
        try:
            data = archive.read(info)  # zipfile checks the CRC once the entry is read
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            problems.add(f"{zip_name}: {info.filename} cannot be read ({exc})")
            continue
        if info.filename == META:
            _check_meta(data, zip_name, names, rows, problems)
            continue
        if info.filename not in wanted:
            continue
        row = rows[int(info.filename[-12:-4])]  # img<idx:08d>.png
        if label_of.get(row["wnid"]) != int(row["label"]):
            problems.add(f"{zip_name}: {info.filename} label {row['label']} differs from labels.txt")
        check_image(data, row, f"{zip_name}/{info.filename}", decode, problems)
        shapes.add((row["width"], row["height"]))
        if progress is not None:
            progress(1)
    if len(shapes) > 1 or any(width != height for width, height in shapes):
        problems.add(f"{zip_name}: images are not all one square size ({sorted(shapes)[:3]})")
    return len(rows)


def _check_meta(
    data: bytes, zip_name: str, names: list[str], rows: list[dict[str, str]], problems: Problems
) -> None:
    try:
        meta = json.loads(data)["labels"]
    except (ValueError, KeyError, TypeError) as exc:
        problems.add(f"{zip_name}: {META} is not {{'labels': [...]}} ({exc})")
        return
    expected = [[name, int(row["label"])] for name, row in zip(names, rows, strict=True)]
    if meta != expected:
        problems.add(f"{zip_name}: {META} labels differ from the images and the manifest")
