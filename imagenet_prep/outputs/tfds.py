"""The TFDS output: a folder ``tensorflow_datasets`` reads as a prepared dataset, with no build step.

Layout of OUT (tensorflow/datasets ``imagenet2012_dataset_builder.py``; what ``tfds.folder_dataset.write_metadata``
writes, compared with TFDS itself in tests/e2e/test_tfds_output.py):

- ``<name>/<version>/<name>-<split>.tfrecord-%05d-of-%05d`` (splits ``train`` and ``validation``): TFRecord
  files of ``tf.train.Example`` with exactly TFDS imagenet2012's keys: ``image`` (the image bytes), ``label``
  (int64, the sorted-wnid index = ``labels.txt``), ``file_name`` (``<key><ext>``, e.g. ``n01440764_10026.JPEG``);
- ``<name>/<version>/dataset_info.json`` (name, version, file format, each split's shard lengths and bytes,
  supervised keys image/label), ``features.json`` (FeaturesDict: Image jpeg/png uint8 (-1, -1, 3), ClassLabel
  with the number of classes, Text) and ``label.labels.txt`` (the label names: the wnids);
- the label maps (outputs/labels.py) and ``<split>.csv`` manifests at the top of OUT.

``<name>``: ``--tfds-name``, else ``imagenet2012`` when the build is the whole ILSVRC2012 set (1000 classes,
1,281,167 train and 50,000 val images), else a name derived from the build (``imagenet2012_subset_<N>c_<images>``
or ``<label space>_<N>c_<images>``), so a subset can never be read as the full set. ``<version>``: 5.1.0, the
version of TFDS's own imagenet2012, so ``tfds.load("imagenet2012", data_dir=OUT)`` finds it prepared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import UsageError
from ..image import ImageResult
from ..io.atomic import temp_path_for, write_text_atomic
from ..records import ManifestRow, Sample, UnitResult, WorkUnit
from . import tfexample
from .base import CheckReport, Groups, Problems, WriterContext
from .shard_writer import ShardWriter
from .shards import check_image
from .tfrecord import RecordUnit, check_records, default_shard_group, split_name

FULL_NAME = "imagenet2012"
VERSION = "5.1.0"
FULL_COUNTS = {"train": 1_281_167, "val": 50_000}
NAME_FILE = ".imagenet-prep/tfds.json"
LABELS_FILE = "label.labels.txt"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_PYTHON = "tensorflow_datasets.core.features."


def dataset_name(plan: WriterContext, chosen: str | None) -> str:
    """The dataset's name (see the module docstring)."""
    if chosen:
        return chosen
    images = {split: sum(counts.values()) for split, counts in plan.counts.items()}
    if plan.class_set.name == "imagenet-1k" and len(plan.wnids) == 1000 and images == FULL_COUNTS:
        return FULL_NAME
    base = "imagenet2012_subset" if plan.class_set.name == "imagenet-1k" else plan.class_set.name
    slug = re.sub(r"[^a-z0-9]+", "_", base.lower()).strip("_")
    return f"{slug}_{len(plan.wnids)}c_{sum(images.values())}"


def shard_file(name: str, unit_id: str) -> str:
    """``<name>/<version>/<name>-<split>.tfrecord-%05d-of-%05d`` from a unit id ``[<name>.]<split>-%05d-of-%05d``."""
    split, _, numbers = unit_id.rpartition(".")[2].partition("-")
    return f"{name}/{VERSION}/{name}-{split}.tfrecord-{numbers}"


def features_json(num_classes: int, image_format: str) -> dict[str, Any]:
    """TFDS's features.json for imagenet2012's FeaturesDict (as ``write_metadata`` writes it). ``image_format``
    is what TFDS would ENCODE with; it decodes any image format, so a PNG/WebP build reads the same."""
    return {
        "featuresDict": {
            "features": {
                "file_name": {"pythonClassName": f"{_PYTHON}text_feature.Text", "text": {}},
                "image": {
                    "image": {
                        "dtype": "uint8",
                        "encodingFormat": image_format,
                        "shape": {"dimensions": ["-1", "-1", "3"]},
                    },
                    "pythonClassName": f"{_PYTHON}image_feature.Image",
                },
                "label": {
                    "classLabel": {"numClasses": str(num_classes)},
                    "pythonClassName": f"{_PYTHON}class_label_feature.ClassLabel",
                },
            }
        },
        "pythonClassName": f"{_PYTHON}features_dict.FeaturesDict",
    }


class TfdsUnit(RecordUnit):
    def __init__(self, out: str, unit: WorkUnit) -> None:
        with open(f"{out}/{NAME_FILE}", encoding="utf-8") as handle:
            name = json.load(handle)["name"]
        super().__init__(out, shard_file(name, unit.unit_id))
        # The temporary file at the top of OUT (always cleaned of a killed run's temp files): the shard's folder
        # carries the dataset name, which only the prepared OUT knows.
        self.tmp = temp_path_for(f"{out}/{Path(self.shard).name}")

    def add(self, sample: Sample, image: ImageResult) -> ManifestRow:
        features: dict[str, tuple[str, Sequence[Any]]] = {
            "image": ("bytes", [image.data]),
            "label": ("int64", [sample.label]),
            "file_name": ("bytes", [f"{sample.key}{image.extension}"]),
        }
        self.write(tfexample.encode_example(features))
        return ManifestRow(f"{self.shard}/{sample.key}", sample.label, sample.wnid, image.width, image.height)

    def commit(self) -> None:
        self._publish({self.shard: self.finish()})


@dataclass(frozen=True)
class TfdsWriter(ShardWriter):
    """A TFDS-ready folder (``--tfds-name``: the dataset name; the shard options: ShardWriter)."""

    name: ClassVar[str] = "tfds"
    default_shard_size: ClassVar[str] = "1252"

    tfds_name: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tfds_name is not None and not _NAME_RE.match(self.tfds_name):
            raise UsageError(
                f"--tfds-name {self.tfds_name!r}: TFDS names are lower-case snake_case (e.g. imagenette_10c)."
            )
        tfexample.require(self.name)

    @staticmethod
    def unit_id(split: str, index: int, total: int) -> str:
        return f"{split_name(split)}-{index:05d}-of-{total:05d}"

    def group(self, split: str, groups: Groups) -> Groups:
        # A chosen name is part of the unit ids, hence of their fingerprints: another name for a built OUT is
        # another build (refused without --overwrite), never finished units under the old name's paths. A
        # derived name follows from the classes and counts, which the fingerprint holds already.
        prefix = f"{self.tfds_name}." if self.tfds_name else ""
        return default_shard_group(
            self, split, groups, lambda s, index, total: prefix + self.unit_id(s, index, total)
        )

    def prepare(self, out: Path, plan: WriterContext) -> None:
        name = dataset_name(plan, self.tfds_name)
        (out / name / VERSION).mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / NAME_FILE, json.dumps({"name": name}) + "\n")

    def shard_entries(self, out: Path) -> list[Path]:
        try:
            name = json.loads((out / NAME_FILE).read_text(encoding="utf-8"))["name"]
        except (OSError, ValueError, KeyError):
            return []
        return [out / name]

    def open_unit(self, out: str, unit: WorkUnit) -> TfdsUnit:
        return TfdsUnit(out, unit)

    def finalize_format(self, out: Path, plan: WriterContext, results: Sequence[UnitResult]) -> None:
        """dataset_info.json, features.json and label.labels.txt beside the shards."""
        name = json.loads((out / NAME_FILE).read_text(encoding="utf-8"))["name"]
        folder = out / name / VERSION
        splits = []
        for split in plan.splits:
            mine = [result for result in results if result.split == split]
            splits.append(
                {
                    "filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
                    "name": split_name(split),
                    "numBytes": str(sum(size for r in mine for _, size in r.files)),
                    "shardLengths": [str(len(r.rows)) for r in mine],
                }
            )
        info = {
            "description": f"{name}: {len(plan.class_set)} classes of ImageNet, built by imagenet-prep "
            "(labels: label.labels.txt, the sorted wnids).",
            "fileFormat": "tfrecord",
            "name": name,
            "splits": splits,
            "supervisedKeys": {"tuple": {"items": [{"featureKey": "image"}, {"featureKey": "label"}]}},
            "version": VERSION,
        }
        write_text_atomic(folder / "dataset_info.json", json.dumps(info, indent=2) + "\n")
        features = features_json(len(plan.class_set), "jpeg")
        write_text_atomic(folder / "features.json", json.dumps(features, indent=4) + "\n")
        write_text_atomic(folder / LABELS_FILE, "".join(f"{wnid}\n" for wnid in plan.class_set.wnids))

    def check(self, out: Path, decode: bool, progress: Callable[[int], None] | None) -> CheckReport:
        report = check_records(out, decode, progress, _check_tfds_example, None, "*.tfrecord-*-of-*")
        problems = Problems()
        for text in report.problems:
            problems.add(text)
        problems.count = report.problem_count
        try:
            name = json.loads((out / NAME_FILE).read_text(encoding="utf-8"))["name"]
            folder = out / name / VERSION
            info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
            json.loads((folder / "features.json").read_text(encoding="utf-8"))
            if (folder / LABELS_FILE).read_text().split() != (out / "labels.txt").read_text().split():
                problems.add(f"{name}/{VERSION}/{LABELS_FILE} differs from labels.txt")
            for split in info["splits"]:
                csv_name = "val" if split["name"] == "validation" else split["name"]
                rows = (out / f"{csv_name}.csv").read_text().count("\n") - 1
                if sum(int(n) for n in split["shardLengths"]) != rows:
                    problems.add(
                        f"dataset_info.json: split {split['name']} lengths differ from {csv_name}.csv"
                    )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.add(
                f"the TFDS metadata (dataset_info.json, features.json, {LABELS_FILE}) is unreadable ({exc})"
            )
        return CheckReport(report.checked, tuple(problems.items), problems.count)


def _check_tfds_example(
    example: dict[str, list[Any]],
    row: dict[str, str],
    label_of: dict[str, int],
    where: str,
    decode: bool,
    problems: Problems,
) -> None:
    if sorted(example) != ["file_name", "image", "label"]:
        problems.add(f"{where}: keys {sorted(example)}, expected file_name, image, label")
        return
    label = int(row["label"])
    if example["label"] != [label] or label_of.get(row["wnid"]) != label:
        problems.add(f"{where}: label {example['label']} differs from the manifest/labels.txt ({label})")
    if example["file_name"][0].decode("utf-8", "replace").rpartition(".")[0] != row["key"]:
        problems.add(f"{where}: file_name {example['file_name'][0]!r} but the manifest says {row['key']}")
    check_image(example["image"][0], row, where, decode, problems)
