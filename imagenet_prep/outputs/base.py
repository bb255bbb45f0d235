"""The Writer base: what an output format must do, in the parent and in the workers. One module per
format implements it; ``outputs/__init__.py`` registers it by name.

Parent: ``group`` may regroup the source's units (a shard writer makes shards), ``prepare`` makes folders,
``finalize`` writes label maps and manifests from the units' results, ``check`` verifies a built output,
``managed_entries`` lists what ``--overwrite`` may remove (only what this writer creates).

Worker: ``open_unit`` returns a :class:`UnitWriter`; each processed image is ``add``-ed, and ``commit`` makes
the unit's output durable and visible BEFORE the build writes the unit's done marker (a unit with a marker is
finished; anything else is redone from scratch, so a commit must be atomic or idempotent).

Optional hooks are declared on the bases with their defaults (``Writer.files_intact``, ``Writer.shards``,
``UnitWriter.files``, ``UnitWriter.published``); callers call them plainly. The shard outputs share
``ShardWriter`` (outputs/shard_writer.py).
"""

from __future__ import annotations

import contextlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import Field, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..io.atomic import TMP_MARK
from ..records import ClassSet, ManifestRow, Sample, UnitResult, WorkUnit

if TYPE_CHECKING:
    from ..image import ImageResult

Groups = list[tuple[str, Sequence[Sample]]]  # a unit's samples: a tuple, a SampleTable or SampleRows


@dataclass(frozen=True)
class WriterContext:
    """What a writer learns of the build it writes (``prepare``, ``finalize``): the label space, the classes
    built, the splits, whether boxes are written, the images planned per split and class, and each unit's id,
    split and size in plan order; the orchestrator makes it from the plan. A small record, not the plan: a writer
    never sees the source, the samples or the planner."""

    class_set: ClassSet  # the label space: labels are positions in it (label maps list it)
    wnids: tuple[str, ...]  # the classes built (their folders): the label space's unless it is wider
    splits: tuple[str, ...]
    boxes: bool = False  # the writer writes boxes.csv
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # split -> wnid -> images planned
    units: tuple[UnitSize, ...] = ()  # every unit of the plan, in plan order


@dataclass(frozen=True)
class UnitSize:
    """A unit as a writer's ``prepare`` sees it: where it goes and how many samples it holds (MDS numbers its
    samples across a split's shards from these)."""

    unit_id: str
    split: str
    samples: int


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
    # Set by ``imagenet_prep.check`` (what ``imagenet-prep check`` prints): the folder checked, notes on a recipe
    # build's counts against the published ones, and ``build --out OUT`` when that alone repairs it.
    out: str | None = None
    notes: tuple[str, ...] = ()
    repair_short: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def to_dict(self) -> dict[str, Any]:
        """The check's JSON document (``check --json``; keys in docs/python-api.md)."""
        return {
            "ok": self.ok,
            "out": self.out,
            "checked": self.checked,
            "problems": self.problem_count,
            "examples": list(self.problems),
            "notes": list(self.notes),
            "repair": self.repair,
            "repair_short": self.repair_short,
        }


class UnitWriter(ABC):
    """A unit's writer in a worker: ``add`` each processed image, then ``commit`` (or ``abort``)."""

    @abstractmethod
    def add(self, sample: Sample, image: ImageResult) -> ManifestRow: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...

    def files(self) -> dict[str, int]:
        """After ``commit``, the files the unit wrote (path relative to OUT -> size in bytes; a shard writer
        reports its shard). The done marker records them and a re-run rebuilds the unit when one is missing or
        changed. Default: none said (nothing is compared)."""
        return {}

    def published(self, marker: Path) -> None:  # noqa: B027 - an optional hook; the default does nothing
        """Called once the unit's done marker is written: a writer whose output lives elsewhere (an object
        store) uploads it there (outputs/remote.py). Default: nothing."""


def written_files(unit_writer: UnitWriter) -> tuple[tuple[str, int], ...]:
    """The files a committed unit writer reports (``files()``), sorted."""
    return tuple(sorted(unit_writer.files().items()))


def local_files_intact(out: Path | str, result: UnitResult) -> bool:
    """True when every file a finished unit recorded is in place under OUT with its recorded size (one stat
    each). A marker written before files were recorded (no ``files``) is trusted, as it was then."""
    prefix = f"{out}/"
    for rel, size in result.files:
        try:
            if os.stat(prefix + rel).st_size != size:
                return False
        except OSError:
            return False
    return True


class Writer(ABC):
    """An output format. Instances are small frozen records (dataclasses whose fields are the format's
    options): they travel to the workers with each unit."""

    name: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # every writer is a dataclass (its options)
    #: A shard output (each unit one file or a few, outputs/shard_writer.py): it can be built into an object
    #: store (outputs/remote.py) and takes the shard options.
    shards: ClassVar[bool] = False
    #: Build options this output needs (``accepts`` refuses others), e.g. PNG of one size: the contract tests
    #: (tests/contract/test_writers.py) build every writer with them.
    needs: ClassVar[dict[str, object]] = {}

    @abstractmethod
    def group(self, split: str, groups: Groups) -> Groups: ...

    @abstractmethod
    def prepare(self, out: Path, context: WriterContext) -> None: ...

    @abstractmethod
    def work_dirs(self, units: Sequence[WorkUnit]) -> list[str]:
        """Folders (relative to OUT) the units' workers write into: a killed run's temp files are there."""

    @abstractmethod
    def managed_entries(self, out: Path) -> list[Path]: ...

    @abstractmethod
    def open_unit(self, out: str, unit: WorkUnit) -> UnitWriter: ...

    @abstractmethod
    def finalize(self, out: Path, context: WriterContext, results: Sequence[UnitResult]) -> None: ...

    @abstractmethod
    def check(self, out: Path, decode: bool, progress: Callable[[int], None] | None) -> CheckReport: ...

    def accepts(self, image: Any) -> None:  # noqa: B027 - an optional hook; the default takes any options
        """Raise a UsageError when this output cannot store images made with ``image`` (the build's
        ImageOptions), before anything is planned. Default: any."""

    def outdated(self, out: Path) -> str | None:
        """Why an OUT this writer built in an earlier version cannot resume (its format changed), to refuse a
        re-run with that line unless --overwrite; None (the default): it can."""
        return None

    def plan_warnings(self, units: Sequence[WorkUnit]) -> list[str]:
        """Lines for the build's warnings about the planned units (a shard output: splits with few shards).
        Default: none."""
        return []

    def files_intact(self, out: Path | str, result: UnitResult) -> bool:
        """Whether a finished unit's recorded files are in place (else the build runs it again). Default: stat
        them under OUT; a writer whose files live elsewhere (an object store) asks there."""
        return local_files_intact(out, result)


# ------------------------------------------------------------------------------------------ OUT's state folder
#: OUT's state folder (lock, state.json, done markers): the build (build/state.py) writes it; a writer's check
#: reads the file sizes its done markers record.
STATE_DIR = ".imagenet-prep"


def recorded_file_sizes(out: Path) -> dict[str, int]:
    """Every file the done markers in OUT record, with its size (for ``check``; empty when none are recorded)."""
    sizes: dict[str, int] = {}
    done = out / STATE_DIR / "done"
    if not done.is_dir():
        return sizes
    with os.scandir(done) as entries:
        for entry in entries:
            if not entry.name.endswith(".json") or entry.name.startswith(TMP_MARK):
                continue
            with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
                files = json.loads(Path(entry.path).read_text()).get("files") or {}
                sizes.update({str(rel): int(size) for rel, size in files.items()})
    return sizes
