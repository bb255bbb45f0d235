"""The cached central directory of a big zip (the Kaggle download: ~2M entries, 23-49 s and 1.5-2.2 GB to parse
with ``zipfile`` on every command). The source's checked listing (the members it keeps per split, the label
files, its refusals) is cached like the tar index (io/tar_index.py: beside the zip, or in the cache folder;
keyed by the zip's size and mtime_ns; written atomically by the parent). Format: one JSON header line, then one
section per split: five little-endian int64 columns (header offset, compressed size, size, method, CRC-32),
then the names in UTF-8 joined by "\\n". A cache is untrusted: every section is checked when loaded (bounds,
counts, methods, every member inside the zip, no unsafe name); anything malformed makes it count as absent
and the zip is parsed again. Workers still check each member's local header and its CRC-32 when reading.
"""

from __future__ import annotations

import json
import re
import zipfile
from array import array
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..io.tar import MAX_NAME_BYTES
from ..io.tar_index import CACHE_FORMAT, IndexedArchive

_COLUMNS = ("header_offset", "compress_size", "file_size", "compress_type", "CRC")
# Names a build could never have kept: '..' or hidden parts, absolute, control characters, backslashes.
_UNSAFE = re.compile(r"(^|/)\.|^/|[\x00-\x09\x0b-\x1f\x7f\\]", re.MULTILINE)


class ZipEntry:
    """What a build uses of a zip member (the attributes of ``zipfile.ZipInfo`` it reads), in little memory."""

    __slots__ = ("filename", *_COLUMNS)

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

    @classmethod
    def of(cls, info: zipfile.ZipInfo) -> ZipEntry:
        return cls(info.filename, *(int(getattr(info, c)) for c in _COLUMNS))

    def row(self) -> tuple[str, int, int, int, int, int]:
        """(name, header offset, compressed size, size, method, CRC-32): what ``kaggle.locate_members`` takes."""
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


Listing = tuple[dict[str, list[ZipEntry]], dict[str, ZipEntry], list[tuple[str, str, str]], int]


class ZipDirectory(IndexedArchive):
    """The cache of one zip's checked listing: :meth:`load` (None when absent, stale or malformed), :meth:`save`."""

    _KIND = "zip-directory"
    _EXPECTED = "a zip archive"
    _SUFFIX = ".zipdir.index.json"

    def __init__(self, path: Path, cache_dir: Path | None = None) -> None:
        super().__init__(path, cache_dir)
        self.source.close()
        self._size = int(self._key["size"])  # type: ignore[call-overload]

    def load(self) -> Listing | None:
        for candidate in self._candidates():
            try:
                data = candidate.read_bytes()
            except OSError:
                continue
            listing = self._parse(data)
            if listing is not None:
                self.cache_path = candidate
                return listing
        return None

    def _candidates(self) -> list[Path]:
        from ..io.tar_index import cache_path_candidates

        return cache_path_candidates(self._cache_id, self.cache_dir, self._SUFFIX)

    def _parse(self, data: bytes) -> Listing | None:
        head, newline, body = data.partition(b"\n")
        try:
            doc = json.loads(head)
        except ValueError:
            return None
        if not (
            newline
            and isinstance(doc, dict)
            and doc.get("format") == CACHE_FORMAT
            and doc.get("kind") == self._KIND
            and all(doc.get(k) == v for k, v in self._key.items())
        ):
            return None
        try:
            sections = doc["sections"]
            by_split = {split: self._section(body, *sections[split]) for split in sections}
            texts = {base: self._entry(row) for base, row in doc["texts"].items()}
            refused = [(str(a), str(b), str(c)) for a, b, c in doc["refused"]]
            index_bytes = int(doc["index_bytes"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if any(v is None for v in by_split.values()) or any(v is None for v in texts.values()):
            return None
        return by_split, texts, refused, index_bytes  # type: ignore[return-value]

    def _ok(self, offset: int, csize: int, size: int, method: int, crc: int) -> bool:
        return (
            offset >= 0
            and csize >= 0
            and offset + csize <= self._size
            and size >= 0
            and method in (0, 8)
            and (0 <= crc < 1 << 32)
        )

    def _entry(self, row: Sequence[object]) -> ZipEntry | None:
        name, *values = row
        if not isinstance(name, str) or len(values) != 5 or not all(type(v) is int for v in values):
            return None
        if _UNSAFE.search(name) or not self._ok(*values):  # type: ignore[arg-type]
            return None
        return ZipEntry(name, *values)  # type: ignore[arg-type]

    def _section(self, body: bytes, start: object, length: object, count: object) -> list[ZipEntry] | None:
        if not (type(start) is int and type(length) is int and type(count) is int):
            return None
        if start < 0 or length < 40 * count or count < 0 or start + length > len(body):
            return None
        chunk = body[start : start + length]
        columns = []
        for i in range(5):
            column = array("q")
            column.frombytes(chunk[i * 8 * count : (i + 1) * 8 * count])
            columns.append(column)
        try:
            text = chunk[40 * count :].decode("utf-8")
        except UnicodeDecodeError:
            return None
        names = text.split("\n") if count else []
        if len(names) != count or _UNSAFE.search(text):
            return None
        if any(len(n.rsplit("/", 1)[-1].encode()) > MAX_NAME_BYTES for n in names):
            return None
        out = []
        for name, *values in zip(names, *columns, strict=True):
            if not self._ok(*values):
                return None
            out.append(ZipEntry(name, *values))
        return out

    def save(
        self,
        by_split: Mapping[str, Sequence[ZipEntry]],
        texts: Mapping[str, ZipEntry],
        refused: Sequence[tuple[str, str, str]],
        index_bytes: int,
    ) -> None:
        sections: dict[str, list[int]] = {}
        parts: list[bytes] = []
        at = 0
        for split, entries in by_split.items():
            chunk = b"".join(array("q", [getattr(e, c) for e in entries]).tobytes() for c in _COLUMNS)
            chunk += "\n".join(e.filename for e in entries).encode("utf-8")
            sections[split] = [at, len(chunk), len(entries)]
            parts.append(chunk)
            at += len(chunk)
        doc = {
            "format": CACHE_FORMAT,
            "kind": self._KIND,
            "archive": self.path.name,
            **self._key,
            "sections": sections,
            "texts": {base: list(e.row()) for base, e in texts.items()},
            "refused": [list(r) for r in refused],
            "index_bytes": index_bytes,
        }
        head = json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode()
        self._write_cache_bytes(head + b"\n" + b"".join(parts))
