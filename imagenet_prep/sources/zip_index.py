"""The central directory of a big zip (the Kaggle download: ~2M entries), read and cached in little memory.

``read_central_directory`` reads the directory in one streaming pass (46-byte records unpacked with ``struct``,
ZIP64 end records and extra fields handled, as ``zipfile`` reads them) and applies the checks every member of a
build passes (the name policy of io/tar.py, links and other types, encryption, methods, the declared-size cap
and deflate's largest ratio, duplicate names, members whose bytes overlap another's). It keeps only the members a
caller's ``classify`` names, in groups (the Kaggle source: one per train class, one for val) held as columns: one
names blob and arrays of offsets, sizes, methods and CRC-32s. ``zipfile`` built a ``ZipInfo`` (~500 bytes) per
entry: 1.5-2.2 GB at 2M entries; these columns hold ~90 bytes per kept member.

The checked listing is cached in a binary file (``<zip>.zipdir.index``, beside the zip or in the cache folder,
like the tar index): a magic and a version, a JSON header (the zip's size, mtime_ns and inode; the group table
with each section's place, count and CRC-32; the label files; the refusals), then one section per group.
A command that only lists (``splits``, the train classes) reads the header alone; a section is read, and checked,
when its group is used: its CRC-32, its length, every offset and size inside the zip, the methods, and every name
(the name policy, and the caller's ``classify`` must put it in this very group). A stale header counts as absent;
a damaged section raises ``DamagedCache`` and the caller parses the zip again and rewrites the cache.
Planning reads no local header: a member's location is its local header's offset; workers read and check that
header (name, method, sizes, CRC-32) and the data's CRC-32 when reading (sources/kaggle.py, ZipMemberReader).
"""

from __future__ import annotations

import json
import os
import re
import stat
import struct
import zlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from operator import add, le
from pathlib import Path

from ..errors import ArchiveError
from ..io.atomic import temp_path_for
from ..io.tar import MAX_NAME_BYTES, name_problem
from ..io.tar_index import cache_path_candidates
from .base import MAX_INFLATED

STORED, DEFLATED = 0, 8
MAX_RATIO = 1100  # deflate cannot shrink data more than ~1032:1
CACHE_VERSION = 1
_MAGIC = b"IPZIPDIR"
_PREFIX = struct.Struct("<8sII")  # magic, version, header length
_SUFFIX = ".zipdir.index.json"  # the name the caches share (tools skip *.index.json); binary inside
_CD = struct.Struct("<4s6H3L5H2L")  # one central-directory record (46 bytes)
_EOCD = struct.Struct("<4s4H2LH")  # end of central directory (22 bytes)
_LOCATOR64 = struct.Struct("<4sLQL")  # ZIP64 end locator (20 bytes)
_EOCD64 = struct.Struct("<4sQ2H2L4Q")  # ZIP64 end record (56 bytes)
_CHUNK = 4 << 20
_MAX_HEADER = 256 << 20
_FULL = 0xFFFFFFFF
# Names a build could never have kept: '..' or hidden parts, absolute, control characters, backslashes.
_UNSAFE = re.compile(r"(^|/)\.|^/|[\x00-\x09\x0b-\x1f\x7f\\]", re.MULTILINE)
_UNSAFE_CHAR = re.compile(r"[\x00-\x09\x0b-\x1f\x7f\\]")


def _unsafe_names(text: str) -> bool:
    """``_UNSAFE.search(text)`` for names joined by "\n", as substring tests and one character class (C
    speed: the MULTILINE alternatives cost ~2 s over a whole set's 1.3M names)."""
    lines = "\n" + text
    return "\n." in lines or "/." in lines or "\n/" in lines or _UNSAFE_CHAR.search(text) is not None


#: name -> (split, group) for a member the caller keeps, None for one it never reads (neither kept nor checked).
#: split "text" marks a label file (group: its base name; its refusals count under "val").
Classify = Callable[[str], "tuple[str, str] | None"]


class DamagedCache(Exception):
    """A cached section failed its checks: parse the zip again."""


class ZipEntry:
    """What a build uses of a zip member (the attributes of ``zipfile.ZipInfo`` it reads), in little memory."""

    __slots__ = ("filename", "header_offset", "compress_size", "file_size", "compress_type", "CRC")

    def __init__(
        self,
        filename: str,
        header_offset: int,
        compress_size: int,
        file_size: int,
        compress_type: int,
        CRC: int,
    ) -> None:
        self.filename = filename
        self.header_offset = header_offset
        self.compress_size = compress_size
        self.file_size = file_size
        self.compress_type = compress_type
        self.CRC = CRC

    def row(self) -> tuple[str, int, int, int, int, int]:
        """(name, header offset, compressed size, size, method, CRC-32): what ``kaggle.zip_location`` takes."""
        return (
            self.filename,
            self.header_offset,
            self.compress_size,
            self.file_size,
            self.compress_type,
            self.CRC,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ZipEntry) and self.row() == other.row()

    def __repr__(self) -> str:
        return f"ZipEntry{tuple(self.row())!r}"


class ZipMembers(Sequence[ZipEntry]):
    """One group's members as columns (names joined by "\\n"; header offsets, sizes, methods, CRC-32s)."""

    def __init__(
        self,
        names: bytes | bytearray,
        offsets: array,
        compressed: array,
        sizes: array,
        methods: bytes | bytearray,
        crcs: array,
    ) -> None:
        self.names_blob = names
        self.offsets, self.compressed, self.sizes, self.methods, self.crcs = (
            offsets,
            compressed,
            sizes,
            methods,
            crcs,
        )
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            self._names = self.names_blob.decode("utf-8").split("\n") if self.offsets else []
        return self._names

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return ZipEntry(
            self.names()[i], self.offsets[i], self.compressed[i], self.sizes[i], self.methods[i], self.crcs[i]
        )

    def rows(self) -> list[tuple[str, int, int, int, int, int]]:
        """Every member's ``ZipEntry.row()``, in directory order."""
        return list(
            zip(self.names(), self.offsets, self.compressed, self.sizes, self.methods, self.crcs, strict=True)
        )

    def section(self) -> tuple[bytes | bytearray | array, ...]:
        """The cache section's parts, in order (written one after another, never joined: no copy)."""
        return (self.offsets, self.compressed, self.sizes, self.crcs, self.methods, self.names_blob)

    @classmethod
    def from_section(cls, data: bytes, count: int) -> ZipMembers:
        columns = []
        at = 0
        for code in ("q", "q", "q", "I"):
            column = array(code)
            end = at + column.itemsize * count
            column.frombytes(data[at:end])
            columns.append(column)
            at = end
        methods = data[at : at + count]
        offsets, compressed, sizes, crcs = columns
        return cls(data[at + count :], offsets, compressed, sizes, methods, crcs)


class _Builder:
    """A group's columns while the directory is read (plus each row's position in the directory)."""

    __slots__ = ("names", "offsets", "compressed", "sizes", "methods", "crcs", "positions")

    def __init__(self) -> None:
        self.names = bytearray()
        self.offsets, self.compressed, self.sizes = array("q"), array("q"), array("q")
        self.methods, self.crcs, self.positions = bytearray(), array("I"), array("q")

    def members(self, drop: set[int]) -> ZipMembers:
        """The group's columns without the rows in ``drop``; the builder's own buffers when none is dropped
        (no copy: at 2M entries a copy of every name is ~80 MB)."""
        if self.names:
            del self.names[-1]  # the last name's "\n"
        if not drop:
            return ZipMembers(self.names, self.offsets, self.compressed, self.sizes, self.methods, self.crcs)
        keep = [i for i in range(len(self.offsets)) if i not in drop]
        names = self.names.decode("utf-8").split("\n")
        return ZipMembers(
            "\n".join(names[i] for i in keep).encode("utf-8"),
            array("q", (self.offsets[i] for i in keep)),
            array("q", (self.compressed[i] for i in keep)),
            array("q", (self.sizes[i] for i in keep)),
            bytes(self.methods[i] for i in keep),
            array("I", (self.crcs[i] for i in keep)),
        )


def entry_problem(
    name: str, flags: int, method: int, compressed: int, size: int, attributes: int
) -> str | None:
    """Why a zip member is refused (None = fine)."""
    problem = name_problem(name, flat=False)
    if problem:
        return problem
    kind = stat.S_IFMT(attributes >> 16)  # Unix type bits (0 from zips made elsewhere)
    if kind == stat.S_IFLNK:
        return "symbolic link"
    if kind and kind != stat.S_IFREG:
        return "not a regular file"
    if flags & 0x1:
        return "encrypted"
    if method not in (STORED, DEFLATED):
        return f"unsupported zip compression method {method}"
    if size > MAX_INFLATED:
        return f"declares {size:,} bytes, more than any image ({MAX_INFLATED:,}): a zip bomb?"
    if method == STORED and compressed != size:
        return "stored member whose sizes disagree"
    if method == DEFLATED and size > MAX_RATIO * max(compressed, 1):
        return f"inflates {size // max(compressed, 1):,}:1 (a zip bomb)"
    return None


class ZipListing:
    """A zip's checked listing: groups of members (``group``), label files (``texts``), refusals
    (split, name, reason) in directory order, and the bytes of the central directory and end records."""

    def __init__(
        self,
        groups: dict[str, ZipMembers | None],
        counts: dict[str, int],
        texts: dict[str, ZipEntry],
        refused: list[tuple[str, str, str]],
        index_bytes: int,
    ) -> None:
        self.counts = counts  # group key ("train/<wnid>", "val/") -> members
        self.texts = texts
        self.refused = refused
        self.index_bytes = index_bytes
        self._groups = groups
        self._load: Callable[[str], ZipMembers] | None = None

    def keys(self, split: str) -> list[str]:
        """The groups of a split (their names after ``split/``)."""
        head = f"{split}/"
        return [key[len(head) :] for key in self.counts if key.startswith(head)]

    def group(self, split: str, name: str, keep: bool = True) -> ZipMembers:
        """A group's members; a group read from the cache is kept for the next call unless ``keep`` is False
        (a plan packs each train class once: not keeping them holds one class's names at a time, not 1.3M)."""
        key = f"{split}/{name}"
        members = self._groups.get(key)
        if members is None:
            if key not in self.counts or self._load is None:
                return ZipMembers(b"", array("q"), array("q"), array("q"), b"", array("I"))
            members = self._load(key)
            if keep:
                self._groups[key] = members
        return members

    def split(self, split: str) -> list[ZipEntry]:
        return [entry for name in self.keys(split) for entry in self.group(split, name)]


# ------------------------------------------------------------------------------------------------- parse
def _bad(path: Path, why: str) -> ArchiveError:
    return ArchiveError(f"{path} is not a readable zip ({why}); re-download it.")


def _directory(file, path: Path, size: int) -> tuple[int, int, int]:
    """(start of the central directory, its size, bytes prepended to the zip), from the end records."""
    if size < _EOCD.size:
        raise _bad(path, "File is not a zip file")
    file.seek(size - _EOCD.size)
    record = file.read(_EOCD.size)
    where = size - _EOCD.size
    if not (record[:4] == b"PK\x05\x06" and record[-2:] == b"\x00\x00"):
        start = max(size - (1 << 16) - _EOCD.size, 0)  # behind a comment of up to 64 KiB
        file.seek(start)
        data = file.read()
        at = data.rfind(b"PK\x05\x06")
        if at < 0 or len(data) - at < _EOCD.size:
            raise _bad(path, "File is not a zip file")
        record, where = data[at : at + _EOCD.size], start + at
    _sig, _disk, _disk_cd, _here, _count, size_cd, offset_cd, _comment = _EOCD.unpack(record)
    zip64 = False
    if where >= _LOCATOR64.size:
        file.seek(where - _LOCATOR64.size)
        locator = file.read(_LOCATOR64.size)
        if locator[:4] == b"PK\x06\x07":
            _sig, disk, _rel, disks = _LOCATOR64.unpack(locator)
            if disk != 0 or disks > 1:
                raise _bad(path, "zipfiles that span multiple disks are not supported")
            if where >= _LOCATOR64.size + _EOCD64.size:
                file.seek(where - _LOCATOR64.size - _EOCD64.size)
                record64 = file.read(_EOCD64.size)
                if record64[:4] == b"PK\x06\x06":
                    *_, size_cd, offset_cd = _EOCD64.unpack(record64)
                    zip64 = True
    concat = where - size_cd - offset_cd - (_LOCATOR64.size + _EOCD64.size if zip64 else 0)
    start_dir = offset_cd + concat
    if start_dir < 0 or size_cd < 0:
        raise _bad(path, "Bad offset for central directory")
    return start_dir, size_cd, concat


def _zip64(extra: bytes, size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """The 64-bit values of a ZIP64 extra field, for the fields whose 32-bit value is 0xFFFFFFFF."""
    while len(extra) >= 4:
        kind, length = struct.unpack_from("<HH", extra)
        if length + 4 > len(extra):
            raise ValueError(f"Corrupt extra field {kind:04x} (size={length})")
        if kind == 1:
            data = extra[4 : 4 + length]
            try:
                if size == _FULL:
                    (size,), data = struct.unpack_from("<Q", data), data[8:]
                if compressed == _FULL:
                    (compressed,), data = struct.unpack_from("<Q", data), data[8:]
                if offset == _FULL:
                    (offset,) = struct.unpack_from("<Q", data)
            except struct.error:
                raise ValueError("Corrupt zip64 extra field") from None
        extra = extra[length + 4 :]
    return size, compressed, offset


def _records(file, path: Path, start: int, length: int) -> Iterator[tuple]:
    """(record fields, raw name, extra field) of each central-directory record, read in chunks."""
    file.seek(start)
    buf = b""
    p = 0
    unread = length  # bytes of the directory not read yet
    total = 0
    unpack = _CD.unpack_from
    while total < length:
        if len(buf) - p < 46:
            chunk = file.read(min(_CHUNK, unread))
            unread -= len(chunk)
            buf, p = buf[p:] + chunk, 0
            if len(buf) < 46:
                raise _bad(path, "Truncated central directory")
        fields = unpack(buf, p)
        if fields[0] != b"PK\x01\x02":
            raise _bad(path, "Bad magic number for central directory")
        need = 46 + fields[10] + fields[11] + fields[12]
        if len(buf) - p < need:
            chunk = file.read(min(max(_CHUNK, need), unread))
            unread -= len(chunk)
            buf, p = buf[p:] + chunk, 0
            if len(buf) < need:
                raise _bad(path, "Truncated central directory")
        name_at = p + 46
        extra_at = name_at + fields[10]
        yield fields, buf[name_at:extra_at], buf[extra_at : extra_at + fields[11]]
        p += need
        total += need


def _overlaps(offsets: array, stops: array) -> dict[int, int]:
    """Entries whose bytes (local header, name, data) overlap another's: position -> the other's position.
    Many central-directory entries on one deflate stream make a small zip cost minutes of CPU; a real zip
    never shares bytes between members. Real zips are in offset order and never overlap: two C-speed passes
    say so; otherwise one sort of the offsets."""
    if all(map(le, offsets, islice(offsets, 1, None))) and all(map(le, stops, islice(offsets, 1, None))):
        return {}
    out: dict[int, int] = {}
    previous: int | None = None
    end = 0
    for k in sorted(range(len(offsets)), key=offsets.__getitem__):
        if previous is not None and offsets[k] < end:
            out[k] = previous
            out.setdefault(previous, k)
        if stops[k] > end:
            end, previous = stops[k], k
    return out


def _decode(raw: bytes, flags: int) -> str:
    name = raw.decode("utf-8" if flags & 0x800 else "cp437")
    nul = name.find("\x00")
    return name if nul < 0 else name[:nul]  # as zipfile.ZipInfo cuts it


def read_central_directory(path: Path, classify: Classify) -> ZipListing:
    """The checked listing of the zip at ``path``, in one streaming pass over its central directory."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            start, length, concat = _directory(file, path, size)
            return _read(file, path, size, start, length, concat, classify)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(path, str(exc)) from None
    except OSError as exc:
        raise _bad(path, exc.strerror or str(exc)) from None


def _read(
    file, path: Path, size: int, start: int, length: int, concat: int, classify: Classify
) -> ZipListing:
    offsets, stops = array("q"), array("q")  # every entry's: overlaps are checked over all of them
    builders: dict[str, _Builder] = {}
    problems: list[tuple[int, str, str, str]] = []  # (position, split, name, reason)
    texts: list[tuple[int, str, ZipEntry]] = []
    position = -1
    for fields, raw, extra in _records(file, path, start, length):
        position += 1
        flags, method, crc, compressed, usize, attributes, offset = (
            fields[3],
            fields[4],
            fields[7],
            fields[8],
            fields[9],
            fields[15],
            fields[16],
        )
        if usize == _FULL or compressed == _FULL or offset == _FULL:
            usize, compressed, offset = _zip64(extra, usize, compressed, offset)
        offset += concat
        offsets.append(offset)
        stops.append(offset + 30 + len(raw) + compressed)
        name = _decode(raw, flags)
        if name.endswith("/"):
            continue  # a folder
        where = classify(name)
        if where is None:
            continue
        split, group = where
        problem = entry_problem(name, flags, method, compressed, usize, attributes)
        if problem:
            problems.append((position, split, name, problem))
        elif split == "text":
            texts.append((position, group, ZipEntry(name, offset, compressed, usize, method, crc)))
        else:
            key = f"{split}/{group}"
            builder = builders.get(key)
            if builder is None:
                builder = builders[key] = _Builder()
            builder.names += name.encode("utf-8")
            builder.names.append(10)
            builder.offsets.append(offset)
            builder.compressed.append(compressed)
            builder.sizes.append(usize)
            builder.methods.append(method)
            builder.crcs.append(crc)
            builder.positions.append(position)

    overlapping = _overlaps(offsets, stops)
    del offsets, stops
    others = {} if not overlapping else _names_at(file, path, start, length, set(overlapping.values()))
    first_problem: dict[str, int] = {}
    for pos, _split, name, _reason in problems:
        first_problem.setdefault(name, pos)

    def fate(name: str, pos: int, seen: dict[str, int]) -> str | None:
        """Why a member that passed its own checks is refused: a name met before, then overlapping bytes."""
        if min(seen.get(name, pos), first_problem.get(name, pos)) < pos:
            return "duplicate name"
        seen.setdefault(name, pos)
        if pos in overlapping:
            return f"overlaps the bytes of {others[overlapping[pos]]} (a crafted zip)"
        return None

    refused = [
        (pos, "val" if split == "text" else split, name, reason) for pos, split, name, reason in problems
    ]
    groups: dict[str, ZipMembers | None] = {}
    for key, builder in builders.items():
        drop: set[int] = set()
        if overlapping or first_problem or len(builder.offsets) > 1:
            names = builder.names[:-1].decode("utf-8").split("\n")
            if overlapping or first_problem or len(set(names)) != len(names):
                seen: dict[str, int] = {}
                for i, (name, pos) in enumerate(zip(names, builder.positions, strict=True)):
                    reason = fate(name, pos, seen)
                    if reason:
                        drop.add(i)
                        refused.append((pos, key.split("/", 1)[0], name, reason))
        if len(drop) < len(builder.offsets):
            groups[key] = builder.members(drop)
    builders.clear()  # their directory positions
    chosen: dict[str, ZipEntry] = {}
    seen_texts: dict[str, int] = {}
    for pos, base, entry in texts:
        reason = fate(entry.filename, pos, seen_texts)
        if reason:
            refused.append((pos, "val", entry.filename, reason))
            continue
        current = chosen.get(base)
        if current is None or len(entry.filename) < len(current.filename):  # the one nearest the root
            chosen[base] = entry
    refused.sort(key=lambda r: r[0])
    counts = {key: len(members) for key, members in groups.items() if members is not None}
    return ZipListing(groups, counts, chosen, [r[1:] for r in refused], size - start)


def _names_at(file, path: Path, start: int, length: int, wanted: set[int]) -> dict[int, str]:
    """The names of the entries at some directory positions (a second pass, for a crafted zip only)."""
    out = {}
    for position, (fields, raw, _extra) in enumerate(_records(file, path, start, length)):
        if position in wanted:
            out[position] = _decode(raw, fields[3])
    return out


# ------------------------------------------------------------------------------------------------- cache
class ZipDirectory:
    """The cache of one zip's checked listing: :meth:`load` (None when absent, stale or malformed), :meth:`save`."""

    def __init__(self, path: Path, classify: Classify, cache_dir: Path | None = None) -> None:
        self.path = Path(path)
        self.cache_dir = cache_dir
        self.classify = classify
        self.cache_path: Path | None = None
        st = os.stat(self.path)
        self._size = st.st_size
        self._key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}

    def _candidates(self) -> list[Path]:
        return cache_path_candidates(self.path, self.cache_dir, _SUFFIX)

    def load(self) -> ZipListing | None:
        for candidate in self._candidates():
            listing = self._load(candidate)
            if listing is not None:
                self.cache_path = candidate
                return listing
        return None

    def _load(self, candidate: Path) -> ZipListing | None:
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            prefix = os.pread(fd, _PREFIX.size, 0)
            if len(prefix) != _PREFIX.size:
                return None
            magic, version, head_length = _PREFIX.unpack(prefix)
            if magic != _MAGIC or version != CACHE_VERSION or head_length > min(_MAX_HEADER, st.st_size):
                return None
            head = os.pread(fd, head_length, _PREFIX.size)
            doc = json.loads(head)
            body = _PREFIX.size + head_length
            listing = self._header(doc, st.st_size - body)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None
        finally:
            os.close(fd)
        if listing is None:
            return None
        table = doc["groups"]

        def load(key: str) -> ZipMembers:
            start, length, count, crc = table[key]
            try:
                with open(candidate, "rb", buffering=0) as file:
                    data = os.pread(file.fileno(), length, body + start)
            except OSError:
                raise DamagedCache(key) from None
            members = self._section(key, data, length, count, crc)
            if members is None:
                raise DamagedCache(key)
            return members

        listing._load = load
        return listing

    def _header(self, doc: object, body_length: int) -> ZipListing | None:
        if not (isinstance(doc, dict) and all(doc.get(k) == v for k, v in self._key.items())):
            return None
        table = doc["groups"]
        if not isinstance(table, dict):
            return None
        counts = {}
        for key, place in table.items():
            if not (isinstance(place, list) and len(place) == 4 and all(type(v) is int for v in place)):
                return None
            start, length, count, crc = place
            if start < 0 or count <= 0 or length < 29 * count or start + length > body_length or crc < 0:
                return None
            split, _, name = key.partition("/")
            if split not in ("train", "val"):
                return None
            counts[key] = count
        texts = {}
        for base, row in doc["texts"].items():
            entry = self._entry(row)
            if entry is None or self.classify(entry.filename) != ("text", base):
                return None
            texts[base] = entry
        refused = [(str(a), str(b), str(c)) for a, b, c in doc["refused"]]
        index_bytes = doc["index_bytes"]
        if type(index_bytes) is not int or not 0 <= index_bytes <= self._size:
            return None
        return ZipListing(dict.fromkeys(counts), counts, texts, refused, index_bytes)

    def _ok(self, offset: int, compressed: int, size: int, method: int, crc: int) -> bool:
        return (
            offset >= 0
            and compressed >= 0
            and offset + compressed <= self._size
            and size >= 0
            and method in (STORED, DEFLATED)
            and 0 <= crc < 1 << 32
        )

    def _entry(self, row: object) -> ZipEntry | None:
        if not isinstance(row, list) or len(row) != 6:
            return None
        name, *values = row
        if not isinstance(name, str) or not all(type(v) is int for v in values):
            return None
        if _UNSAFE.search(name) or name_problem(name, flat=False) or not self._ok(*values):
            return None
        return ZipEntry(name, *values)

    def _section(self, key: str, data: bytes, length: int, count: int, crc: int) -> ZipMembers | None:
        """A group's columns, checked (None = damaged): C-speed passes over the columns, one over the names."""
        if len(data) != length or zlib.crc32(data) != crc:
            return None
        members = ZipMembers.from_section(data, count)
        if (
            min(members.offsets) < 0
            or min(members.compressed) < 0
            or min(members.sizes) < 0
            or max(map(add, members.offsets, members.compressed)) > self._size
            or not set(members.methods) <= {STORED, DEFLATED}
        ):
            return None
        try:
            text = members.names_blob.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if _unsafe_names(text):
            return None
        names = text.split("\n")
        split, _, group = key.partition("/")
        if len(names) != count or any(self.classify(name) != (split, group) for name in names):
            return None
        if any(len(n.encode()) > MAX_NAME_BYTES and name_problem(n, flat=False) for n in names):
            return None
        members._names = names
        return members

    def save(self, listing: ZipListing) -> Path | None:
        """Write the listing (atomically; beside the zip when that folder is writable, else in the cache folder);
        None when no place is writable (the listing is then not kept)."""
        table: dict[str, list[int]] = {}
        at = 0
        sections = []
        for key in listing.counts:
            split, _, name = key.partition("/")
            members = listing.group(split, name)
            parts = members.section()
            crc = 0
            length = 0
            for part in parts:
                crc = zlib.crc32(part, crc)
                length += len(part) * (part.itemsize if isinstance(part, array) else 1)
            table[key] = [at, length, len(members), crc]
            at += length
            sections.append(parts)
        doc = {
            "kind": "zip-directory",
            "archive": self.path.name,
            **self._key,
            "groups": table,
            "texts": {base: list(e.row()) for base, e in listing.texts.items()},
            "refused": [list(r) for r in listing.refused],
            "index_bytes": listing.index_bytes,
        }
        head = json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode()
        prefix = _PREFIX.pack(_MAGIC, CACHE_VERSION, len(head))
        for candidate in self._candidates():
            folder = candidate.parent
            try:
                if folder != self.path.parent:
                    folder.mkdir(parents=True, exist_ok=True)
                elif not os.access(folder, os.W_OK):
                    continue
                tmp = temp_path_for(candidate)
                try:
                    with open(tmp, "wb") as out:
                        out.write(prefix)
                        out.write(head)
                        for parts in sections:
                            for part in parts:
                                out.write(part)
                    os.replace(tmp, candidate)
                except BaseException:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                    raise
            except OSError:
                continue
            self.cache_path = candidate
            return candidate
        return None
