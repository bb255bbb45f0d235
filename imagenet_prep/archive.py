"""Tar index and readers: find every image's (offset, size) in the ILSVRC2012 archives, never extracting.

The train archive is a tar of 1000 ``<wnid>.tar`` class tars, each a tar of ``<wnid>_<n>.JPEG`` images; the
val archive is a flat tar of ``ILSVRC2012_val_<8 digits>.JPEG``. The stdlib ``tarfile`` parses the headers;
the file object it gets is seekable, so it skips member data with a seek and indexing reads about one
512-byte header per member. A :class:`TarMember` records the absolute offset of its data in the OUTER file,
so reading an image (even one inside a class tar) is a single positioned read on the archive.

Everything is read through a :class:`ByteSource` (``size`` + ``read_at``), so an HTTP Range source can plug
in later. Member names are untrusted: a member whose name or type could escape a folder or alias another file
is refused (recorded in ``.refused`` with a reason) and never returned; nothing here writes a member to disk.

Index cache: ``<archive>.index.json`` beside the archive, or in ``cache_dir`` when given, or in the tool's
cache folder (``$IMAGENET_PREP_CACHE``, else ``$XDG_CACHE_HOME/imagenet-prep``, else
``~/.cache/imagenet-prep``; subfolder ``archive-index``) when the archive's folder is not writable. It is
keyed by the archive's size and mtime_ns (a stale cache is ignored) and written atomically, by the parent
process only (workers never write it).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from .atomic import write_text_atomic
from .errors import ArchiveError

__all__ = [
    "ArchiveError",
    "ByteSource",
    "ClassTar",
    "FileByteSource",
    "TarMember",
    "TrainArchive",
    "ValArchive",
    "cache_path_candidates",
    "index_class_tar",
    "read_member",
]

CACHE_FORMAT = 2  # 2: hidden names (._x.JPEG) and over-long names are refused
MAX_NAME_BYTES = 200  # file systems allow 255; the build's temp names add ~20 (real names have <= 30)
_CLASS_TAR_RE = re.compile(r"^n\d{8}\.tar$")
_BLOCK = tarfile.BLOCKSIZE
_FIX_HINT = "re-download it (`imagenet-prep fetch`) or check it with `imagenet-prep verify`"


# --------------------------------------------------------------------------------------------- byte sources
@runtime_checkable
class ByteSource(Protocol):
    """Random-access bytes: a local file today, an HTTP Range reader later."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, size: int) -> bytes: ...


class FileByteSource:
    """A local file read with ``os.pread`` (no shared file position: safe after fork and in threads).

    Pickles as its path only; the file is (re)opened lazily in whichever process uses it. ``bytes_read``
    counts the bytes actually returned by reads in this process; the class attribute ``process_bytes_read``
    counts those of every instance in this process (the build's accounting of index reads).
    """

    process_bytes_read = 0

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._size: int | None = None
        self.bytes_read = 0

    def _open(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                self._size = os.fstat(self._fd).st_size
            except FileNotFoundError:
                raise ArchiveError(f"The archive {self.path} does not exist.") from None
            except IsADirectoryError:
                raise ArchiveError(f"{self.path} is a folder, not an archive file.") from None
            except OSError as exc:
                raise ArchiveError(f"Cannot open the archive {self.path}: {exc.strerror}.") from None
        return self._fd

    @property
    def size(self) -> int:
        self._open()
        assert self._size is not None
        return self._size

    def read_at(self, offset: int, size: int) -> bytes:
        fd = self._open()
        data = os.pread(fd, size, offset)
        # A regular file returns short only at EOF; loop just in case (very large reads on some systems).
        while 0 < len(data) < size:
            more = os.pread(fd, size - len(data), offset + len(data))
            if not more:
                break
            data += more
        self.bytes_read += len(data)
        FileByteSource.process_bytes_read += len(data)
        return data

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileByteSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: nothing useful to do
            self.close()

    def __getstate__(self) -> dict[str, object]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["path"])  # type: ignore[misc, arg-type]

    def __repr__(self) -> str:
        return f"FileByteSource({str(self.path)!r})"


def _as_source(source: ByteSource | str | os.PathLike[str]) -> ByteSource:
    if isinstance(source, (str, os.PathLike)):
        return FileByteSource(source)
    return source


def _describe(source: ByteSource) -> str:
    return str(getattr(source, "path", source))


class _RangeView(io.RawIOBase):
    """A seekable read-only file object over bytes [start, start+length) of a source (what tarfile needs)."""

    def __init__(self, source: ByteSource, start: int, length: int) -> None:
        self._source = source
        self._start = start
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        end = self._length if size is None or size < 0 else min(self._length, self._pos + size)
        if end <= self._pos:
            return b""
        data = self._source.read_at(self._start + self._pos, end - self._pos)
        self._pos += len(data)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# ---------------------------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)  # slots: a full train index holds 1.28M of these
class TarMember:
    """An image in an archive: ``offset`` is where its data starts in the outer archive file."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class ClassTar:
    """One ``<wnid>.tar`` inside the train archive: ``offset`` is where its data (a whole tar) starts."""

    wnid: str
    name: str
    offset: int
    size: int


def read_member(source: ByteSource | str | os.PathLike[str], member: TarMember) -> bytes:
    """The bytes of one member: one positioned read. A short read means the archive is truncated."""
    src = _as_source(source)
    try:
        data = src.read_at(member.offset, member.size)
    finally:
        if src is not source and isinstance(src, FileByteSource):
            src.close()
    if len(data) != member.size:
        raise ArchiveError(
            f"{_describe(src)} is truncated: member {member.name} needs {member.size} bytes at offset "
            f"{member.offset} but only {len(data)} are there; {_FIX_HINT}."
        )
    return data


# ------------------------------------------------------------------------------------------ tar scanning
def _name_problem(name: str, *, flat: bool) -> str | None:
    """Why an untrusted member name is refused (None = fine). ``flat``: no folders allowed at all."""
    if name in ("", "."):
        return "not a file name"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid UTF-8"
    if any(ord(ch) < 32 or ch == "\x7f" for ch in name):
        return "name holds control characters"
    if "\\" in name:
        return "name holds a backslash"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "path with '..'"
    if flat and len(parts) > 1:
        return "name holds '/' (a folder) where a plain file name is expected"
    if parts[-1].startswith("."):
        # macOS '._x.JPEG' resource forks, and names that would collide with the build's own '.tmp-' files.
        return "hidden file name (starts with '.')"
    if len(parts[-1].encode("utf-8")) > MAX_NAME_BYTES:
        return f"name longer than {MAX_NAME_BYTES} bytes (no room for the output's temporary name)"
    return None


def _type_problem(info: tarfile.TarInfo) -> str | None:
    if info.issym():
        return f"symbolic link (to {info.linkname!r})"
    if info.islnk():
        return f"hard link (to {info.linkname!r})"
    if info.ischr() or info.isblk():
        return "device file"
    if info.isfifo():
        return "FIFO"
    if info.isdir():
        return "folder"
    if not info.isreg():
        return "not a regular file"
    if info.issparse():
        return "sparse file (its data is not stored contiguously)"
    # The stdlib's own extraction filter, as a second opinion (it never writes: it only inspects the member).
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is not None:
        try:
            data_filter(info, "/nonexistent-imagenet-prep-dest")
        except tarfile.FilterError as exc:
            return f"refused by tarfile's data filter: {exc}"
    return None


def _scan_tar(
    source: ByteSource, start: int, length: int, label: str, *, tolerate_cut_last: bool
) -> tuple[list[TarMember], list[tuple[str, str]]]:
    """Regular members of the tar at [start, start+length) with absolute data offsets, plus refusals.

    Raises ArchiveError for a non-tar, or a tar cut or garbled inside a header. A member whose data runs past
    the end is refused; then the whole tar is an error unless ``tolerate_cut_last`` (a class tar: its other
    images are still good data).
    """
    head = source.read_at(start, min(length, 2))
    if head == b"\x1f\x8b":
        raise ArchiveError(
            f"{label} is gzip-compressed, but the ILSVRC2012 image archives are plain tars (images are read "
            f"by offset). Use the original archive; {_FIX_HINT}."
        )
    members: list[TarMember] = []
    refused: list[tuple[str, str]] = []
    names: set[str] = set()
    try:
        # 'r:' = plain tar: no compression sniffing, and tarfile seeks over member data.
        tar = tarfile.open(fileobj=_RangeView(source, start, length), mode="r:")  # noqa: SIM115
    except tarfile.ReadError as exc:
        raise ArchiveError(f"{label} is not a tar archive ({exc}); {_FIX_HINT}.") from None
    try:
        while (info := tar.next()) is not None:
            name = info.name[2:] if info.name.startswith("./") else info.name
            if info.isreg() and info.offset_data + info.size > length:
                refused.append((name, f"truncated: {info.size} bytes of data, the file ends before them"))
                if tolerate_cut_last:
                    return members, refused
                raise ArchiveError(
                    f"{label} is truncated: its last member {name} is cut short "
                    f"({info.offset_data + info.size - length} bytes missing); {_FIX_HINT}."
                )
            problem = _name_problem(name, flat=True) or _type_problem(info)
            if problem is None and name in names:
                problem = "duplicate name"
            if problem is None:
                names.add(name)
                members.append(TarMember(name, start + info.offset_data, info.size))
            elif name not in ("", ".", "./"):  # a '.' root entry is harmless noise, not worth reporting
                refused.append((name, problem))
        _check_end_marker(source, start, length, tar.offset, label)
    except tarfile.TarError as exc:
        raise ArchiveError(f"{label} is damaged ({exc}); {_FIX_HINT}.") from None
    finally:
        tar.close()
    return members, refused


def _check_end_marker(source: ByteSource, start: int, length: int, offset: int, label: str) -> None:
    """tarfile stops quietly at a cut or garbled header; a complete tar has a zero block where it stopped."""
    if offset >= length:
        raise ArchiveError(
            f"{label} is truncated: it ends without the tar end-of-archive marker; {_FIX_HINT}."
        )
    block = source.read_at(start + offset, min(_BLOCK, length - offset))
    if len(block) < _BLOCK or block.count(0) != _BLOCK:
        raise ArchiveError(
            f"{label} is truncated or damaged at byte {offset}: expected another member or the "
            f"end-of-archive marker; {_FIX_HINT}."
        )


def index_class_tar(
    path: ByteSource | str | os.PathLike[str], class_tar: ClassTar
) -> tuple[tuple[TarMember, ...], list[tuple[str, str]]]:
    """Index one class tar of the train archive by reading only its headers.

    Module-level and picklable so the build can index several classes in a process pool (pass the archive
    path; each worker opens its own file). Returns the images (absolute offsets in the outer archive) and the
    refused inner members with reasons. A cut last image is refused, not fatal; a class tar that is not a tar
    or is garbled raises ArchiveError naming it.
    """
    source = _as_source(path)
    label = f"The class tar {class_tar.name} inside {_describe(source)}"
    try:
        members, refused = _scan_tar(source, class_tar.offset, class_tar.size, label, tolerate_cut_last=True)
    finally:
        if source is not path and isinstance(source, FileByteSource):
            source.close()
    return tuple(members), refused


# ------------------------------------------------------------------------------------------ index cache
def _user_cache_dir() -> Path:
    # The tool's one cache folder: $IMAGENET_PREP_CACHE, else $XDG_CACHE_HOME/imagenet-prep, else ~/.cache.
    from .wordnet import cache_dir

    return cache_dir() / "archive-index"


def _shared_cache_name(archive: Path) -> str:
    # Archives with one name in different folders must not share a cache file in a common cache folder.
    digest = hashlib.sha1(str(archive.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{archive.name}.{digest}.index.json"


def cache_path_candidates(
    archive: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Where an archive's index cache is looked for and written, in order of preference."""
    archive = Path(archive)
    if cache_dir is not None:
        return [Path(cache_dir) / _shared_cache_name(archive)]
    return [archive.with_name(archive.name + ".index.json"), _user_cache_dir() / _shared_cache_name(archive)]


def _pack(members: tuple[TarMember, ...] | list[TarMember]) -> dict[str, list]:
    # Columns, not objects: a full train index is 1.28M members, this keeps the JSON small and fast to load.
    return {
        "names": [m.name for m in members],
        "offsets": [m.offset for m in members],
        "sizes": [m.size for m in members],
    }


def _unpack(packed: dict[str, list]) -> tuple[TarMember, ...]:
    return tuple(map(TarMember, packed["names"], packed["offsets"], packed["sizes"]))


class _IndexedArchive:
    """Shared plumbing: the byte source, the (size, mtime_ns) key, and the cache file."""

    _KIND = ""
    _EXPECTED = ""

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise ArchiveError(
                f"The archive {self.path} is missing: run `imagenet-prep fetch --dest {self.path.parent}` or "
                f"point --source at the folder that holds {self._EXPECTED}."
            ) from None
        except OSError as exc:
            raise ArchiveError(f"Cannot read the archive {self.path}: {exc.strerror}.") from None
        if not self.path.is_file():
            raise ArchiveError(f"{self.path} is not a file; expected the archive {self._EXPECTED}.")
        self._key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        self.source = FileByteSource(self.path)
        self.cache_path: Path | None = None  # where the index was loaded from or saved to
        self._dirty = False

    def _load_cache(self) -> dict | None:
        for candidate in cache_path_candidates(self.path, self.cache_dir):
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if (
                isinstance(data, dict)
                and data.get("format") == CACHE_FORMAT
                and data.get("kind") == self._KIND
                and data.get("size") == self._key["size"]
                and data.get("mtime_ns") == self._key["mtime_ns"]
            ):
                self.cache_path = candidate
                return data
        return None

    def _write_cache(self, payload: dict) -> Path | None:
        doc = {"format": CACHE_FORMAT, "kind": self._KIND, "archive": self.path.name, **self._key, **payload}
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=True)
        for candidate in cache_path_candidates(self.path, self.cache_dir):
            folder = candidate.parent
            try:
                if folder != self.path.parent:
                    folder.mkdir(parents=True, exist_ok=True)
                elif not os.access(folder, os.W_OK):
                    continue
                write_text_atomic(candidate, text)
            except OSError:
                continue
            self.cache_path = candidate
            self._dirty = False
            return candidate
        return None

    def close(self) -> None:
        self.source.close()

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TrainArchive(_IndexedArchive):
    """``ILSVRC2012_img_train.tar``: an outer index of class tars and, on demand, an inner index per class.

    Only headers are read: listing the classes reads ~1 KB per class; indexing one class reads ~512 bytes per
    image of that class. Call :meth:`save` to keep the index for next time.
    """

    _KIND = "train"
    _EXPECTED = "ILSVRC2012_img_train.tar"

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(path, cache_dir)
        self._classes: dict[str, ClassTar] | None = None
        self._outer_refused: list[tuple[str, str]] = []
        self._members: dict[str, tuple[TarMember, ...]] = {}
        self._packed: dict[str, dict[str, list]] = {}  # cached inner indexes, unpacked on first use
        self._inner_refused: dict[str, list[tuple[str, str]]] = {}
        cached = self._load_cache()
        if cached is not None:
            self._classes = {row[0]: ClassTar(*row) for row in cached["classes"]}
            self._outer_refused = [tuple(r) for r in cached["refused"]]
            for wnid, packed in cached["members"].items():
                self._packed[wnid] = packed
                self._inner_refused[wnid] = [tuple(r) for r in packed.get("refused", [])]

    def classes(self) -> dict[str, ClassTar]:
        """wnid -> its class tar, in archive order."""
        if self._classes is None:
            self._classes, self._outer_refused = self._index_outer()
            self._dirty = True
        return dict(self._classes)

    def _index_outer(self) -> tuple[dict[str, ClassTar], list[tuple[str, str]]]:
        label = f"The train archive {self.path}"
        members, refused = _scan_tar(self.source, 0, self.source.size, label, tolerate_cut_last=False)
        classes: dict[str, ClassTar] = {}
        for m in members:
            if _CLASS_TAR_RE.match(m.name):
                classes[m.name[:-4]] = ClassTar(m.name[:-4], m.name, m.offset, m.size)
            else:
                refused.append((m.name, "not a class tar (expected <wnid>.tar, e.g. n01440764.tar)"))
        if not classes:
            raise ArchiveError(
                f"{self.path} holds no <wnid>.tar class tars ({len(members)} other members): is it "
                f"{self._EXPECTED}? The train archive is a tar of 1000 class tars."
            )
        return classes, refused

    def members(self, wnid: str) -> tuple[TarMember, ...]:
        """The images of one class (built on demand from that class tar's headers only)."""
        if wnid in self._members:
            return self._members[wnid]
        if wnid in self._packed:
            self._members[wnid] = _unpack(self._packed.pop(wnid))
            return self._members[wnid]
        classes = self.classes()
        if wnid not in classes:
            raise ArchiveError(
                f"The class {wnid} is not in {self.path} (it holds {len(classes)} class tars)."
            )
        members, refused = index_class_tar(self.source, classes[wnid])
        self.add_members(wnid, members, refused)
        return members

    def add_members(
        self, wnid: str, members: tuple[TarMember, ...], refused: list[tuple[str, str]] | None = None
    ) -> None:
        """Merge an inner index built elsewhere (e.g. by :func:`index_class_tar` in a worker process)."""
        if wnid not in self.classes():
            raise ArchiveError(f"The class {wnid} is not in {self.path}.")
        self._members[wnid] = tuple(members)
        self._packed.pop(wnid, None)
        self._inner_refused[wnid] = list(refused or [])
        self._dirty = True

    def has_members(self, wnid: str) -> bool:
        """Whether the inner index of ``wnid`` is already known (so :meth:`members` reads nothing)."""
        return wnid in self._members or wnid in self._packed

    def indexed_wnids(self) -> tuple[str, ...]:
        """Classes whose inner index is known (from this session or the cache)."""
        return tuple(sorted({*self._members, *self._packed}))

    @property
    def refused(self) -> list[tuple[str, str]]:
        """Refused members (name, reason): outer ones by name, inner ones as ``<wnid>.tar/<name>``."""
        out = list(self._outer_refused)
        for wnid in sorted(self._inner_refused):
            out.extend((f"{wnid}.tar/{name}", reason) for name, reason in self._inner_refused[wnid])
        return out

    def refused_for(self, wnids: Iterable[str]) -> list[tuple[str, str]]:
        """Like :attr:`refused`, but only what concerns a build of ``wnids``: every outer refusal, and the
        inner ones of those classes (the cache may hold refusals of classes indexed for another build)."""
        chosen = set(wnids)
        out = list(self._outer_refused)
        for wnid in sorted(chosen & set(self._inner_refused)):
            out.extend((f"{wnid}.tar/{name}", reason) for name, reason in self._inner_refused[wnid])
        return out

    def save(self) -> Path | None:
        """Write the index cache (atomically) if anything new was indexed; returns where, or None if no cache
        folder is writable (the index then simply is not kept)."""
        classes = self.classes()
        if not self._dirty and self.cache_path is not None:
            return self.cache_path
        packed = dict(self._packed)
        packed.update({wnid: _pack(members) for wnid, members in self._members.items()})
        for wnid, entry in packed.items():
            entry["refused"] = [list(r) for r in self._inner_refused.get(wnid, [])]
        payload = {
            "classes": [[c.wnid, c.name, c.offset, c.size] for c in classes.values()],
            "refused": [list(r) for r in self._outer_refused],
            "members": packed,
        }
        return self._write_cache(payload)


class ValArchive(_IndexedArchive):
    """``ILSVRC2012_img_val.tar``: a flat tar of images."""

    _KIND = "val"
    _EXPECTED = "ILSVRC2012_img_val.tar"

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(path, cache_dir)
        self._members: tuple[TarMember, ...] | None = None
        self._refused: list[tuple[str, str]] = []
        cached = self._load_cache()
        if cached is not None:
            self._members = _unpack(cached["members"])
            self._refused = [tuple(r) for r in cached["refused"]]

    def members(self) -> tuple[TarMember, ...]:
        """The images, in archive order."""
        if self._members is None:
            label = f"The val archive {self.path}"
            members, self._refused = _scan_tar(
                self.source, 0, self.source.size, label, tolerate_cut_last=False
            )
            if not members:
                raise ArchiveError(f"{self.path} holds no images: is it {self._EXPECTED}?")
            self._members = tuple(members)
            self._dirty = True
        return self._members

    @property
    def refused(self) -> list[tuple[str, str]]:
        return list(self._refused)

    def save(self) -> Path | None:
        """Write the index cache (atomically); returns where, or None if no cache folder is writable."""
        members = self.members()
        if not self._dirty and self.cache_path is not None:
            return self.cache_path
        return self._write_cache({"members": _pack(members), "refused": [list(r) for r in self._refused]})
