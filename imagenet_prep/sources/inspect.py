"""What a build could read from a source (``imagenet-prep inspect``): its layout, the splits and counts it can
offer, what is missing. No build; indexes are cached as a build would cache them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ImagenetPrepError


@dataclass(frozen=True)
class SplitCounts:
    """A split the source offers: its classes, its images, and the members refused while indexing it."""

    classes: int
    images: int
    refused: int

    def to_dict(self) -> dict[str, int]:
        return {"classes": self.classes, "images": self.images, "refused": self.refused}


@dataclass(frozen=True)
class SourceReport:
    """The report of :func:`inspect_source`; ``problems`` names each split that could not be indexed."""

    source: str
    layout: str
    splits: dict[str, SplitCounts]
    missing: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``inspect --json`` (keys in docs/python-api.md)."""
        return {
            "source": self.source,
            "layout": self.layout,
            "splits": {split: counts.to_dict() for split, counts in self.splits.items()},
            "missing": list(self.missing),
            "warnings": list(self.warnings),
            "problems": list(self.problems),
        }


def inspect_source(folder: str | Path, layout: str | None = None) -> SourceReport:
    """What a build could read from ``folder`` (``layout`` overrides the detected one)."""
    from . import open_source

    source = open_source(folder, layout=layout)
    try:
        splits: dict[str, SplitCounts] = {}
        warnings: list[str] = []
        problems: list[str] = []
        for split in source.splits():
            try:
                wnids = source.classes(split)
                index = source.index(split, wnids, None)
            except ImagenetPrepError as exc:
                problems.append(f"{split}: {exc}")
                continue
            splits[split] = SplitCounts(
                classes=len(wnids),
                images=sum(len(files) for files in index.files.values()),
                refused=len(index.refused),
            )
            warnings.extend(index.warnings)
        return SourceReport(
            source=str(Path(folder).resolve()),
            layout=type(source).layout,
            splits=splits,
            missing=tuple(source.missing()),
            warnings=tuple(warnings),
            problems=tuple(problems),
        )
    finally:
        source.close()
