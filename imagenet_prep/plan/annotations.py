"""Per-image annotations a plan attaches to its samples: bounding boxes (``--boxes``) and ReaL labels
(``--real-labels``). Both are source-independent: they are looked up by the image's canonical key.

Boxes: ``ILSVRC2012_bbox_train_v2.tar.gz`` (``<wnid>/<wnid>_<n>.xml``) and ``ILSVRC2012_bbox_val_v3.tgz``
(``val/ILSVRC2012_val_%08d.xml``) in the source folder, read in place (streamed through ``tarfile``; only the
built classes' train files are parsed). Boxes stay in source pixels in the sample; the worker maps them through
the image's own resize/crop (``image.boxes.map_boxes``), so ``boxes.csv`` is in output pixels.

ReaL: ``val.csv`` gains a ``real_labels`` column: space-separated indices in the BUILT class order (empty for
the 3,163 images ReaL excludes, and for an image that is no ILSVRC2012 validation image).
"""

from __future__ import annotations

import tarfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import BuildConfig
from ..errors import InputError
from ..fetch.catalog import by_key
from ..image.boxes import ImageBoxes, image_id_of, parse_voc
from ..records import ClassSet, Sample

BBOX_ARCHIVES = {"train": by_key("bbox_train").filename, "val": by_key("bbox_val").filename}
KAGGLE_CSV = "LOC_{split}_solution.csv"  # the Kaggle LOC challenge's boxes (at the top of its folder)
MAX_MEMBER_BYTES = 1 << 20


def read_loc_csv(path: Path) -> tuple[dict[str, ImageBoxes], Counter]:
    """key -> boxes of Kaggle's ``LOC_<split>_solution.csv`` (source pixels; no declared size), and quirks."""
    from ..image.boxes import parse_loc_solution

    found: dict[str, ImageBoxes] = {}
    quirks: Counter = Counter()
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            for record in parse_loc_solution(handle):
                quirks.update(record.quirks)
                if record.problem:
                    quirks["problem"] += 1
                if record.boxes:
                    found[record.image_id] = record
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read {path}: {exc}.") from None
    return found, quirks


def read_box_archive(path: Path, wnids: Sequence[str] | None = None) -> tuple[dict[str, ImageBoxes], Counter]:
    """key -> boxes of one bounding-box archive (tar.gz of VOC XML), streamed; train members of classes outside
    ``wnids`` are skipped unparsed. Also the quirk counts (and ``problem`` = files that could not be used)."""
    wanted = set(wnids) if wnids is not None else None
    found: dict[str, ImageBoxes] = {}
    quirks: Counter = Counter()
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for info in tar:
                if not info.isreg() or not info.name.lower().endswith(".xml") or info.size > MAX_MEMBER_BYTES:
                    continue
                key = image_id_of(info.name)
                if wanted is not None and key.startswith("n") and key.split("_", 1)[0] not in wanted:
                    continue
                handle = tar.extractfile(info)
                if handle is None:
                    continue
                record = parse_voc(handle.read(), info.name)
                quirks.update(record.quirks)
                if record.problem:
                    quirks["problem"] += 1
                if record.boxes:
                    found[key] = record
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(f"Cannot read the bounding-box archive {path}: {exc}; re-download it.") from None
    return found, quirks


@dataclass
class Annotator:
    """Adds boxes and ReaL labels to samples (called by the plan for every sample it makes)."""

    boxes: dict[str, dict[str, ImageBoxes]] | None = None  # split -> key -> boxes
    real_order: dict[str, int] | None = None  # wnid -> built label, for ReaL indices
    record: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def make(cls, config: BuildConfig, source: Any, class_set: ClassSet, wnids: Sequence[str]) -> Annotator:
        made = cls()
        if config.boxes:
            made.boxes = {}
            quirks: Counter = Counter()
            archives: list[str] = []
            for split in config.splits:
                path = Path(config.source) / BBOX_ARCHIVES[split]
                kaggle = Path(config.source) / KAGGLE_CSV.format(split=split)
                if not path.is_file() and kaggle.is_file():
                    path = kaggle
                    made.boxes[split], counts = read_loc_csv(kaggle)
                elif not path.is_file():
                    raise InputError(
                        f"--boxes needs {BBOX_ARCHIVES[split]} (or Kaggle's {kaggle.name}) in {config.source} for "
                        f"the {split} split: fetch it (`imagenet-prep fetch --dest {config.source} --only "
                        f"bbox_{split}`) or build without --boxes."
                    )
                else:
                    made.boxes[split], counts = read_box_archive(path, wnids if split == "train" else None)
                quirks.update(counts)
                archives.append(path.name)
            made.record["boxes"] = {"archives": archives, "annotation_quirks": dict(sorted(quirks.items()))}
        if config.real_labels:
            made.real_order = class_set.index_of()
        return made

    def __call__(self, sample: Sample) -> Sample:
        changes: dict[str, Any] = {}
        if self.boxes is not None:
            found = self.boxes.get(sample.split, {}).get(sample.key)
            if found is not None:
                changes["boxes"] = tuple((b.wnid, b.xmin, b.ymin, b.xmax, b.ymax) for b in found.boxes)
                changes["boxes_size"] = found.declared_size
        if self.real_order is not None and sample.split == "val":
            changes["extra"] = (*sample.extra, ("real_labels", self.real_field(sample.key)))
        return replace(sample, **changes) if changes else sample

    def real_field(self, key: str) -> str:
        from ..taxonomy import classes, real_labels

        assert self.real_order is not None
        labels = real_labels.real_labels_for(key)
        if not labels:
            return ""
        found = (self.real_order.get(classes.by_index(index).wnid) for index in labels)
        return real_labels.format_field(i for i in found if i is not None)


# ------------------------------------------------------------------------------------------------- worker
def to_output(sample: Sample, width: int, height: int, options: Any, counters: Counter) -> Sample:
    """Worker side: the sample with its boxes mapped from source pixels into the output image's pixels
    (``width`` x ``height`` source; through the same geometry as the image), counted into ``counters``."""
    if not sample.boxes:
        return sample
    from ..image.boxes import Box, MapStats, map_boxes

    stats = MapStats()
    mapped = map_boxes(
        (Box(*box) for box in sample.boxes),
        (width, height),
        options,
        declared_size=sample.boxes_size,
        stats=stats,
    )
    counters["images_with_boxes"] += 1
    for name, count in stats.as_dict().items():
        counters[f"boxes_{name}"] += count
    boxes = tuple((b.wnid, b.xmin, b.ymin, b.xmax, b.ymax) for b in mapped)
    return replace(sample, boxes=boxes, boxes_size=None)


def annotator_for(
    config: BuildConfig, source: Any, class_set: ClassSet, wnids: Sequence[str]
) -> Annotator | None:
    """An Annotator adding boxes (``--boxes``) and ReaL labels (``--real-labels``) to samples, or None."""
    if not (config.boxes or config.real_labels):
        return None
    return Annotator.make(config, source, class_set, wnids)
