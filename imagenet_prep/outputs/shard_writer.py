"""What the shard outputs (wds, parquet) share: the shard options and planning, the label maps and manifests
they finish with, what ``--overwrite`` may remove, and a unit that streams one shard to a temporary file and
moves it into place on commit. Each format keeps only its own bytes (its ``ShardUnit``), its extra files and
its check.

A ``ShardWriter`` says ``shards = True``: such an output takes ``--shard-size``/``--shuffle`` and can be built
into an object store (outputs/remote.py); a new shard format gets both by subclassing it.
"""

from __future__ import annotations

import contextlib
import os
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..io.atomic import temp_path_for
from ..records import UnitResult, WorkUnit
from . import labels
from .base import Groups, UnitWriter, Writer, WriterContext
from .keys import ShardKeys
from .shards import few_shards, parse_shard_size, plan_shards, write_shard_manifests

MANIFESTS = ("train.csv", "val.csv", "validation.csv", "build.json")


class ShardUnit(UnitWriter):
    """One shard (``shard``: its path relative to OUT), streamed to a temporary file beside its final name;
    ``commit`` (the format's) finishes the file, then ``_publish`` moves it into place."""

    def __init__(self, out: str, shard: str) -> None:
        self.shard = shard
        self.final = f"{out}/{shard}"
        self.tmp = temp_path_for(self.final)
        self._files: dict[str, int] = {}
        self.keys = (
            ShardKeys()
        )  # the samples' names in this shard: escaped, never two alike (outputs/keys.py)

    def files(self) -> dict[str, int]:
        """The shard (and any file beside it, relative to OUT) with their sizes: the done marker records them,
        and a re-run (or ``check``) finds a truncated, emptied or deleted shard by them."""
        return self._files

    def _publish(self, files: dict[str, int]) -> None:
        """Move the finished temporary file to its final name; ``files`` is what the unit wrote."""
        os.replace(self.tmp, self.final)
        self._files = files

    def _close(self) -> None:
        """Close the temporary file if it is open (the format's handle)."""

    def abort(self) -> None:
        with contextlib.suppress(
            Exception
        ):  # anything the format's writer raises while closing a broken file
            self._close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


@dataclass(frozen=True)
class ShardWriter(Writer):
    """A shard output. ``shard_size``: samples (``5000``) or source bytes (``"1GB"``) per shard (None: the
    format's ``default_shard_size``); ``shuffle``/``shuffle_seed``: the train split's seeded permutation
    (outputs/shards.py)."""

    shards: ClassVar[bool] = True
    default_shard_size: ClassVar[str]
    #: The format's own files and folders in OUT, besides the label maps, manifests and build.json.
    own_entries: ClassVar[tuple[str, ...]] = ()
    #: Our split -> the name the format publishes (its files, manifests); a split not named keeps its name.
    split_names: ClassVar[dict[str, str]] = {}

    shard_size: str | int | None = None
    min_shards: int | None = None  # at least this many shards per split (outputs/shards.py::even_edges)
    shuffle: bool = True
    shuffle_seed: int = 0

    def __post_init__(self) -> None:
        parse_shard_size(
            self.shard_size, self.default_shard_size, self.min_shards
        )  # a bad value fails before planning

    @staticmethod
    @abstractmethod
    def unit_id(split: str, index: int, total: int) -> str:
        """The id of shard ``index`` of ``total`` in ``split`` (it names the shard's file)."""

    def group(self, split: str, groups: Groups) -> Groups:
        size = parse_shard_size(self.shard_size, self.default_shard_size, self.min_shards)
        return plan_shards(split, groups, size, self.shuffle, self.shuffle_seed, self.unit_id)

    def plan_warnings(self, units: Sequence[WorkUnit]) -> list[str]:
        return few_shards(units)

    def prepare(self, out: Path, context: WriterContext) -> None:
        """Nothing by default: shards live at the top of OUT."""

    def work_dirs(self, units: Sequence[WorkUnit]) -> list[str]:
        return []  # shards at the top of OUT, which is always cleaned of temp files

    def shard_entries(self, out: Path) -> list[Path]:
        """Shard files in OUT outside ``own_entries`` (``--overwrite`` removes them)."""
        return []

    def managed_entries(self, out: Path) -> list[Path]:
        names = (*self.own_entries, *labels.LABEL_FILES, *MANIFESTS)
        return [out / name for name in names] + self.shard_entries(out)

    def finalize(self, out: Path, context: WriterContext, results: Sequence[UnitResult]) -> None:
        labels.write_class_set_maps(out, context.class_set)
        write_shard_manifests(out, context.splits, results, self.split_names)
        self.finalize_format(out, context, results)

    @abstractmethod
    def finalize_format(self, out: Path, context: WriterContext, results: Sequence[UnitResult]) -> None:
        """The format's own files, written once every unit is done (after the label maps and manifests)."""
