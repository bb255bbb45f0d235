"""The TFRecord output: the TPU / tf-models ImageNet layout that tf.data, the TPU reference models and DALI read.

Layout of OUT (tensorflow/tpu ``tools/datasets/imagenet_to_gcs.py``, tensorflow/models
``research/inception/inception/data/build_imagenet_data.py``):

- ``train-%05d-of-%05d`` and ``validation-%05d-of-%05d``: TFRecord files (outputs/tfexample.py), each record a
  ``tf.train.Example`` with ``image/encoded`` (the image bytes), ``image/format`` (``JPEG``/``PNG``/``WEBP``),
  ``image/class/label`` (the label + 1: 1..1000 for the 1K, 0 is the scripts' unused "background"),
  ``image/class/synset`` (the wnid), ``image/class/text`` (the class words, ``tench, Tinca tinca``),
  ``image/filename`` (``<key><ext>``, e.g. ``n01440764_10026.JPEG``), ``image/height``, ``image/width``,
  ``image/colorspace`` (``RGB``), ``image/channels`` (3); a ``--boxes`` build adds
  ``image/object/bbox/{xmin,ymin,xmax,ymax}`` (floats normalised to 0..1 by the output image's size; empty lists
  for an image without boxes) and ``image/object/bbox/label`` (the image's label + 1 per box, as the Inception
  script writes);
- ``<shard>.idx`` beside each shard: DALI's ``tfrecord2idx`` index (``<offset> <size>`` per record);
- the label maps (outputs/labels.py: ``labels.txt`` index = TFRecord label - 1) and ``<split>.csv`` manifests.

Shards: ``--shard-size`` as for wds; by default 1252 train / 391 val samples per shard, which cuts the full
train and val sets into the scripts' 1024 and 128 shards (a subset gets proportionally fewer). Each shard is
one work unit: records stream to a temporary file, ``commit`` writes the index and moves the shard into place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from ..build_options import OUTPUT_SPLITS
from ..image import ImageResult
from ..io.atomic import write_bytes_atomic, write_text_atomic
from ..records import ClassSet, ManifestRow, Sample, UnitResult, WorkUnit
from . import tfexample
from .base import CheckReport, Groups, Problems, WriterContext
from .shard_writer import ShardUnit, ShardWriter
from .shards import (
    check_image,
    check_start,
    parse_shard_size,
    plan_shards,
    present_manifests,
    published_split,
    read_shard_manifest,
)

#: Samples per shard when --shard-size is not given: the full sets then make the TPU scripts' 1024 / 128 shards.
DEFAULT_PER_SHARD = {"train": 1252, "val": 391}
CLASSES_FILE = ".imagenet-prep/tfrecord-classes.json"
FORMATS = {".JPEG": b"JPEG", ".png": b"PNG", ".webp": b"WEBP"}
_WRITE_BUFFER = 1 << 20


def split_name(split: str) -> str:
    """The file name of a split (``val`` -> ``validation``, as the TPU scripts and TFDS name it)."""
    return published_split(split)


def class_texts(class_set: ClassSet) -> list[str]:
    """Per label, the class words (``tench, Tinca tinca``: the TPU scripts' ``image/class/text``); a class
    outside the 1K bundle has its label space's name."""
    from ..taxonomy import classes

    texts = []
    for wnid, name in zip(class_set.wnids, class_set.names, strict=True):
        try:
            texts.append(classes.by_wnid(wnid).words)
        except Exception:  # noqa: BLE001 - not a 1K class: the label space's own name
            texts.append(name)
    return texts


class RecordUnit(ShardUnit):
    """Streams one TFRecord shard to a temporary file; remembers each record's offset and framed size."""

    def __init__(self, out: str, shard: str) -> None:
        super().__init__(out, shard)
        self._out = out
        self._handle: BinaryIO | None = None  # opened on first write: inside the worker's error handling
        self._offset = 0
        self.records: list[tuple[int, int]] = []

    def write(self, payload: bytes) -> None:
        if self._handle is None:
            self._handle = open(self.tmp, "wb", buffering=_WRITE_BUFFER)  # noqa: SIM115 - closed in commit/abort
        record = tfexample.frame(payload)
        self._handle.write(record)
        self.records.append((self._offset, len(record)))
        self._offset += len(record)

    def finish(self) -> int:
        """Flush, fsync and close the shard (an empty shard is an empty file); its size."""
        import os

        if self._handle is None:
            self._handle = open(self.tmp, "wb")  # noqa: SIM115 - closed below
        handle, self._handle = self._handle, None
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        return self._offset

    def _close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()


class TfrecordUnit(RecordUnit):
    def __init__(self, out: str, unit: WorkUnit) -> None:
        super().__init__(out, unit.unit_id)
        self._meta: dict[str, Any] | None = None

    def meta(self) -> dict[str, Any]:
        if self._meta is None:
            with open(f"{self._out}/{CLASSES_FILE}", encoding="utf-8") as handle:
                self._meta = json.load(handle)
        return self._meta

    def add(self, sample: Sample, image: ImageResult) -> ManifestRow:
        meta = self.meta()
        self.write(tpu_example(sample, image, meta["texts"][sample.label], meta["boxes"]))
        return ManifestRow(f"{self.shard}/{sample.key}", sample.label, sample.wnid, image.width, image.height)

    def commit(self) -> None:
        size = self.finish()
        index = tfexample.dali_index(self.records)
        write_bytes_atomic(f"{self.final}.idx", index)
        self._publish({self.shard: size, f"{self.shard}.idx": len(index)})


def tpu_example(sample: Sample, image: ImageResult, text: str, boxes: bool) -> bytes:
    """The TPU / Inception scripts' Example of one image (see the module docstring)."""
    label = sample.label + 1
    features: dict[str, tuple[str, Sequence[Any]]] = {
        "image/encoded": ("bytes", [image.data]),
        "image/format": ("bytes", [FORMATS[image.extension]]),
        "image/class/label": ("int64", [label]),
        "image/class/synset": ("bytes", [sample.wnid]),
        "image/class/text": ("bytes", [text]),
        "image/filename": ("bytes", [f"{sample.key}{image.extension}"]),
        "image/height": ("int64", [image.height]),
        "image/width": ("int64", [image.width]),
        "image/colorspace": ("bytes", [b"RGB"]),
        "image/channels": ("int64", [3]),
    }
    if boxes:
        # Output pixels (the worker mapped them) normalised by the output size, clamped to [0, 1].
        def norm(value: float, size: int) -> float:
            return min(max(value / size, 0.0), 1.0)

        kept = list(sample.boxes)
        features["image/object/bbox/xmin"] = ("float", [norm(b[1], image.width) for b in kept])
        features["image/object/bbox/ymin"] = ("float", [norm(b[2], image.height) for b in kept])
        features["image/object/bbox/xmax"] = ("float", [norm(b[3], image.width) for b in kept])
        features["image/object/bbox/ymax"] = ("float", [norm(b[4], image.height) for b in kept])
        features["image/object/bbox/label"] = ("int64", [label] * len(kept))
    return tfexample.encode_example(features)


def default_shard_group(
    writer: ShardWriter, split: str, groups: Groups, name_of: Callable[[str, int, int], str]
) -> Groups:
    """Shards of ``--shard-size``, or by default the TPU scripts' per-split sample counts."""
    if writer.shard_size is None:
        size = parse_shard_size(
            DEFAULT_PER_SHARD.get(split, DEFAULT_PER_SHARD["train"]), "1", writer.min_shards
        )
    else:
        size = parse_shard_size(writer.shard_size, writer.default_shard_size, writer.min_shards)
    return plan_shards(split, groups, size, writer.shuffle, writer.shuffle_seed, name_of)


@dataclass(frozen=True)
class TfrecordWriter(ShardWriter):
    """TFRecord shards in the TPU / tf-models layout with DALI indexes (the options: ShardWriter)."""

    name: ClassVar[str] = "tfrecord"
    default_shard_size: ClassVar[str] = str(DEFAULT_PER_SHARD["train"])

    def __post_init__(self) -> None:
        super().__post_init__()
        tfexample.require(self.name)  # a missing extra fails before any planning

    @staticmethod
    def unit_id(split: str, index: int, total: int) -> str:
        return f"{split_name(split)}-{index:05d}-of-{total:05d}"

    def group(self, split: str, groups: Groups) -> Groups:
        return default_shard_group(self, split, groups, self.unit_id)

    def prepare(self, out: Path, plan: WriterContext) -> None:
        meta = {"texts": class_texts(plan.class_set), "boxes": plan.boxes}
        write_text_atomic(out / CLASSES_FILE, json.dumps(meta, ensure_ascii=False) + "\n")

    def shard_entries(self, out: Path) -> list[Path]:
        return sorted(p for name in map(published_split, OUTPUT_SPLITS) for p in out.glob(f"{name}-*-of-*"))

    def open_unit(self, out: str, unit: WorkUnit) -> TfrecordUnit:
        return TfrecordUnit(out, unit)

    def finalize_format(self, out: Path, plan: WriterContext, results: Sequence[UnitResult]) -> None:
        """Nothing more: the shards, indexes, label maps and manifests are the layout."""

    def check(self, out: Path, decode: bool, progress: Callable[[int], None] | None) -> CheckReport:
        return check_records(out, decode, progress, _check_tpu_example, lambda shard: f"{shard}.idx")


# ------------------------------------------------------------------------------------------------- check
CheckExample = Callable[[dict[str, list[Any]], dict[str, str], dict[str, int], str, bool, Problems], None]


def check_records(
    out: Path,
    decode: bool,
    progress: Callable[[int], None] | None,
    check_example: CheckExample,
    index_of: Callable[[str], str] | None,
    shard_glob: str = "*-of-*",
) -> CheckReport:
    """Every shard the manifests list: framing and CRCs, each Example against its manifest row
    (``check_example``), the DALI index against the records' offsets (``index_of``: its path), the counts; no
    shard is unlisted."""
    out = Path(out)
    problems = Problems()
    label_of = check_start(out, problems)
    checked = 0
    listed: set[str] = set()
    for split, manifest in present_manifests(out):
        for shard, rows in read_shard_manifest(manifest).items():
            listed.add(shard)
            records: list[tuple[int, int]] = []
            position = 0
            try:
                with open(out / shard, "rb") as handle:
                    for offset, size, payload in tfexample.read_records(handle):
                        records.append((offset, size))
                        where = f"{shard}#{position}"
                        if position < len(rows):
                            try:
                                example = tfexample.decode_example(payload)
                            except Exception as exc:  # noqa: BLE001 - a bad payload is a finding
                                problems.add(f"{where}: not an Example ({exc})")
                            else:
                                check_example(example, rows[position], label_of, where, decode, problems)
                        position += 1
                        checked += 1
                        if progress is not None:
                            progress(1)
            except (OSError, tfexample.FramingError) as exc:
                problems.add(f"{shard}: {exc}")
                continue
            if position != len(rows):
                problems.add(f"{shard}: {position} records, {split}.csv lists {len(rows)}")
            if index_of is not None:
                idx = out / index_of(shard)
                try:
                    if idx.read_bytes() != tfexample.dali_index(records):
                        problems.add(f"{idx.name}: offsets or sizes differ from {shard}'s records")
                except OSError as exc:
                    problems.add(f"{idx.name}: missing or unreadable ({exc})")
    for path in sorted(out.rglob(shard_glob)):
        rel = path.relative_to(out).as_posix()
        hidden = any(part.startswith(".") for part in path.relative_to(out).parts)  # state, temp files
        if path.is_file() and not hidden and not rel.endswith(".idx") and rel not in listed:
            problems.add(f"{rel}: not in the manifests")
    return CheckReport(checked, tuple(problems.items), problems.count)


def _one(example: dict[str, list[Any]], key: str) -> Any:
    values = example.get(key) or [None]
    return values[0] if len(values) == 1 else None


def _check_tpu_example(
    example: dict[str, list[Any]],
    row: dict[str, str],
    label_of: dict[str, int],
    where: str,
    decode: bool,
    problems: Problems,
) -> None:
    label = int(row["label"])
    if label_of.get(row["wnid"]) != label:
        problems.add(f"{where}: label {label} does not match labels.txt for {row['wnid']}")
    if _one(example, "image/class/label") != label + 1:
        problems.add(
            f"{where}: image/class/label {example.get('image/class/label')} but the manifest says {label} + 1"
        )
    if _one(example, "image/class/synset") != row["wnid"].encode():
        problems.add(f"{where}: image/class/synset differs from the manifest's {row['wnid']}")
    filename = _one(example, "image/filename") or b""
    if filename.decode("utf-8", "replace").rpartition(".")[0] != row["key"]:
        problems.add(f"{where}: image/filename {filename!r} but the manifest says {row['key']}")
    if (_one(example, "image/width"), _one(example, "image/height")) != (
        int(row["width"]),
        int(row["height"]),
    ):
        problems.add(f"{where}: image/width, image/height differ from the manifest")
    check_image(_one(example, "image/encoded") or b"", row, where, decode, problems)
