"""The Parquet output: a folder Hugging Face ``datasets.load_dataset(OUT)`` reads as Image + ClassLabel columns.

Layout of OUT (see formats.md, "Parquet readable by Hugging Face datasets"):

- ``data/<split>-%05d-of-%05d.parquet`` (``train``, ``validation``): columns ``image: struct<bytes: binary,
  path: string>`` and
  ``label: int64`` (exactly these types: others make ``datasets`` drop the stored features), the schema
  metadata ``huggingface`` = ``{"info": {"features": {"image": {"_type": "Image"}, "label": {"_type":
  "ClassLabel", "names": [...]}}}}`` with the build's unique class names; ``path`` is ``<key><ext>``
  (``n01440764_10026.JPEG``); row groups of ``ROW_GROUP_ROWS`` rows (what ``datasets`` itself writes for image
  data: a reader holds one row group of images at a time); no compression (the images are compressed already);
- ``README.md``: a dataset card whose YAML declares the default config (``data_files`` per split), the features
  (Image, ClassLabel with the names) and each split's example count;
- the label maps (outputs/labels.py) and ``<split>.csv`` manifests (``shard,key,label,wnid,width,height``).

The val split is published as ``validation`` (``SPLIT_NAMES``), as on the Hub and in TFDS.

Each shard is one work unit (outputs/shards.py). A unit streams its rows to a temporary file one row group at a
time, then ``commit`` closes, fsyncs and moves it into place; the done marker follows. The class names reach the
workers through ``.imagenet-prep/parquet-features.json`` (written by ``prepare``): every shard carries them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..build_options import OUTPUT_SPLITS
from ..errors import UsageError
from ..io.atomic import write_text_atomic
from ..records import ManifestRow, Sample, UnitResult, WorkUnit
from .base import CheckReport, Problems, WriterContext
from .imagefolder_check import NotRegularFile, open_regular
from .shard_writer import ShardUnit, ShardWriter
from .shards import (
    CHECK_READ_LIMIT,
    PUBLISHED_SPLIT_NAMES,
    check_image,
    check_start,
    read_shard_manifest,
    row_problem,
)

if TYPE_CHECKING:
    from ..image import ImageResult

DATA_DIR = "data"
DEFAULT_SHARD_SIZE = "500MB"  # about the size of the Hugging Face Hub's own imagenet-1k Parquet shards
ROW_GROUP_ROWS = 100  # datasets' row-group size for image datasets
FEATURES_FILE = ".imagenet-prep/parquet-features.json"
CARD = "README.md"
#: The split names this output publishes: the Hub's and TFDS's ``validation`` for our ``val`` (files
#: ``data/validation-*.parquet``, the card's split, the manifest ``validation.csv``), so code written for the
#: Hub's ImageNet (``load_dataset(OUT, split="validation")``) works unchanged.
SPLIT_NAMES = PUBLISHED_SPLIT_NAMES


def _require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UsageError(
            "The parquet output needs pyarrow: run `pip install 'imagenet-prep[parquet]'`."
        ) from None
    return pyarrow


def shard_path(unit_id: str) -> str:
    return f"{DATA_DIR}/{unit_id}.parquet"


def hf_features(names: Sequence[str]) -> dict[str, Any]:
    return {
        "image": {"_type": "Image"},
        "label": {"names": list(names), "_type": "ClassLabel"},
    }


def arrow_schema(names: Sequence[str]) -> Any:
    pa = _require_pyarrow()
    metadata = {"huggingface": json.dumps({"info": {"features": hf_features(names)}})}
    return pa.schema(
        [
            pa.field("image", pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])),
            pa.field("label", pa.int64()),
        ],
        metadata=metadata,
    )


class ParquetUnit(ShardUnit):
    """Streams one shard: rows are buffered up to one row group, then written to a temporary file."""

    def __init__(self, out: str, unit: WorkUnit) -> None:
        super().__init__(out, shard_path(unit.unit_id))
        self._out = out
        self._writer: Any = None  # opened with the first row group: inside the worker's error handling
        self._schema: Any = None
        self._images: list[dict[str, Any]] = []
        self._labels: list[int] = []

    def _open(self) -> Any:
        if self._writer is None:
            _require_pyarrow()
            import pyarrow.parquet as pq

            with open(f"{self._out}/{FEATURES_FILE}", encoding="utf-8") as handle:
                names = json.load(handle)["names"]
            self._schema = arrow_schema(names)
            self._writer = pq.ParquetWriter(
                self.tmp, self._schema, compression="none", use_dictionary=False, write_statistics=["label"]
            )
        return self._writer

    def _flush(self) -> None:
        writer = self._open()
        if not self._labels:
            return
        import pyarrow as pa

        table = pa.Table.from_pydict({"image": self._images, "label": self._labels}, schema=self._schema)
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self._images, self._labels = [], []

    def add(self, sample: Sample, image: ImageResult) -> ManifestRow:
        key = self.keys.key(sample.key, sample.wnid)
        self._images.append({"bytes": image.data, "path": f"{key}{image.extension}"})
        self._labels.append(sample.label)
        if len(self._labels) >= ROW_GROUP_ROWS:
            self._flush()
        return ManifestRow(f"{self.shard}/{key}", sample.label, sample.wnid, image.width, image.height)

    def commit(self) -> None:
        self._flush()  # (opens the file: a shard whose every image was skipped is an empty table)
        self._writer.close()
        self._writer = None
        fd = os.open(self.tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        self._publish({self.shard: size})

    def _close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()


@dataclass(frozen=True)
class ParquetWriter(ShardWriter):
    """Parquet shards for Hugging Face ``datasets`` (``"500MB"`` of source bytes per shard by default; the
    options: ShardWriter)."""

    name: ClassVar[str] = "parquet"
    default_shard_size: ClassVar[str] = DEFAULT_SHARD_SIZE
    own_entries: ClassVar[tuple[str, ...]] = (DATA_DIR, CARD)

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_pyarrow()  # a missing extra fails before any planning

    split_names: ClassVar[dict[str, str]] = SPLIT_NAMES

    @staticmethod
    def unit_id(split: str, index: int, total: int) -> str:
        return f"{SPLIT_NAMES.get(split, split)}-{index:05d}-of-{total:05d}"

    def outdated(self, out: Path) -> str | None:
        """A Parquet OUT built before the val split was published as ``validation`` cannot resume."""
        if not (out / ".imagenet-prep" / "state.json").is_file() or not any(
            (out / DATA_DIR).glob("val-*.parquet")
        ):
            return None
        return (
            f"{out} holds a Parquet build whose val split is named val (data/val-*.parquet); this version names it "
            "validation, as the Hub and TFDS do, so it cannot resume: rebuild it with --overwrite, or keep it as "
            'it is (datasets reads it with split="val").'
        )

    def prepare(self, out: Path, context: WriterContext) -> None:
        (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / FEATURES_FILE, json.dumps({"names": list(context.class_set.names)}) + "\n")

    def work_dirs(self, units: Sequence[WorkUnit]) -> list[str]:
        return [DATA_DIR]

    def open_unit(self, out: str, unit: WorkUnit) -> ParquetUnit:
        return ParquetUnit(out, unit)

    def finalize_format(self, out: Path, context: WriterContext, results: Sequence[UnitResult]) -> None:
        """The dataset card (README.md) with each split's example count and bytes."""
        counts = {split: 0 for split in context.splits}
        sizes = {split: 0 for split in context.splits}
        for result in results:
            counts[result.split] += len(result.rows)
            recorded = dict(result.files).get(shard_path(result.unit_id))
            sizes[result.split] += (
                recorded if recorded is not None else (out / shard_path(result.unit_id)).stat().st_size
            )
        published = {SPLIT_NAMES.get(split, split): count for split, count in counts.items()}
        published_sizes = {SPLIT_NAMES.get(split, split): size for split, size in sizes.items()}
        card = dataset_card(context.class_set.name, context.class_set.names, published, published_sizes)
        write_text_atomic(out / CARD, card)

    def check(self, out: Path, decode: bool, progress: Callable[[int], None] | None) -> CheckReport:
        return check_parquet(out, decode, progress)


def dataset_card(name: str, class_names: Sequence[str], counts: dict[str, int], sizes: dict[str, int]) -> str:
    """README.md whose YAML header ``datasets.load_dataset(OUT)`` reads: configs, features, splits (each
    split's example count, and its Parquet bytes as ``num_bytes``)."""
    import yaml

    header = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": f"{DATA_DIR}/{split}-*"} for split in counts],
            }
        ],
        "dataset_info": {
            "features": [
                {"name": "image", "dtype": "image"},
                {
                    "name": "label",
                    "dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(class_names)}}},
                },
            ],
            "splits": [
                {"name": split, "num_bytes": sizes[split], "num_examples": count}
                for split, count in counts.items()
            ],
            "download_size": sum(sizes.values()),
            "dataset_size": sum(sizes.values()),
        },
    }
    front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000)
    body = (
        f"# {name} ({len(class_names)} classes), built by imagenet-prep\n\n"
        'Load it with `datasets.load_dataset("<this folder>")`: `image` (Image) and `label` (ClassLabel).\n'
        "Labels follow `labels.txt` (sorted wnids); `<split>.csv` locates every sample (shard, key).\n"
    )
    return f"---\n{front}---\n\n{body}"


# ------------------------------------------------------------------------------------------------- check
def check_parquet(
    out: Path, decode: bool = False, progress: Callable[[int], None] | None = None
) -> CheckReport:
    """Every shard in the manifests: exact column types, ClassLabel names = the label maps' names, paths and
    labels row by row, image sizes (``decode``: full decodes); no shard in data/ is unlisted."""
    pa = _require_pyarrow()
    import pyarrow.parquet as pq

    out = Path(out)
    problems = Problems()
    label_of = check_start(out, problems)
    try:
        index = json.loads((out / "class_index.json").read_text())
        names = [index[str(i)][1] for i in range(len(index))]
    except (OSError, ValueError, KeyError):
        names = []  # reported by check_label_maps
    expected = arrow_schema(names)
    checked = 0
    listed: set[str] = set()
    for split in (SPLIT_NAMES.get(split, split) for split in OUTPUT_SPLITS):
        manifest = out / f"{split}.csv"
        if not manifest.is_file():
            continue
        for shard, rows in read_shard_manifest(manifest).items():
            listed.add(shard)
            try:
                with open_regular(out / shard) as handle:
                    checked += _check_shard(
                        pq.ParquetFile(handle),
                        shard,
                        split,
                        rows,
                        expected,
                        label_of,
                        decode,
                        problems,
                        progress,
                    )
            except NotRegularFile:
                problems.add(f"{shard}: not a regular file (a link, FIFO or device where a shard should be)")
            except (OSError, pa.ArrowException) as exc:
                problems.add(f"{shard}: cannot be read as Parquet ({exc})")
    data = out / DATA_DIR
    if data.is_dir():
        for path in sorted(data.glob("*.parquet")):
            if f"{DATA_DIR}/{path.name}" in listed:
                continue
            try:
                with open_regular(path) as handle:
                    holds_rows = pq.ParquetFile(handle).metadata.num_rows > 0
            except (NotRegularFile, OSError, pa.ArrowException):
                holds_rows = True
            if holds_rows:
                problems.add(f"{DATA_DIR}/{path.name}: not in the manifests")
    if not (out / CARD).is_file():
        problems.add(f"{CARD} (the dataset card load_dataset reads) is missing")
    return CheckReport(checked, tuple(problems.items), problems.count)


def _check_shard(
    parquet: Any,
    shard: str,
    split: str,
    rows: list[dict[str, str]],
    expected: Any,
    label_of: dict[str, int],
    decode: bool,
    problems: Problems,
    progress: Callable[[int], None] | None,
) -> int:
    """One shard's rows against its manifest rows, a row group at a time (each bounded by CHECK_READ_LIMIT)."""
    if not parquet.schema_arrow.equals(expected, check_metadata=True):
        problems.add(f"{shard}: its schema or ClassLabel names differ from the expected ones")
        if not parquet.schema_arrow.remove_metadata().equals(expected.remove_metadata()):
            return 0  # other columns or types: its rows cannot be compared
    if parquet.metadata.num_rows != len(rows):
        problems.add(f"{shard}: {parquet.metadata.num_rows} rows, {split}.csv lists {len(rows)}")
    position = checked = 0
    for group in range(parquet.num_row_groups):
        size = parquet.metadata.row_group(group).total_byte_size
        if size > CHECK_READ_LIMIT:
            problems.add(
                f"{shard}: row group {group} holds {size} bytes (more than any build writes); not read"
            )
            position += parquet.metadata.row_group(group).num_rows
            continue
        table = parquet.read_row_group(group)
        images = table.column("image").to_pylist()
        table_labels = table.column("label").to_pylist()
        for image, label in zip(images, table_labels, strict=True):
            if position < len(rows):
                _check_row(image, label, rows[position], f"{shard}#{position}", label_of, decode, problems)
            position += 1
            checked += 1
            if progress is not None:
                progress(1)
    return checked


def _check_row(
    image: Any,
    label: Any,
    row: dict[str, str],
    where: str,
    label_of: dict[str, int],
    decode: bool,
    problems: Problems,
) -> None:
    bad = row_problem(row, where)
    if bad:
        problems.add(bad)
        return
    if not isinstance(image, dict) or image.get("bytes") is None:
        problems.add(f"{where}: no image (a null row)")
        return
    if (image.get("path") or "").rpartition(".")[0] != row["key"]:
        problems.add(f"{where}: path {image.get('path')!r} but the manifest says {row['key']}")
    if label != int(row["label"]) or label_of.get(row["wnid"]) != label:
        problems.add(f"{where}: label {label} differs from the manifest/labels.txt")
    check_image(image["bytes"], row, where, decode, problems)
