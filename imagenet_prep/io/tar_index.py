"""The cached index of the ILSVRC2012 image archives: a tar of class tars (train) and a flat tar (val).

Cache: ``<archive>.index.json`` beside the archive, or in ``cache_dir`` when given, or in the tool's cache
folder (:func:`imagenet_prep.io.paths.cache_dir`, subfolder ``archive-index``) when the archive's folder is
not writable. It is keyed by the archive's size and mtime_ns (a stale cache is ignored) and written
atomically, by the parent process only (workers never write it). Its contents are checked when loaded (see
"cache schema"): a malformed cache is ignored and rebuilt. It records each member's header offset, so every
worker read can check the member's tar header first (sources/base.py): no cache can mislabel an image.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import operator
import os
import re
import sys
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ArchiveError
from .atomic import atomic_file, write_bytes_atomic
from .bytesource import FileByteSource, is_remote, open_byte_source
from .paths import cache_dir as _tool_cache_dir
from .tar import ClassTar, TarMember, index_class_tar, scan_tar

if TYPE_CHECKING:
    from .http import HttpByteSource

# 2: hidden names (._x.JPEG) and over-long names are refused; 3: header offsets, sparse refused; 4: the train
# and val caches are a JSON header line + one binary section per class, read only for the classes a build uses;
# 5: a section whose headers all sit one gap before their data stores the gap, not the header offsets
CACHE_FORMAT = 5
_CLASS_TAR_RE = re.compile(r"^n\d{8}\.tar$")


def _user_cache_dir() -> Path:
    return _tool_cache_dir() / "archive-index"


def _shared_cache_name(archive: Path | str, suffix: str = ".index.json") -> str:
    # Archives with one name in different folders must not share a cache file in a common cache folder.
    if isinstance(archive, str):  # a URL
        digest = hashlib.sha1(archive.encode()).hexdigest()[:12]
        return f"{archive.rstrip('/').rsplit('/', 1)[-1]}.{digest}{suffix}"
    digest = hashlib.sha1(str(archive.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{archive.name}.{digest}{suffix}"


def cache_path_candidates(
    archive: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    suffix: str = ".index.json",
) -> list[Path]:
    """Where an archive's index cache is looked for and written, in order of preference (``suffix`` tells
    apart several indexes of one file, e.g. a zip's member listing and the listing of a tar.gz inside it)."""
    if is_remote(archive):  # never beside a remote archive
        return [Path(cache_dir or _user_cache_dir()) / _shared_cache_name(str(archive), suffix)]
    archive = Path(archive)
    if cache_dir is not None:
        return [Path(cache_dir) / _shared_cache_name(archive, suffix)]
    return [archive.with_name(archive.name + suffix), _user_cache_dir() / _shared_cache_name(archive, suffix)]


def read_folder_cache(base: Path, cache_dir: str | os.PathLike[str] | None, fmt: int, field: str) -> dict:
    """The entries (``field``) of a folder's index cache: one file for many archives, each entry keyed by its
    archive's size and mtime_ns by the caller (``<base>.index.json``, or the tool's cache folder); {} when absent
    or of another format. The caller checks each entry before trusting it."""
    for candidate in cache_path_candidates(base, cache_dir):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(candidate.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("format") == fmt and isinstance(data.get(field), dict):
                return dict(data[field])
    return {}


def write_folder_cache(
    base: Path, cache_dir: str | os.PathLike[str] | None, fmt: int, field: str, entries: dict
) -> None:
    """Write a folder's index cache atomically, beside the archives when that folder is writable, else in the
    cache folder (parent process only); nothing when no place is writable (the index is then not kept)."""
    text = json.dumps({"format": fmt, field: entries}, separators=(",", ":"))
    for candidate in cache_path_candidates(base, cache_dir):
        try:
            if candidate.parent != base.parent:
                candidate.parent.mkdir(parents=True, exist_ok=True)
            elif not os.access(base.parent, os.W_OK):
                continue
            write_bytes_atomic(candidate, text.encode())
            return
        except OSError:
            continue


# ------------------------------------------------------------------------------------------ cache schema
# A cache is a file anyone may have edited: every value is checked before it is trusted. Anything malformed
# (wrong types, negative or huge values, offsets outside the archive or outside their class tar) makes the
# cache count as absent, and the index is rebuilt from the archive's headers (and the cache rewritten).
def _is_int(value: object) -> bool:
    return type(value) is int


def refusals_ok(rows: object) -> bool:
    return isinstance(rows, list) and all(
        isinstance(r, list) and len(r) == 2 and all(isinstance(x, str) for x in r) for r in rows
    )


class IndexedArchive:
    """Shared plumbing: the byte source, the (size, mtime_ns) key, and the cache file."""

    _KIND = ""
    _EXPECTED = ""
    _SUFFIX = ".index.json"

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.cache_path: Path | None = None  # where the index was loaded from or saved to
        self._dirty = False
        if is_remote(path):
            self._open_remote(str(path))
            return
        self.path = Path(path)
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
        self._key: dict[str, object] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        self.source: FileByteSource | HttpByteSource = FileByteSource(self.path)
        self.locator = str(self.path)  # what the build's ByteLocations name
        self._cache_id: str | Path = self.path

    def _open_remote(self, url: str) -> None:
        """An archive on an HTTP(S) server or in an object store: read by ranges; the cache is keyed by URL +
        size + ETag or Last-Modified (pinned at first contact) and lives in the cache folder."""
        source: Any = open_byte_source(url)  # HttpByteSource, ObjectByteSource
        self.source = source
        self.path = Path(source.name)
        from .http import redact  # the cache file never holds a user:password@ from the URL

        self._key = {"url": redact(source.url), **source.validator}  # HEAD: size and validator
        self.locator = source.locator  # url#etag=...: workers check they read this very version
        self._cache_id = source.url

    def _load_cache(self) -> dict | None:
        for candidate in cache_path_candidates(self._cache_id, self.cache_dir, self._SUFFIX):
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if (
                isinstance(data, dict)
                and data.get("format") == CACHE_FORMAT
                and data.get("kind") == self._KIND
                and all(data.get(key) == value for key, value in self._key.items())
                and self._schema_ok(data)
            ):
                self.cache_path = candidate
                return data
        return None

    def _schema_ok(self, data: dict) -> bool:
        """Whether a cache's contents are well-formed for this archive (see "cache schema" above)."""
        raise NotImplementedError

    def _write_cache(self, payload: dict) -> Path | None:
        doc = {"format": CACHE_FORMAT, "kind": self._KIND, "archive": self.path.name, **self._key, **payload}
        return self._write_cache_bytes(json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode())

    def _write_cache_bytes(self, data: bytes | Sequence[bytes]) -> Path | None:
        """Write the cache (``data``, or its parts in order: a whole-set index is ~60 MB of sections, written
        one by one rather than joined into one more copy first)."""
        for candidate in cache_path_candidates(self._cache_id, self.cache_dir, self._SUFFIX):
            folder = candidate.parent
            try:
                if not isinstance(self._cache_id, Path) or folder != self.path.parent:
                    folder.mkdir(parents=True, exist_ok=True)
                elif not os.access(folder, os.W_OK):
                    continue
                if isinstance(data, bytes):
                    write_bytes_atomic(candidate, data)
                else:
                    with atomic_file(candidate) as file:
                        for part in data:
                            file.write(part)
            except OSError:
                continue
            self.cache_path = candidate
            self._dirty = False
            return candidate
        return None

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> IndexedArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------ sectioned cache
# Format 5 (train and val): one JSON header line (format, kind, key, classes, refusals, and "sections": name ->
# [start, length, count, gap], start counted from the end of the header line), then the sections. A section
# holds ``count`` members as columns: offsets, sizes, and (gap 0) header offsets, little-endian int64 each, then
# the names in UTF-8 joined by "\n" (a member name never holds a control character: io/tar.py refuses those).
# A gap above 0 says every member's header starts that many bytes before its data (plain 512-byte headers:
# every ILSVRC2012 member), so the header offsets are not stored, nor checked one by one. A build reads the
# header and the sections of its classes only; each section is checked like the whole cache used to be (a
# malformed section counts as absent: that class is indexed again and the cache rewritten).
Section = tuple[bytes, int, int]  # (the section's bytes, its member count, its header gap)
_EVEN_BYTES = bytes(range(0, 256, 2))
_LOW_HALF = bytes(range(128))  # the high byte of a non-negative little-endian int64


class MemberColumns:
    """The members of one class tar (or of the val tar) as columns. ``header_gap``: every header starts this
    many bytes before its data (then the header offsets are made from the offsets when asked for)."""

    __slots__ = ("_headers", "header_gap", "largest", "offsets", "sizes", "text")

    def __init__(
        self,
        text: str,
        offsets: array,
        sizes: array,
        header_offsets: array | None,
        header_gap: int = 0,
        largest: int | None = None,
    ) -> None:
        self.text = text  # the names joined by "\n"
        self.offsets = offsets  # array("q")
        self.sizes = sizes
        self._headers = header_offsets  # -1: none known; None with a header gap
        self.header_gap = header_gap
        # max(sizes) when the section check found it (the plan's member-size cap then needs no pass of its own)
        self.largest = largest

    @property
    def header_offsets(self) -> array:
        if self._headers is None:
            gap = self.header_gap
            return array("q", [offset - gap for offset in self.offsets])
        return self._headers

    @property
    def names(self) -> list[str]:
        return self.text.split("\n") if len(self.offsets) else []

    @classmethod
    def of(cls, members: Sequence[TarMember]) -> MemberColumns:
        return cls(
            "\n".join(m.name for m in members),
            array("q", [m.offset for m in members]),
            array("q", [m.size for m in members]),
            array("q", [-1 if m.header_offset is None else m.header_offset for m in members]),
        )

    def members(self) -> tuple[TarMember, ...]:
        return tuple(
            map(
                TarMember,
                self.names,
                self.offsets.tolist(),
                self.sizes.tolist(),
                self.header_offsets.tolist(),
            )
        )

    def section(self) -> Section:
        """The cache section of these members (see "sectioned cache" above)."""
        offsets, headers, count = self.offsets, self.header_offsets, len(self.offsets)
        gap = offsets[0] - headers[0] if count and headers[0] >= 0 else 0
        if gap > 0 and all(map(operator.eq, map(operator.sub, offsets, headers), itertools.repeat(gap))):
            return _le_bytes(offsets + self.sizes) + self.text.encode("utf-8"), count, gap
        return _le_bytes(offsets + self.sizes + headers) + self.text.encode("utf-8"), count, 0


def _le_bytes(values: array) -> bytes:
    """Little-endian int64s (the cache is the same file on any machine)."""
    if sys.byteorder == "big":
        values = array("q", values)
        values.byteswap()
    return values.tobytes()


def _le_ints(data: bytes | memoryview) -> array:
    values = array("q")
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _split_section(data: bytes, count: int, gap: int) -> MemberColumns:
    """A section this process made (or has checked) as columns, without checking it again."""
    fixed = (16 if gap else 24) * count
    arrays = _le_ints(memoryview(data)[:fixed])
    headers = None if gap else arrays[2 * count :]
    text = data[fixed:].decode("utf-8")
    return MemberColumns(text, arrays[:count], arrays[count : 2 * count], headers, gap)


def _decode_section(data: bytes, count: int, gap: int, start: int, end: int) -> MemberColumns | None:
    """A section's members if it is well-formed for a tar spanning [start, end) of the archive, else None.
    Each check runs in C over a column (a whole-set plan checks 1.28M members)."""
    fixed = (16 if gap else 24) * count
    if len(data) < fixed:
        return None
    arrays = _le_ints(memoryview(data)[:fixed])
    offsets, sizes = arrays[:count], arrays[count : 2 * count]
    headers = None if gap else arrays[2 * count :]
    try:
        text = data[fixed:].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if count and (
        text.count("\n") != count - 1 or "\n\n" in text or text[:1] in ("", "\n") or text[-1] == "\n"
    ):
        return None  # not ``count`` non-empty names
    if not count:
        return None if text else MemberColumns(text, offsets, sizes, headers, gap)
    # A tar's data starts on a 512-byte block: the low 9 bits of each offset (little-endian on disk) are 0.
    low, second = data[0 : 8 * count : 8], data[1 : 8 * count : 8]
    if low.count(0) != count or second.translate(None, _EVEN_BYTES):
        return None
    if data[8 * count + 7 : 16 * count : 8].translate(None, _LOW_HALF):  # a size's sign bit (little-endian)
        return None
    # A scan lists a tar's members in archive order: then its first and last offsets are the extremes (one
    # pass that compares, instead of a min and a max); any other order is still checked with min and max.
    if all(map(operator.lt, offsets, itertools.islice(offsets, 1, None))):
        first_data, last_data = offsets[0], offsets[-1]
    else:
        first_data, last_data = min(offsets), max(offsets)
    largest = max(sizes)
    if last_data + largest > end and max(map(operator.add, offsets, sizes)) > end:
        return None  # data past the tar's end
    if gap:  # every header gap bytes before its data: within the tar, before the data
        if first_data - gap < start:
            return None
        return MemberColumns(text, offsets, sizes, None, gap, largest)
    assert headers is not None
    if not (min(headers) >= start and first_data >= 0 and all(map(operator.lt, headers, offsets))):
        return None
    return MemberColumns(text, offsets, sizes, headers, 0, largest)


def _sections_ok(table: object, limit: int) -> bool:
    return isinstance(table, dict) and all(
        isinstance(name, str)
        and isinstance(entry, list)
        and len(entry) == 4
        and all(_is_int(v) and v >= 0 for v in entry)
        and entry[0] + entry[1] <= limit
        and entry[1] >= (16 if entry[3] else 24) * entry[2]
        for name, entry in table.items()
    )


class _SectionedArchive(IndexedArchive):
    """An archive whose cache is sectioned (format 4, above): sections are read one at a time, on demand."""

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(path, cache_dir)
        self._sections: dict[str, list[int]] = {}
        self._cache_file: tuple[Path, int, int, int, int] | None = None  # path, inode, size, mtime_ns, base

    def _load_header(self) -> dict | None:
        for candidate in cache_path_candidates(self._cache_id, self.cache_dir, self._SUFFIX):
            try:
                with open(candidate, "rb") as file:
                    line = file.readline()
                    st = os.fstat(file.fileno())
                header = json.loads(line)
            except (OSError, ValueError):
                continue
            if (
                isinstance(header, dict)
                and header.get("format") == CACHE_FORMAT
                and header.get("kind") == self._KIND
                and all(header.get(key) == value for key, value in self._key.items())
                and _sections_ok(header.get("sections"), st.st_size - len(line))
                and self._schema_ok(header)
            ):
                self.cache_path = candidate
                self._cache_file = (candidate, st.st_ino, st.st_size, st.st_mtime_ns, len(line))
                self._sections = dict(header["sections"])
                return header
        return None

    def _read_section(self, name: str) -> Section | None:
        """A section's bytes, member count and header gap, None when the cache file changed or cannot be
        read."""
        entry = self._sections.get(name)
        if entry is None or self._cache_file is None:
            return None
        path, inode, size, mtime_ns, base = self._cache_file
        start, length, count, gap = entry
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                st = os.fstat(fd)
                if (st.st_ino, st.st_size, st.st_mtime_ns) != (inode, size, mtime_ns):
                    return None
                data = os.pread(fd, length, base + start)
            finally:
                os.close(fd)
        except OSError:
            return None
        return (data, count, gap) if len(data) == length else None

    def _load_section(self, name: str, start: int, end: int) -> MemberColumns | None:
        """The section's members, or None (and the section is forgotten) when it is absent or malformed."""
        read = self._read_section(name)
        columns = None if read is None else _decode_section(*read, start, end)
        if columns is None:
            self._sections.pop(name, None)
        return columns

    def _write_sections(self, payload: dict, sections: dict[str, Section]) -> Path | None:
        table: dict[str, list[int]] = {}
        position = 0
        for name, (data, count, gap) in sections.items():
            table[name] = [position, len(data), count, gap]
            position += len(data)
        doc = {"format": CACHE_FORMAT, "kind": self._KIND, "archive": self.path.name, **self._key, **payload}
        doc["sections"] = table
        head = json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"
        written = self._write_cache_bytes([head, *(data for data, _, _ in sections.values())])
        if written is not None:
            try:
                st = os.stat(written)
            except OSError:
                self._cache_file = None
            else:
                self._cache_file = (written, st.st_ino, st.st_size, st.st_mtime_ns, len(head))
                self._sections = table
        return written


def read_cache_document(path: str | os.PathLike[str]) -> dict:
    """A sectioned cache as one document (for tests and inspection): its header, with "members" holding each
    section's columns as lists (name -> {"names", "offsets", "sizes", "header_offsets"})."""
    data = Path(path).read_bytes()
    line, _, body = data.partition(b"\n")
    doc = json.loads(line)
    members = {}
    for name, (start, length, count, gap) in doc.pop("sections").items():
        section = body[start : start + length]
        fixed = (16 if gap else 24) * count
        ints = _le_ints(section[:fixed]).tolist()
        arrays = [ints[:count], ints[count : 2 * count], ints[2 * count :]]
        if gap:
            arrays[2] = [offset - gap for offset in arrays[0]]
        text = section[fixed:].decode("utf-8")
        members[name] = {
            "names": text.split("\n") if count else [],
            "offsets": arrays[0],
            "sizes": arrays[1],
            "header_offsets": arrays[2],
        }
    doc["members"] = members
    return doc


def write_cache_document(path: str | os.PathLike[str], doc: dict) -> None:
    """Write a document shaped like :func:`read_cache_document`'s back as a sectioned cache (for tests; the
    header offsets are written as they are, gap 0)."""
    doc = dict(doc)
    table, parts, position = {}, [], 0
    for name, packed in doc.pop("members").items():
        count = len(packed["names"])
        ints = array("q", [*packed["offsets"], *packed["sizes"], *packed["header_offsets"]])
        data = _le_bytes(ints) + "\n".join(packed["names"]).encode("utf-8")
        table[name] = [position, len(data), count, 0]
        parts.append(data)
        position += len(data)
    doc["sections"] = table
    head = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
    Path(path).write_bytes(b"".join([head, *parts]))


class TrainArchive(_SectionedArchive):
    """``ILSVRC2012_img_train.tar``: an outer index of class tars and, on demand, an inner index per class.

    Only headers are read: listing the classes reads ~1 KB per class; indexing one class reads ~512 bytes per
    image of that class. Call :meth:`save` to keep the index for next time. A class read from the cache is not
    kept in memory (a whole-set plan would hold 1.28M names twice): :meth:`columns` reads its section again.
    """

    _KIND = "train"
    _EXPECTED = "ILSVRC2012_img_train.tar"
    _LABEL = "The train archive"
    _WHAT = "The train archive is a tar of 1000 class tars."

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(path, cache_dir)
        self._classes: dict[str, ClassTar] | None = None
        self._outer_refused: list[tuple[str, str]] = []
        self._columns: dict[str, MemberColumns] = {}  # indexed in this session, not yet saved
        # indexed in this session by a pool worker, as the cache section it made (bytes, count): ~45 bytes an
        # image in the parent until saved, instead of a record per image (a cold whole-set index)
        self._encoded: dict[str, Section] = {}
        self._members: dict[str, tuple[TarMember, ...]] = {}  # members() asked for (API callers)
        self._inner_refused: dict[str, list[tuple[str, str]]] = {}
        cached = self._load_header()
        if cached is not None:
            self._classes = {row[0]: ClassTar(*row) for row in cached["classes"]}
            self._outer_refused = [tuple(r) for r in cached["refused"]]
            for wnid, rows in cached["inner_refused"].items():
                self._inner_refused[wnid] = [tuple(r) for r in rows]

    def _span_limit(self, data: dict) -> int | None:
        """Where class tars must end: the archive's size (an archive read as a stream: its recorded size)."""
        return self.source.size

    def _schema_ok(self, data: dict) -> bool:
        size = self._span_limit(data)
        if size is None:
            return False
        classes, sections, inner = data.get("classes"), data.get("sections"), data.get("inner_refused")
        if not (
            isinstance(classes, list)
            and isinstance(sections, dict)
            and isinstance(inner, dict)
            and refusals_ok(data.get("refused"))
            and all(refusals_ok(rows) for rows in inner.values())
        ):
            return False
        spans: set[str] = set()
        for row in classes:
            if not (isinstance(row, list) and len(row) == 4):
                return False
            wnid, name, offset, length = row
            if not (isinstance(wnid, str) and _CLASS_TAR_RE.match(f"{wnid}.tar") and name == f"{wnid}.tar"):
                return False
            if not (_is_int(offset) and _is_int(length) and offset > 0 and 0 <= length <= size - offset):
                return False
            spans.add(wnid)
        return all(wnid in spans for wnid in sections) and all(wnid in sections for wnid in inner)

    def classes(self) -> dict[str, ClassTar]:
        """wnid -> its class tar, in archive order."""
        if self._classes is None:
            self._classes, self._outer_refused = self._index_outer()
            self._dirty = True
        return dict(self._classes)

    def _index_outer(self) -> tuple[dict[str, ClassTar], list[tuple[str, str]]]:
        label = f"{self._LABEL} {self.path}"
        members, refused = scan_tar(self.source, 0, self.source.size, label, tolerate_cut_last=False)
        classes: dict[str, ClassTar] = {}
        for m in members:
            if _CLASS_TAR_RE.match(m.name):
                classes[m.name[:-4]] = ClassTar(m.name[:-4], m.name, m.offset, m.size)
            else:
                refused.append((m.name, "not a class tar (expected <wnid>.tar, e.g. n01440764.tar)"))
        if not classes:
            raise ArchiveError(
                f"{self.path} holds no <wnid>.tar class tars ({len(members)} other members): is it "
                f"{self._EXPECTED}? {self._WHAT}"
            )
        return classes, refused

    def columns(self, wnid: str) -> MemberColumns:
        """The images of one class as columns (from the cache, or built from that class tar's headers)."""
        if wnid in self._columns:
            return self._columns[wnid]
        if wnid in self._encoded:
            return _split_section(*self._encoded[wnid])
        classes = self.classes()
        if wnid in self._sections and wnid in classes:
            tar = classes[wnid]
            cached = self._load_section(wnid, tar.offset, tar.offset + tar.size)
            if cached is not None:
                return cached
            self._dirty = True  # a malformed section: index the class again, and rewrite the cache
        if wnid not in classes:
            raise ArchiveError(
                f"The class {wnid} is not in {self.path} (it holds {len(classes)} class tars)."
            )
        members, refused = index_class_tar(self.source, classes[wnid])
        self.add_members(wnid, members, refused)
        return self._columns[wnid]

    def members(self, wnid: str) -> tuple[TarMember, ...]:
        """The images of one class (built on demand from that class tar's headers only)."""
        if wnid not in self._members:
            self._members[wnid] = self.columns(wnid).members()
        return self._members[wnid]

    def add_members(
        self, wnid: str, members: tuple[TarMember, ...], refused: list[tuple[str, str]] | None = None
    ) -> None:
        """Merge an inner index built elsewhere (e.g. by :func:`index_class_tar` in a worker process)."""
        if wnid not in self.classes():
            raise ArchiveError(f"The class {wnid} is not in {self.path}.")
        self._columns[wnid] = MemberColumns.of(members)
        self._encoded.pop(wnid, None)
        self._members.pop(wnid, None)
        self._sections.pop(wnid, None)
        self._inner_refused[wnid] = list(refused or [])
        self._dirty = True

    def add_section(self, wnid: str, section: Section, refused: list[tuple[str, str]] | None = None) -> None:
        """Merge an inner index a worker sent as its cache section (:meth:`MemberColumns.section` of its
        members): kept as those bytes until :meth:`save` writes them."""
        if wnid not in self.classes():
            raise ArchiveError(f"The class {wnid} is not in {self.path}.")
        self._encoded[wnid] = section
        self._columns.pop(wnid, None)
        self._members.pop(wnid, None)
        self._sections.pop(wnid, None)
        self._inner_refused[wnid] = list(refused or [])
        self._dirty = True

    @property
    def unsaved(self) -> bool:
        """Whether something was indexed since the cache was read or written."""
        return self._dirty

    def has_members(self, wnid: str) -> bool:
        """Whether the inner index of ``wnid`` is already known (so :meth:`members` reads nothing)."""
        return wnid in self._columns or wnid in self._encoded or wnid in self._sections

    def indexed_wnids(self) -> tuple[str, ...]:
        """Classes whose inner index is known (from this session or the cache)."""
        return tuple(sorted({*self._columns, *self._encoded, *self._sections}))

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
        folder is writable (the index then simply is not kept). Classes indexed in this session are then read
        from the cache like the others (not kept in memory)."""
        if not self._dirty and self.cache_path is not None:
            return self.cache_path
        classes = self.classes()
        sections: dict[str, Section] = {}
        for wnid, tar in classes.items():
            if wnid in self._columns:
                sections[wnid] = self._columns[wnid].section()
            elif wnid in self._encoded:
                sections[wnid] = self._encoded[wnid]
            elif wnid in self._sections:
                read = self._read_section(wnid)  # copied only if well-formed
                if read is not None and _decode_section(*read, tar.offset, tar.offset + tar.size):
                    sections[wnid] = read
        payload = {
            "classes": [[c.wnid, c.name, c.offset, c.size] for c in classes.values()],
            "refused": [list(r) for r in self._outer_refused],
            "inner_refused": {
                wnid: [list(r) for r in rows]
                for wnid, rows in self._inner_refused.items()
                if rows and wnid in sections
            },
        }
        written = self._write_sections(payload, sections)
        if written is not None and self._cache_file is not None:
            self._columns.clear()
            self._encoded.clear()
        return written


class Fall11Archive(TrainArchive):
    """``fall11_whole.tar`` (ImageNet-21K): the same layout as the ILSVRC train tar, with 21,841 class tars."""

    _KIND = "fall11"
    _EXPECTED = "fall11_whole.tar"
    _LABEL = "The ImageNet-21K archive"
    _WHAT = "fall11_whole.tar is a tar of 21,841 <wnid>.tar class tars."


class ValArchive(_SectionedArchive):
    """``ILSVRC2012_img_val.tar``: a flat tar of images."""

    _KIND = "val"
    _EXPECTED = "ILSVRC2012_img_val.tar"

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(path, cache_dir)
        self._members: tuple[TarMember, ...] | None = None
        self._columns: MemberColumns | None = None
        self._refused: list[tuple[str, str]] = []
        cached = self._load_header()
        if cached is not None:
            self._columns = self._load_section("", 0, self.source.size)
            if self._columns is not None:
                self._refused = [tuple(r) for r in cached["refused"]]

    def _schema_ok(self, data: dict) -> bool:
        return set(data.get("sections") or ()) == {""} and refusals_ok(data.get("refused"))

    def columns(self) -> MemberColumns:
        """The images, in archive order, as columns."""
        if self._columns is None:
            self._columns = MemberColumns.of(self.members())
        return self._columns

    def members(self) -> tuple[TarMember, ...]:
        """The images, in archive order."""
        if self._members is None and self._columns is not None:
            self._members = self._columns.members()
        if self._members is None:
            label = f"The val archive {self.path}"
            members, self._refused = scan_tar(
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
        columns = self.columns()
        if not self._dirty and self.cache_path is not None:
            return self.cache_path
        payload = {"refused": [list(r) for r in self._refused]}
        return self._write_sections(payload, {"": columns.section()})
