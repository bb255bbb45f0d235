"""The ImageFolder output: ``<split>/<wnid>/<key><ext>`` files, label maps, and ``<split>.csv`` manifests.

Each image is written under a temporary name and moved into place (io/atomic.py), so no half-written file
ever carries a final name; a unit's files are all in place before its done marker is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..build_options import OUTPUT_SPLITS
from ..columns import sample_classes
from ..io.atomic import write_bytes_atomic
from ..records import ManifestRow, Sample, UnitResult, WorkUnit
from . import labels
from .base import CheckReport, Groups, UnitWriter, Writer, WriterContext
from .keys import file_key
from .manifest import write_boxes_csv, write_manifest

if TYPE_CHECKING:
    from ..image import ImageResult


class ImageFolderUnit(UnitWriter):
    def __init__(self, out: str) -> None:
        self._prefix = f"{out}/"  # plain strings on the per-image path: Path objects cost more than the write
        self._files: dict[str, int] = {}

    def add(self, sample: Sample, image: ImageResult) -> ManifestRow:
        rel = f"{sample.split}/{sample.wnid}/{file_key(sample.key)}{image.extension}"
        write_bytes_atomic(self._prefix + rel, image.data)
        self._files[rel] = len(image.data)
        return ManifestRow(rel, sample.label, sample.wnid, image.width, image.height)

    def files(self) -> dict[str, int]:
        """The files this unit wrote (the manifest rows' paths) and their sizes."""
        return self._files

    def commit(self) -> None:
        """Nothing left to do: every file was moved into place as it was written."""

    def abort(self) -> None:
        """Nothing to undo: files already in place are rewritten identically by the re-run."""


@dataclass(frozen=True)
class ImageFolderWriter(Writer):
    name: ClassVar[str] = "imagefolder"

    def group(self, split: str, groups: Groups) -> Groups:
        return groups  # the source's grouping (its cheapest reads) suits one-file-per-image output

    def prepare(self, out: Path, context: WriterContext) -> None:
        # Every class folder in every split, so train/ and val/ list the same classes (an empty one included).
        for split in context.splits:
            for wnid in context.wnids:
                (out / split / wnid).mkdir(parents=True, exist_ok=True)

    def work_dirs(self, units: Sequence[WorkUnit]) -> list[str]:
        return sorted({f"{split}/{wnid}" for unit in units for split, wnid in sample_classes(unit.samples)})

    def managed_entries(self, out: Path) -> list[Path]:
        splits = (*OUTPUT_SPLITS, *(f"{split}.csv" for split in OUTPUT_SPLITS))
        names = (*splits, *labels.LABEL_FILES, "build.json", "boxes.csv")
        return [out / name for name in names]

    def open_unit(self, out: str, unit: WorkUnit) -> ImageFolderUnit:
        return ImageFolderUnit(out)

    def finalize(self, out: Path, context: WriterContext, results: Sequence[UnitResult]) -> None:
        labels.write_class_set_maps(out, context.class_set)
        rows_by_split: dict[str, list[ManifestRow]] = {split: [] for split in context.splits}
        for result in results:
            rows_by_split[result.split].extend(result.rows)
        for split, rows in rows_by_split.items():
            write_manifest(out / f"{split}.csv", rows)
        if context.boxes:
            write_boxes_csv(out / "boxes.csv", [row for rows in rows_by_split.values() for row in rows])

    def check(self, out: Path, decode: bool, progress: Callable[[int], None] | None) -> CheckReport:
        from .imagefolder_check import check_tree

        return check_tree(out, decode=decode, progress=progress)
