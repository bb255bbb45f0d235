"""ImageNet-21K sources: ``fall11_whole.tar`` and a folder of per-class tars.

- ``fall11``: ``fall11_whole.tar``, a tar of 21,841 ``<wnid>.tar`` class tars: indexed by its headers (cached
  beside the archive, like the ILSVRC train tar: :class:`~imagenet_prep.io.tar_index.Fall11Archive`); a worker
  reads each image with one positioned read.
- ``class-tars``: a folder of ``<wnid>.tar`` files (the extracted ``winter21_whole.tar.gz``, per-class tars
  downloaded one by one, or an extracted ILSVRC train tar): each class tar indexed by its headers (cached in
  ``class-tars.index.json`` beside them, or in the tool's cache folder, per tar by size and mtime_ns).

Neither has a val split: ``--holdout N`` or a recipe (``--recipe imagenet21k-p``) takes one out of train (see
plan). Their classes are 21K classes (``class_space``): a build takes every class the source holds, named by
the bundled 21K display names; ``--label-space`` puts them in a named label space.
"""

from __future__ import annotations

import os
import re
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from ..errors import InputError
from ..fetch.catalog import TRAIN_TAR
from ..io.tar import ClassTar, TarMember
from ..io.tar_index import Fall11Archive, TrainArchive, read_folder_cache, write_folder_cache
from ..records import ByteLocation, SourceFile
from .base import FolderProbe, Runner, SourceBase, SourceRecord, SplitIndex
from .ilsvrc import index_class, index_class_columns, index_class_tars

FALL11_TAR = "fall11_whole.tar"
WINTER21_TAR_GZ = "winter21_whole.tar.gz"
_CLASS_TAR_RE = re.compile(r"^(n\d{8})\.tar$")


def _files(path: str, members: Sequence[TarMember]) -> tuple[SourceFile, ...]:
    return tuple(SourceFile(m.name, Path(m.name).stem, ByteLocation(path, m.offset, m.size)) for m in members)


def _no_val(what: str) -> InputError:
    return InputError(
        f"{what} has no val split: take one out of train with --holdout N (N images per class, seeded) or "
        "--recipe imagenet21k-p (the first 50 per class), or build --splits train."
    )


class Train21kSource(SourceBase):
    """What every ImageNet-21K layout shares: one split (train), 21K classes, members named in their class tar."""

    class_space: ClassVar[str] = "imagenet-21k"

    @abstractmethod
    def _what(self) -> str:
        """The source as named in the "no val split" message."""

    def _train_only(self, split: str) -> None:
        if split != "train":
            raise _no_val(self._what())

    def splits(self) -> tuple[str, ...]:
        return ("train",)

    def member_label(self, split: str, wnid: str, name: str) -> str:
        return f"{wnid}.tar/{name}"


ArchiveT = TypeVar("ArchiveT", bound=TrainArchive)


class WholeArchiveSource(Train21kSource, Generic[ArchiveT]):
    """One whole 21K archive in the folder (``archive_name``), indexed through its ``archive_type`` (a cached
    train-tar index, opened when first needed and closed by :meth:`close`)."""

    archive_name: ClassVar[str] = ""
    archive_type: type[ArchiveT]

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        super().__init__(folder, cache_dir)
        self.path = self.folder / self.archive_name
        self._archive: ArchiveT | None = None

    @classmethod
    def detect(cls, probe: FolderProbe) -> bool:
        return probe.has(cls.archive_name)

    def _what(self) -> str:
        return self.archive_name

    def archive(self) -> ArchiveT:
        if self._archive is None:
            self._archive = self.archive_type(self.path, cache_dir=self.cache_dir)
        return self._archive

    def classes(self, split: str) -> tuple[str, ...]:
        """Every class of the archive, sorted (a cold index reads the archive's headers once, then cached)."""
        self._train_only(split)
        return tuple(sorted(self.archive().classes()))

    def records(self) -> list[SourceRecord]:
        return [SourceRecord(self.path, "train")]

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()


class Fall11Source(WholeArchiveSource[Fall11Archive]):
    """``fall11_whole.tar`` (ImageNet-21K, fall 2011 release): a worker reads each image by offset."""

    layout: ClassVar[str] = "fall11"
    needs: ClassVar[str] = FALL11_TAR
    archive_name: ClassVar[str] = FALL11_TAR
    archive_type = Fall11Archive

    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        self._train_only(split)
        # Grouped a unit per class (SourceBase.group): a class's images are contiguous in its class tar.
        return index_class_tars(self.archive(), wnids, runner)


class ClassTarFolderSource(Train21kSource):
    """A folder of ``<wnid>.tar`` class tars (e.g. ``winter21_whole/`` extracted from its .tar.gz)."""

    layout: ClassVar[str] = "class-tars"
    needs: ClassVar[str] = "a folder of <wnid>.tar class tars (e.g. the extracted winter21_whole.tar.gz)"

    CACHE_NAME = "class-tars"  # the index cache: <folder>/class-tars.index.json, or the tool's cache folder
    CACHE_FORMAT = 1

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        super().__init__(folder, cache_dir)
        self._tars: dict[str, ClassTar] | None = None
        self._stamps: dict[str, list[int]] = {}  # wnid -> [size, mtime_ns] of its class tar

    # Index cache: one file for the folder, an entry per class tar keyed by its size and mtime_ns (a changed
    # tar is indexed again); written atomically by the parent only.
    def _load_cache(self) -> dict[str, dict]:
        return read_folder_cache(self.folder / self.CACHE_NAME, self.cache_dir, self.CACHE_FORMAT, "tars")

    def _save_cache(self, entries: dict[str, dict]) -> None:
        write_folder_cache(self.folder / self.CACHE_NAME, self.cache_dir, self.CACHE_FORMAT, "tars", entries)

    @classmethod
    def detect(cls, probe: FolderProbe) -> bool:
        # Not beside a whole archive: class tars extracted next to fall11_whole.tar or the ILSVRC train tar are
        # that archive's, which is the layout to read.
        whole = probe.has(FALL11_TAR) or probe.has(TRAIN_TAR)
        return not whole and any(_CLASS_TAR_RE.match(name) for name in probe.names)

    def class_tars(self) -> dict[str, ClassTar]:
        """wnid -> its class tar (the whole file: offset 0), in name order."""
        if self._tars is None:
            found: dict[str, ClassTar] = {}
            for name in sorted(os.listdir(self.folder)):
                match = _CLASS_TAR_RE.match(name)
                path = self.folder / name
                if match and path.is_file():
                    st = path.stat()
                    found[match.group(1)] = ClassTar(match.group(1), name, 0, st.st_size)
                    self._stamps[match.group(1)] = [st.st_size, st.st_mtime_ns]
            if not found:
                raise InputError(f"{self.folder} holds no <wnid>.tar class tars.")
            self._tars = found
        return self._tars

    def _what(self) -> str:
        return f"The folder of class tars {self.folder}"

    def classes(self, split: str) -> tuple[str, ...]:
        self._train_only(split)
        return tuple(self.class_tars())

    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        self._train_only(split)
        tars = self.class_tars()
        cache = self._load_cache()
        known = {w: cache[w] for w in wnids if w in cache and cache[w].get("stamp") == self._stamps[w]}
        todo = [w for w in wnids if w not in known]
        arguments = [(str(self.folder / tars[wnid].name), tars[wnid]) for wnid in todo]
        if runner is not None and len(arguments) > 1:
            outputs = runner(index_class_columns, arguments)  # unpacks as index_class's result
        else:
            outputs = [index_class(*argument) for argument in arguments]
        total = 0
        for wnid, (members, rejected, nbytes) in zip(todo, outputs, strict=True):
            known[wnid] = cache[wnid] = {
                "stamp": self._stamps[wnid],
                "names": [m.name for m in members],
                "offsets": [m.offset for m in members],
                "sizes": [m.size for m in members],
                "refused": [list(r) for r in rejected],
            }
            total += nbytes
        if todo:
            self._save_cache(cache)
        files: dict[str, tuple[SourceFile, ...]] = {}
        refused: list[tuple[str, str]] = []
        for wnid in wnids:
            entry = known[wnid]
            members = tuple(map(TarMember, entry["names"], entry["offsets"], entry["sizes"]))
            files[wnid] = _files(str(self.folder / tars[wnid].name), members)
            refused.extend((f"{wnid}.tar/{name}", reason) for name, reason in entry["refused"])
        return SplitIndex("train", files, tuple(refused), bytes_read=total)

    def records(self) -> list[SourceRecord]:
        return [
            SourceRecord(self.folder, "train")
        ]  # the folder: hashing thousands of class tars is `verify`'s job
