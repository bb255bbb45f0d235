"""The Writer protocol: what an output format must do, in the parent and in the workers. One module per
format implements it; ``outputs/__init__.py`` registers it by name.

Parent: ``group`` may regroup the source's units (a shard writer makes shards), ``prepare`` makes folders,
``finalize`` writes label maps and manifests from the units' results, ``check`` verifies a built output,
``managed_entries`` lists what ``--overwrite`` may remove (only what this writer creates).

Worker: ``open_unit`` returns a :class:`UnitWriter`; each processed image is ``add``-ed, and ``commit`` makes
the unit's output durable and visible BEFORE the build writes the unit's done marker (a unit with a marker is
finished; anything else is redone from scratch, so a commit must be atomic or idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from ..image import ImageResult
from ..records import ManifestRow, Sample, UnitResult, WorkUnit

if TYPE_CHECKING:
    from ..plan import BuildPlan

Groups = list[tuple[str, Sequence[Sample]]]  # a unit's samples: a tuple, a SampleTable or SampleRows


MAX_LISTED = 20  # findings a check lists as text (all are counted)


class Problems:
    """Findings of a check: all counted, the first ``MAX_LISTED`` kept as text."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.count = 0

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.items) < MAX_LISTED:
            self.items.append(text)


@dataclass(frozen=True)
class CheckReport:
    checked: int
    problems: tuple[str, ...]
    problem_count: int
    repair: str | None = None  # the command that repairs the tree (set by ``check_output`` when not ok)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0


class UnitWriter(Protocol):
    """A unit's writer in a worker. It may also have ``files() -> dict[str, int]``: after ``commit``, the
    files it wrote (path relative to OUT -> size in bytes; a shard writer reports its shard). The done marker
    records them and a re-run rebuilds the unit when one is missing or changed (see ``written_files``).
    Optional too: ``published(marker: Path)``, called once the done marker is written (a writer whose output
    lives elsewhere, an object store, uploads it there: outputs/remote.py)."""

    def add(self, sample: Sample, image: ImageResult) -> ManifestRow: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


def written_files(unit_writer: object) -> tuple[tuple[str, int], ...]:
    """The files a committed unit writer reports (``files()``), sorted; () for a writer that does not say."""
    files = getattr(unit_writer, "files", None)
    return tuple(sorted(files().items())) if callable(files) else ()


class Writer(Protocol):
    """An output format. Instances are small frozen records: they travel to the workers with each unit.

    Optional: ``files_intact(out, result) -> bool``, whether a finished unit's recorded files are in place, for a
    writer whose files live elsewhere (an object store); without it the build stats them under OUT."""

    name: ClassVar[str]

    def group(self, split: str, groups: Groups) -> Groups: ...

    def prepare(self, out: Path, plan: BuildPlan) -> None: ...

    def work_dirs(self, units: Sequence[WorkUnit]) -> list[str]:
        """Folders (relative to OUT) the units' workers write into: a killed run's temp files are there."""
        ...

    def managed_entries(self, out: Path) -> list[Path]: ...

    def open_unit(self, out: str, unit: WorkUnit) -> UnitWriter: ...

    def finalize(self, out: Path, plan: BuildPlan, results: Sequence[UnitResult]) -> None: ...

    def check(self, out: Path, decode: bool, progress: Callable[[int], None] | None) -> CheckReport: ...
