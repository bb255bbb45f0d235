"""The official ILSVRC2012 release: a train tar of class tars, a flat val tar, and the devkit's labels.

Both tars are indexed by their headers only (cached beside the archive, see io/tar_index.py); a worker reads
each image with one positioned read. Val labels come from the devkit's ground truth, or from the bundled
50,000 labels when the val tar holds exactly the real file names.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from ..columns import PackedFiles, gather
from ..errors import InputError
from ..fetch.catalog import DEVKIT_DIR, DEVKIT_TAR, TRAIN_TAR, VAL_TAR
from ..io.bytesource import is_remote, open_byte_source
from ..io.tar import ClassTar, TarMember, index_class_tar
from ..io.tar_index import MemberColumns, Section, TrainArchive, ValArchive
from ..records import ByteLocation, Sample, SourceFile
from . import devkit
from .base import (
    FolderProbe,
    Runner,
    SourceBase,
    SourceRecord,
    SplitIndex,
    group_by_class,
    group_in_storage_order,
)


def index_class(path: str, class_tar: ClassTar) -> tuple[tuple[TarMember, ...], list[tuple[str, str]], int]:
    """Worker side of indexing: one class tar's members, refusals, and the header bytes read."""
    source = open_byte_source(path)
    try:
        members, refused = index_class_tar(source, class_tar)
        return members, refused, source.bytes_read  # type: ignore[attr-defined]
    finally:
        source.close()  # type: ignore[attr-defined]


class _ClassReply:
    """What :func:`index_class_columns` returns: pickled as columns (a list of names and three arrays of
    64-bit offsets, ~10x cheaper to pickle than 1300 TarMember records), and unpickled straight into
    ``index_class``'s ``(members, refused, bytes read)``, so no columns pile up in the parent."""

    __slots__ = ("members", "nbytes", "refused")

    def __init__(self, members: tuple[TarMember, ...], refused: list[tuple[str, str]], nbytes: int) -> None:
        self.members, self.refused, self.nbytes = members, refused, nbytes

    def __iter__(self) -> Iterator:  # unpacks like index_class's result too (a runner that did not pickle it)
        return iter((self.members, self.refused, self.nbytes))

    def __reduce__(self) -> tuple:
        members = self.members
        columns = (
            [m.name for m in members],
            array("q", [m.offset for m in members]),
            array("q", [m.size for m in members]),
            array("q", [m.header_offset for m in members]),  # type: ignore[type-var]  # a scan sets every one
        )
        return _from_columns, (*columns, self.refused, self.nbytes)


def _from_columns(
    names: list[str], offsets: array, sizes: array, header_offsets: array, refused: list, nbytes: int
) -> tuple[tuple[TarMember, ...], list[tuple[str, str]], int]:
    return tuple(map(TarMember, names, offsets, sizes, header_offsets)), refused, nbytes


def index_class_columns(path: str, class_tar: ClassTar) -> _ClassReply:
    """:func:`index_class` for a process pool: the same result, sent back as columns (see ``_ClassReply``)."""
    return _ClassReply(*index_class(path, class_tar))


def index_class_section(path: str, class_tar: ClassTar) -> tuple[Section, list[tuple[str, str]], int]:
    """:func:`index_class` for a process pool indexing into the archive's cache: the members as the cache
    section they become (``MemberColumns.section``: ~40 bytes an image, one bytes object to pickle), the
    refusals and the header bytes read. The parent keeps the section as it came until it writes
    the cache (``TrainArchive.add_section``): no record per image, no list of names, ever crosses over."""
    members, refused, nbytes = index_class(path, class_tar)
    return MemberColumns.of(members).section(), refused, nbytes


def _location(path: str, member: TarMember) -> ByteLocation:
    # header_offset: the worker checks the member's tar header before trusting the index (stale or altered).
    return ByteLocation(path, member.offset, member.size, header_offset=member.header_offset)


def _stem(name: str) -> str:
    """``Path(name).stem`` without a Path object per image (1.28M of them in a whole-set plan)."""
    base = name.rpartition("/")[2]
    dot = base.rfind(".")
    return base[:dot] if 0 < dot < len(base) - 1 else base


def index_class_tars(
    archive: TrainArchive, wnids: Sequence[str], runner: Runner | None, refusal_prefix: str = ""
) -> SplitIndex:
    """The train split of a tar of class tars (ILSVRC2012 train, fall11): the chosen classes' inner indexes, the
    uncached ones in parallel through ``runner``; only what concerns this build is refused (the outer archive's
    refusals and those inside the chosen classes)."""
    read_before = archive.source.bytes_read
    class_tars = archive.classes()
    path = archive.locator
    uncached = [wnid for wnid in wnids if not archive.has_members(wnid)]
    inner_bytes = 0
    if runner is not None and len(uncached) > 1:
        outputs: list = runner(index_class_section, [(path, class_tars[wnid]) for wnid in uncached])
        for wnid, (section, refused, nbytes) in zip(uncached, outputs, strict=True):
            archive.add_section(wnid, section, refused)
            inner_bytes += nbytes
        del outputs
    archive.save()
    files = _ClassFiles(archive, path, wnids)
    refused = tuple((f"{refusal_prefix}{name}", reason) for name, reason in archive.refused_for(wnids))
    return SplitIndex(
        "train", files, refused, bytes_read=archive.source.bytes_read - read_before + inner_bytes
    )


def _files(path: str, members: Sequence[TarMember]) -> tuple[SourceFile, ...]:
    return tuple(SourceFile(m.name, _stem(m.name), _location(path, m)) for m in members)


def _stems_joined(text: str, count: int) -> str | None:
    """The stems (see _stem) of names joined by "\n", joined alike, when every name has one extension and no
    folder (a class's ILSVRC2012 names); else None."""
    if not count or "/" in text:
        return None
    first = text.partition("\n")[0]
    dot = first.rfind(".")
    extension = first[dot:]
    if not 0 < dot < len(first) - 1 or "." in extension[1:]:
        return None
    lines = text + "\n"
    # Each extension + "\n" ends at one of the ``count`` "\n": the replace removed one from every name exactly
    # when the length dropped by that much (no separate count: one pass less).
    stems = lines.replace(extension + "\n", "\n")
    if len(stems) != len(lines) - count * len(extension):
        return None  # a name without that extension
    if stems[0] == "\n" or "\n\n" in stems:
        return None  # a name that is only the extension
    return stems[:-1]


def packed_files(path: str, columns: MemberColumns) -> Sequence[SourceFile]:
    """A class's members as PackedFiles (keys: the stems of their names)."""
    count = len(columns.offsets)
    if count and not columns.header_gap and min(columns.header_offsets) < 0:  # one without a header offset
        return _files(path, columns.members())
    keys = _stems_joined(columns.text, count)
    if keys is None:
        names = columns.names
        return PackedFiles(
            path, names, [_stem(n) for n in names], columns.offsets, columns.sizes, columns.header_offsets
        )
    # every name is its key + the one extension: only the keys are kept (names are made when asked for)
    first = columns.text.partition("\n")[0]
    suffix = first[first.rfind(".") :]
    if columns.header_gap:  # every header the same distance before its data: not stored
        return PackedFiles.with_suffix(
            path,
            keys,
            suffix,
            columns.offsets,
            columns.sizes,
            header_gap=columns.header_gap,
            largest=columns.largest,
        )
    return PackedFiles.with_suffix(
        path, keys, suffix, columns.offsets, columns.sizes, columns.header_offsets, largest=columns.largest
    )


class _ClassFiles(Mapping[str, Sequence[SourceFile]]):
    """wnid -> its files, read from the archive's index when asked for and not kept: a plan goes through the
    classes one at a time, so it never holds every class's names at once."""

    def __init__(self, archive: TrainArchive, path: str, wnids: Sequence[str]) -> None:
        self._archive, self._path, self._wnids = archive, path, tuple(dict.fromkeys(wnids))

    def __getitem__(self, wnid: str) -> Sequence[SourceFile]:
        if wnid not in self._wnids:
            raise KeyError(wnid)
        files = packed_files(self._path, self._archive.columns(wnid))
        if self._archive.unsaved:  # a malformed cached class was indexed again: keep it
            self._archive.save()
        return files

    def __iter__(self) -> Iterator[str]:
        return iter(self._wnids)

    def __len__(self) -> int:
        return len(self._wnids)


_VAL_NAME_RE = re.compile(r"^ILSVRC2012_val_\d{8}\.JPEG$")
_ALL_VAL_NAMES_RE = re.compile(r"(?:ILSVRC2012_val_\d{8}\.JPEG\n)*ILSVRC2012_val_\d{8}\.JPEG")  # joined by \n
_NOT_VAL = "not an ILSVRC2012 validation image name (ILSVRC2012_val_<8 digits>.JPEG): not labelled, not built"


class IlsvrcSource(SourceBase):
    """``ILSVRC2012_img_train.tar`` + ``ILSVRC2012_img_val.tar`` (+ ``ILSVRC2012_devkit_t12.tar.gz``)."""

    layout: ClassVar[str] = "ilsvrc"
    needs: ClassVar[str] = f"{TRAIN_TAR} and/or {VAL_TAR} (with {DEVKIT_TAR} to label val)"

    def __init__(self, folder: Path | str, cache_dir: Path | None = None) -> None:
        # A folder, or the URL of one (http/https: the archives are read by Range requests).
        self.folder: Path | str = folder if is_remote(folder) else Path(folder)  # type: ignore[assignment]
        self.cache_dir = cache_dir
        self.train_path = self._present(TRAIN_TAR)
        self.val_path = self._present(VAL_TAR)
        self.devkit_path = self._present(DEVKIT_TAR) or self._present(DEVKIT_DIR)
        self._train: TrainArchive | None = None
        self._val: ValArchive | None = None
        self._val_labels: dict[str, str] | None = None
        self._val_names_only = False  # every val member is named ILSVRC2012_val_<8 digits>.JPEG
        self._val_warnings: list[str] = []

    @classmethod
    def detect(cls, probe: FolderProbe) -> bool:
        return probe.has(TRAIN_TAR) or probe.has(VAL_TAR)

    def _present(self, name: str) -> Path | None:
        if isinstance(self.folder, str):  # a URL: HEAD; the devkit (small) is copied into the cache folder
            from ..io.http import cached_copy, join_url, remote_exists
            from ..io.paths import cache_dir

            url = join_url(self.folder, name)
            if url.startswith(("s3://", "gs://")):
                from ..io.objectstore import object_exists as remote_exists
            if name == DEVKIT_DIR or not remote_exists(url):
                return None
            if name == DEVKIT_TAR:
                return Path(cached_copy(url, self.cache_dir or cache_dir() / "remote"))
            return url  # type: ignore[return-value]  # a URL stands for the path of a remote archive
        path = self.folder / name
        return path if path.exists() else None

    def _missing(self, name: str) -> InputError:
        return InputError(
            f"The archive {name} is missing from {self.folder}: run `imagenet-prep fetch --dest {self.folder}`, "
            "or build only the splits you have with --splits."
        )

    # ------------------------------------------------------------------------------------------- parent
    def splits(self) -> tuple[str, ...]:
        return tuple(split for split, path in (("train", self.train_path), ("val", self.val_path)) if path)

    def missing(self) -> list[str]:
        return [
            name
            for name, path in (
                ("train", self.train_path),
                ("val", self.val_path),
                ("devkit", self.devkit_path),
            )
            if path is None
        ]

    def train_archive(self) -> TrainArchive:
        if self._train is None:
            if self.train_path is None:
                raise self._missing(TRAIN_TAR)
            self._train = TrainArchive(self.train_path, cache_dir=self.cache_dir)
        return self._train

    def val_archive(self) -> ValArchive:
        if self._val is None:
            if self.val_path is None:
                raise self._missing(VAL_TAR)
            self._val = ValArchive(self.val_path, cache_dir=self.cache_dir)
        return self._val

    def val_labels(self) -> dict[str, str]:
        """Val file name -> wnid (devkit ground truth, or the bundled labels for the real file names)."""
        if self._val_labels is None:
            archive = self.val_archive()
            kit = devkit.read_devkit_cached(self.devkit_path, self.cache_dir) if self.devkit_path else None
            if kit is not None:
                self._val_warnings = devkit.compare_with_bundled(kit)
            # Only validation image names are labelled: a stray member (a README) is refused, not fatal.
            columns = archive.columns()
            # every member a validation image name (one regex over them all), or those that are
            self._val_names_only = bool(columns.text and _ALL_VAL_NAMES_RE.fullmatch(columns.text))
            names = (
                columns.names
                if self._val_names_only
                else [name for name in columns.names if _VAL_NAME_RE.match(name)]
            )
            joined = columns.text if self._val_names_only else None
            self._val_labels = devkit.val_wnids(names, kit, joined)
            archive.save()
        return self._val_labels

    def classes(self, split: str) -> tuple[str, ...]:
        if split == "train":
            return tuple(self.train_archive().classes())
        return tuple(sorted(set(self.val_labels().values())))

    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        if split == "train":
            return self._index_train(wnids, runner)
        return self._index_val(wnids)

    def _index_train(self, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        return index_class_tars(self.train_archive(), wnids, runner, refusal_prefix="train/")

    def _index_val(self, wnids: Sequence[str]) -> SplitIndex:
        archive = self.val_archive()
        read_before = archive.source.bytes_read
        labels = self.val_labels()
        chosen = set(wnids)
        rows: dict[str, list[int]] = {wnid: [] for wnid in wnids}
        path = archive.locator
        strays: list[tuple[str, str]] = []
        columns = archive.columns()
        names = columns.names
        of_name = list(map(labels.get, names))
        if None in of_name:
            strays = [(name, _NOT_VAL) for name, wnid in zip(names, of_name, strict=True) if wnid is None]
        for row, wnid in enumerate(of_name):
            if wnid in chosen:
                rows[wnid].append(row)
        files: dict[str, Sequence[SourceFile]] = {}
        offsets, sizes, gap = columns.offsets, columns.sizes, columns.header_gap
        # every name ILSVRC2012_val_<8 digits>.JPEG behind a plain header: keys only (name = key + .JPEG), and
        # the header gap (see packed_files); each class's columns gathered in C (operator.itemgetter)
        keys_only = bool(gap and self._val_names_only)
        all_keys: list[str] = []
        if keys_only:  # the keys instead of the names (not both at once: 50,000 strings each)
            del names, of_name
            all_keys = columns.text.replace(".JPEG\n", "\n")[:-5].split("\n")
        all_headers = columns.header_offsets if not keys_only else None
        for wnid, picked in rows.items():
            if all_headers is None:  # the section check put every header (offset - gap) within the tar
                files[wnid] = PackedFiles(
                    path,
                    None,
                    gather(all_keys, picked),
                    array("q", gather(offsets, picked)),
                    array("q", gather(sizes, picked)),
                    name_suffix=".JPEG",
                    header_gap=gap,
                )
                continue
            held = gather(names, picked)
            headers = gather(all_headers, picked)
            if picked and min(headers) < 0:  # a member without a header offset: plain records
                members = columns.members()
                files[wnid] = _files(path, [members[row] for row in picked])
                continue
            keys = [_stem(name) for name in held]
            files[wnid] = PackedFiles(
                path,
                held,
                keys,
                array("q", gather(offsets, picked)),
                array("q", gather(sizes, picked)),
                headers,
            )
        refused = tuple((f"val/{name}", reason) for name, reason in [*archive.refused, *strays])
        return SplitIndex(
            "val",
            files,
            refused,
            tuple(self._val_warnings),
            archive.source.bytes_read - read_before,
        )

    def member_label(self, split: str, wnid: str, name: str) -> str:
        """How a member is named in messages and build.json."""
        return f"train/{wnid}.tar/{name}" if split == "train" else f"val/{name}"

    def group(self, split: str, samples: Sequence[Sample]) -> list[tuple[str, Sequence[Sample]]]:
        # Train: a unit per class (its images are contiguous in its class tar). Val: chunks in archive order.
        return group_by_class(split, samples) if split == "train" else group_in_storage_order(split, samples)

    def records(self) -> list[SourceRecord]:
        return [
            SourceRecord(Path(path.rsplit("/", 1)[-1]) if isinstance(path, str) else path, role)
            for path, role in (
                (self.train_path, "train"),
                (self.val_path, "val"),
                (self.devkit_path, "labels"),
            )
            if path is not None
        ]

    def close(self) -> None:
        for archive in (self._train, self._val):
            if archive is not None:
                archive.close()
