"""The MDS output: MosaicML streaming's format, which ``streaming.StreamingDataset(local=OUT/<split>)`` reads.

Layout of OUT (mosaicml/streaming ``streaming/base/format/mds/writer.py`` and ``streaming/vision/convert/
imagenet.py``, whose columns this output keeps):

- ``<split>/shard.%05d.mds`` (splits ``train`` and ``val``, as the conversion script names them): MDS "joint"
  shards of three columns, in MDSWriter's sorted order: ``i`` (encoding ``int``: int64, 8 bytes; the sample's
  planned position in its split, as the script's index into its sorted file list), ``x`` (encoding ``jpeg``: the
  image file's bytes, as the script passes them; decoded by PIL, so a PNG/WebP build reads too) and ``y``
  (encoding ``int``: the label, labels.txt's index). A shard is ``u32 samples``, ``u32 offsets[samples + 1]``
  (from the file's start), the shard config as sorted-keys JSON, then each sample: ``u32`` size of each
  variable-size column (``x``), then the columns' bytes;
- ``<split>/index.json``: ``{"shards": [...], "version": 2}`` (sorted keys), one entry per non-empty shard:
  ``column_encodings``, ``column_names``, ``column_sizes``, ``compression`` (null), ``format`` ("mds"),
  ``hashes`` ([]), ``raw_data`` (``basename``, ``bytes``, ``hashes`` {}), ``samples``, ``size_limit`` (the
  shard byte size asked for, or null for a sample count), ``version`` (2), ``zip_data`` (null);
- the label maps (outputs/labels.py) and ``<split>.csv`` manifests at the top of OUT.

MDSWriter is one process; here each shard is a work unit (any worker count, resumable) and ``finalize`` writes
the merged index from the units' results. The sample positions reach the workers through
``.imagenet-prep/mds-starts.json`` (written by ``prepare``).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from ..build_options import OUTPUT_SPLITS
from ..image import ImageResult
from ..io.atomic import write_text_atomic
from ..records import ManifestRow, Sample, UnitResult, WorkUnit
from .base import CheckReport, Problems, WriterContext
from .shard_writer import ShardUnit, ShardWriter
from .shards import (
    check_image,
    check_start,
    parse_shard_size,
    present_manifests,
    read_shard_manifest,
)

DEFAULT_SHARD_SIZE = "64MiB"  # MDSWriter's default size_limit (1 << 26)
STARTS_FILE = ".imagenet-prep/mds-starts.json"
INDEX = "index.json"
COLUMNS = {"i": "int", "x": "jpeg", "y": "int"}
_NAMES = sorted(COLUMNS)
_SIZES: list[int | None] = [8 if COLUMNS[name] == "int" else None for name in _NAMES]
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")


def shard_path(unit_id: str) -> str:
    split, _, index = unit_id.rpartition("-")
    return f"{split}/shard.{index}.mds"


def shard_config(size_limit: int | None) -> dict[str, Any]:
    """MDSWriter.get_config(): what each shard embeds and each index entry repeats."""
    return {
        "column_encodings": [COLUMNS[name] for name in _NAMES],
        "column_names": list(_NAMES),
        "column_sizes": list(_SIZES),
        "compression": None,
        "format": "mds",
        "hashes": [],
        "size_limit": size_limit,
        "version": 2,
    }


def encode_shard(samples: Sequence[bytes], config: bytes) -> bytes:
    """MDSWriter.encode_joint_shard: count, offsets (from the file's start), config, samples."""
    head = 4 + 4 * (len(samples) + 1) + len(config)
    offsets = [head]
    for sample in samples:
        offsets.append(offsets[-1] + len(sample))
    return struct.pack(f"<I{len(offsets)}I", len(samples), *offsets) + config + b"".join(samples)


def encode_sample(position: int, image: bytes, label: int) -> bytes:
    """MDSWriter.encode_sample for columns i, x, y: the size of x, then i, x, y."""
    return _U32.pack(len(image)) + _I64.pack(position) + image + _I64.pack(label)


def decode_shard(data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A shard's config and samples ({"i", "x", "y"}); ValueError when its structure does not hold."""
    (count,) = _U32.unpack_from(data, 0)
    offsets = struct.unpack_from(f"<{count + 1}I", data, 4)
    config_end = offsets[0]
    config = json.loads(data[4 + 4 * (count + 1) : config_end])
    if offsets[-1] != len(data):
        raise ValueError(f"the offsets end at {offsets[-1]}, the file at {len(data)}")
    samples = []
    for start, end in zip(offsets, offsets[1:], strict=False):
        (size,) = _U32.unpack_from(data, start)
        i, x_start = _I64.unpack_from(data, start + 4)[0], start + 12
        if x_start + size + 8 != end:
            raise ValueError(f"a sample at {start} does not fill its {end - start} bytes")
        (label,) = _I64.unpack_from(data, x_start + size)
        samples.append({"i": i, "x": data[x_start : x_start + size], "y": label})
    return config, samples


class MdsUnit(ShardUnit):
    """One shard: samples are encoded as they come (the offsets table precedes them, so the shard is written
    whole at commit, from a temporary file of the encoded samples)."""

    def __init__(self, out: str, unit: WorkUnit, size_limit: int | None) -> None:
        super().__init__(out, shard_path(unit.unit_id))
        self._out = out
        self._unit = unit
        self._size_limit = size_limit
        self._start: int | None = None
        self._position = 0
        self._handle: BinaryIO | None = None
        self._sizes: list[int] = []

    def _spool(self) -> BinaryIO:
        if self._handle is None:
            with open(f"{self._out}/{STARTS_FILE}", encoding="utf-8") as handle:
                self._start = json.load(handle)[self._unit.unit_id]
            self._handle = open(self.tmp + ".samples", "w+b")  # noqa: SIM115 - closed in commit/abort
        return self._handle

    def add(self, sample: Sample, image: ImageResult) -> ManifestRow:
        spool = self._spool()
        assert self._start is not None
        # i: the shard's planned start in its split + the position in the shard (unique in the split; a skipped
        # image shortens only its own shard).
        encoded = encode_sample(self._start + self._position, image.data, sample.label)
        spool.write(encoded)
        self._sizes.append(len(encoded))
        self._position += 1
        return ManifestRow(f"{self.shard}/{sample.key}", sample.label, sample.wnid, image.width, image.height)

    def commit(self) -> None:
        spool = self._spool()
        config = json.dumps(shard_config(self._size_limit), sort_keys=True).encode("utf-8")
        head = 4 + 4 * (len(self._sizes) + 1) + len(config)
        offsets = [head]
        for size in self._sizes:
            offsets.append(offsets[-1] + size)
        spool.seek(0)
        with open(self.tmp, "wb") as handle:
            handle.write(struct.pack(f"<I{len(offsets)}I", len(self._sizes), *offsets) + config)
            while chunk := spool.read(1 << 20):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        self._close()
        self._publish({self.shard: offsets[-1]})

    def _close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()
            os.unlink(handle.name)


@dataclass(frozen=True)
class MdsWriter(ShardWriter):
    """MosaicML streaming MDS shards with a merged index per split (``"64MiB"`` of source bytes per shard by
    default; the options: ShardWriter)."""

    name: ClassVar[str] = "mds"
    default_shard_size: ClassVar[str] = DEFAULT_SHARD_SIZE

    @staticmethod
    def unit_id(split: str, index: int, total: int) -> str:
        return f"{split}-{index:05d}"

    def size_limit(self) -> int | None:
        """index.json's ``size_limit``: the shard byte size asked for (null for a sample count)."""
        size = parse_shard_size(self.shard_size, self.default_shard_size)
        return size.count if size.in_bytes else None

    def prepare(self, out: Path, plan: WriterContext) -> None:
        starts: dict[str, int] = {}
        totals: dict[str, int] = {}
        for unit in plan.units:
            starts[unit.unit_id] = totals.get(unit.split, 0)
            totals[unit.split] = starts[unit.unit_id] + unit.samples
        for split in plan.splits:
            (out / split).mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / STARTS_FILE, json.dumps(starts) + "\n")

    def work_dirs(self, units: Sequence[WorkUnit]) -> list[str]:
        return sorted({unit.split for unit in units})

    def shard_entries(self, out: Path) -> list[Path]:
        return [out / split for split in OUTPUT_SPLITS]

    def open_unit(self, out: str, unit: WorkUnit) -> MdsUnit:
        return MdsUnit(out, unit, self.size_limit())

    def finalize_format(self, out: Path, plan: WriterContext, results: Sequence[UnitResult]) -> None:
        """Each split's merged index.json (MDSWriter's, over every worker's shards)."""
        for split in plan.splits:
            shards = []
            for result in results:
                if result.split != split or not result.rows:
                    continue  # an empty shard (every image skipped) is left out of the index
                path = shard_path(result.unit_id)
                entry = {
                    "samples": len(result.rows),
                    "raw_data": {
                        "basename": Path(path).name,
                        "bytes": dict(result.files)[path],
                        "hashes": {},
                    },
                    "zip_data": None,
                    **shard_config(self.size_limit()),
                }
                shards.append(entry)
            write_text_atomic(
                out / split / INDEX, json.dumps({"shards": shards, "version": 2}, sort_keys=True)
            )

    def check(self, out: Path, decode: bool, progress: Callable[[int], None] | None) -> CheckReport:
        return check_mds(out, decode, progress)


def check_mds(out: Path, decode: bool = False, progress: Callable[[int], None] | None = None) -> CheckReport:
    """Every shard the manifests list: structure, config, columns i/x/y against the manifest rows, image sizes
    (``decode``: full decodes); index.json's entries against the shards; no shard is unlisted."""
    out = Path(out)
    problems = Problems()
    label_of = check_start(out, problems)
    checked = 0
    for split, manifest in present_manifests(out):
        try:
            index = json.loads((out / split / INDEX).read_text(encoding="utf-8"))
            entries = {entry["raw_data"]["basename"]: entry for entry in index["shards"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.add(f"{split}/{INDEX}: missing or unreadable ({exc})")
            entries = {}
        by_shard = read_shard_manifest(manifest)
        seen: set[int] = set()
        for shard, rows in by_shard.items():
            try:
                data = (out / shard).read_bytes()
                config, samples = decode_shard(data)
            except (OSError, ValueError, struct.error) as exc:
                problems.add(f"{shard}: cannot be read as an MDS shard ({exc})")
                continue
            entry = entries.pop(Path(shard).name, None)
            if (
                entry is None
                or entry.get("samples") != len(samples)
                or entry["raw_data"].get("bytes") != len(data)
            ):
                problems.add(f"{shard}: {split}/{INDEX} does not list it with its samples and bytes")
            if {k: config.get(k) for k in ("column_names", "column_encodings", "column_sizes")} != {
                k: shard_config(None)[k] for k in ("column_names", "column_encodings", "column_sizes")
            }:
                problems.add(f"{shard}: its columns differ from i/x/y (int/jpeg/int)")
            if len(samples) != len(rows):
                problems.add(f"{shard}: {len(samples)} samples, {split}.csv lists {len(rows)}")
            for position, (sample, row) in enumerate(zip(samples, rows, strict=False)):
                where = f"{shard}#{position}"
                label = int(row["label"])
                if sample["y"] != label or label_of.get(row["wnid"]) != label:
                    problems.add(f"{where}: y {sample['y']} differs from the manifest/labels.txt ({label})")
                if sample["i"] in seen:
                    problems.add(f"{where}: i {sample['i']} repeats in {split}")
                seen.add(sample["i"])
                check_image(sample["x"], row, where, decode, problems)
                checked += 1
                if progress is not None:
                    progress(1)
        for basename in sorted(entries):
            problems.add(f"{split}/{INDEX} lists {basename}, which {split}.csv does not")
        listed = {Path(shard).name for shard in by_shard}
        for path in sorted((out / split).glob("shard.*.mds")):
            if path.name not in listed:
                problems.add(f"{split}/{path.name}: not in the manifests")
    return CheckReport(checked, tuple(problems.items), problems.count)
