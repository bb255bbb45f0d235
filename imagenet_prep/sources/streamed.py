"""Streamed tar.gz archives (Hugging Face shards, the face-blurred release, the tar.gz inside the older Kaggle
zip, winter21_whole.tar.gz): gzip cannot seek, so a stream is read from its start, in order.

- Listing: :func:`list_stream` reads a whole stream once and returns each regular member's name, the offset
  of its data in the *decompressed* tar, its size and the offset of its tar header (names and types checked
  with io/tar.py's policy). :class:`StreamListing` caches that beside the archive (or in the cache folder),
  keyed by size + mtime_ns, like the tar index.
- Reading (hf-tar, blurred, winter21): a sample's ``ByteLocation`` is ``(locator, offset in the decompressed
  tar, size, "tar.gz", header offset)``. A stream's samples are cut into units of ``STREAM_CHUNK`` samples in
  stream order (:func:`group_in_stream_chunks`; the cut depends on the listing only, never on --workers), so
  a stream is built by every worker at once. Each worker thread keeps one forward :class:`StreamCursor` open
  from unit to unit (:func:`cursor_for`): a unit after the cursor continues from there, inflating and
  discarding what the other workers read; a unit before it restarts the stream. With W workers a stream is
  inflated W times in all, in parallel: inflating costs ~0.3 ms per 110 KB image, decoding, resizing and
  encoding it 5-8 ms, so this holds up to several workers (beyond, the inflation of the others' images is
  what a worker spends its time on). :class:`CursorReader` checks each member's tar header against the
  listing before its bytes are used, and never reads above the member-size cap.
- The Kaggle zip's nested tar.gz keeps one unit per stream, read by :class:`StreamReader` with ``tarfile``.
  ``bytes_read`` counts compressed bytes read from disk, so a subset's build.json shows that whole streams
  were read.
- A locator ``<zip>!/<member>`` names a tar.gz stored (or deflated) inside a zip.
- Inflating: zlib-ng's gzip reader (``pip install 'imagenet-prep[fast]'``, imported on the first stream opened)
  when it loads, inflating a stream in ~2/3 of the stdlib's CPU time (every worker inflates every stream);
  the stdlib's otherwise. Its errors are raised as the stdlib's (same classes, same texts), so a damaged stream
  fails with the same one-line message; :func:`inflater` names the one in use for build.json.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from ..errors import ArchiveError, InputError, MemberError
from ..io.bytesource import FileByteSource, RangeView
from ..io.tar import MAX_HEADER_CHAIN, member_header_problem, member_problem
from ..io.tar_index import IndexedArchive, refusals_ok
from ..records import ByteLocation, Sample, SourceFile, WorkUnit
from .base import SEQUENCE_CHUNK, Runner, SourceBase, SourceRecord, SplitIndex

STREAM = "tar.gz"  # ByteLocation.compression of a member of a streamed tar.gz
ZIP_SEP = "!/"
_BUFFER = 1 << 20
_LOCAL_HEADER = 30
_FIX = "re-download it; a gzip stream cut short cannot be read past the cut"
_CHUNK = 1 << 20  # bytes inflated per step when a cursor skips
_LOOK_BACK = 64 << 10  # tarfile reads a byte or a header just before where it last read
_UNBOUNDED = 1 << 62  # the inflated length is unknown until the end (gzip's ISIZE is modulo 4 GiB)
#: samples per unit of a streamed archive (a split's stream cut in stream order): as ``SEQUENCE_CHUNK``
STREAM_CHUNK = SEQUENCE_CHUNK


def split_locator(locator: str) -> tuple[str, str | None]:
    path, sep, member = locator.partition(ZIP_SEP)
    return path, (member if sep else None)


def zip_data_offset(source: FileByteSource, info: zipfile.ZipInfo) -> int:
    """Where a zip member's data starts: after its LOCAL header, whose extra field may differ from the
    central directory's (one 30-byte read, plus the name to check it)."""
    head = source.read_at(info.header_offset, _LOCAL_HEADER)
    if len(head) != _LOCAL_HEADER or head[:4] != b"PK\x03\x04":
        raise ArchiveError(
            f"{source.path}: no local header for {info.filename!r} at offset {info.header_offset}; the zip is "
            "damaged; re-download it."
        )
    name_len = int.from_bytes(head[26:28], "little")
    extra_len = int.from_bytes(head[28:30], "little")
    return info.header_offset + _LOCAL_HEADER + name_len + extra_len


# ------------------------------------------------------------------------------------------ the inflater
_FAST_INFLATER = "zlib-ng"  # the package (`fast` extra) whose gzip reader is used when it loads
_STDLIB_CRC = re.compile(r"CRC check failed (\d+) != (\d+)")
_chosen: list[tuple[str, type[gzip.GzipFile]]] = []  # set on first use


def _stdlib_error(exc: Exception) -> Exception:
    """zlib-ng's error as the stdlib's: ``zlib.error`` (the same zlib texts; tarfile words a ``zlib.error`` met in
    a header its own way), and the CRC message in hex. One difference stays: a few stray bytes (fewer than a
    gzip header) after the last member read as a cut stream ("is truncated") where the stdlib says "Not a
    gzipped file"; both messages ask for a re-download."""
    if isinstance(exc, gzip.BadGzipFile):
        crc = _STDLIB_CRC.fullmatch(str(exc))
        if crc:
            return gzip.BadGzipFile(f"CRC check failed {int(crc[1]):#x} != {int(crc[2]):#x}")
        return exc
    return zlib.error(str(exc))


def _fast_inflater() -> tuple[str, type[gzip.GzipFile]]:
    from zlib_ng import gzip_ng, zlib_ng  # ImportError: the caller falls back to the stdlib

    class FastGzipFile(gzip_ng.GzipNGFile):
        """zlib-ng's gzip reader, raising what the stdlib's raises (STREAM_ERRORS, damaged_stream)."""

        def read(self, size: int | None = -1) -> bytes:
            try:
                return super().read(size)
            except (zlib_ng.error, gzip.BadGzipFile) as exc:  # type: ignore[misc]  # zlib_ng.error is an Exception
                raise _stdlib_error(exc) from None

    return f"{_FAST_INFLATER} {zlib_ng.ZLIBNG_VERSION}", FastGzipFile


def _inflaters() -> tuple[str, type[gzip.GzipFile]]:
    """The gzip reader of this process, named: zlib-ng's when it loads, else the stdlib's (chosen once; imported
    lazily so that `--help` and the registries never load it). The zip layer around a Kaggle tar.gz stays on
    the stdlib's zlib: it is read once, by one unit."""
    if not _chosen:
        try:
            _chosen.append(_fast_inflater())
        except ImportError:
            _chosen.append((f"zlib {zlib.ZLIB_RUNTIME_VERSION}", gzip.GzipFile))
    return _chosen[0]


def inflater() -> str:
    """What inflates the gzip streams in this environment, with its version (build.json's ``inflater``):
    ``zlib-ng 2.3.3`` with the `fast` extra, else the stdlib's ``zlib 1.2.13``. Speed only: the bytes are
    the same."""
    return _inflaters()[0]


class _Inflater(io.RawIOBase):
    """A raw deflate stream read as its inflated bytes (a deflated zip member, read in order)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._inflater.eof:
                return 0
            chunk = self._inflater.unconsumed_tail or self._raw.read(_BUFFER)
            if not chunk:
                raise EOFError("the deflated zip member ends early")
            self._pending = self._inflater.decompress(chunk, _BUFFER)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def open_stream(locator: str) -> tuple[gzip.GzipFile, FileByteSource]:
    """The decompressed tar bytes of a stream, and the file source that counts the bytes read from disk."""
    path, member = split_locator(locator)
    source = FileByteSource(path)
    raw: BinaryIO
    if member is None:
        raw = io.BufferedReader(RangeView(source, 0, source.size), _BUFFER)
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                info = archive.getinfo(member)
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise ArchiveError(f"Cannot open {member} inside {path}: {exc}; re-download it.") from None
        start = zip_data_offset(source, info)
        raw = io.BufferedReader(RangeView(source, start, info.compress_size), _BUFFER)
        if info.compress_type == zipfile.ZIP_DEFLATED:
            raw = io.BufferedReader(_Inflater(raw), _BUFFER)
        elif info.compress_type != zipfile.ZIP_STORED:
            raise ArchiveError(f"{member} inside {path} uses an unsupported zip compression method.")
    return _inflaters()[1](fileobj=raw, mode="rb"), source


STREAM_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError)


def damaged_stream(locator: str, exc: BaseException) -> ArchiveError:
    if isinstance(exc, ArchiveError):
        return exc
    what = "is truncated" if isinstance(exc, EOFError) else f"is damaged ({exc})"
    return ArchiveError(f"The stream {locator} {what}; {_FIX}.")


class StreamCursor:
    """The decompressed bytes of a tar.gz as a forward-only :class:`~imagenet_prep.io.bytesource.ByteSource`:
    a read ahead of the position decompresses and discards up to it; a read a little behind is served from a
    short look-back; a read further behind restarts the stream from its start (counted in ``restarts``)."""

    def __init__(self, locator: str) -> None:
        self.locator = locator
        self.restarts = 0
        self._done_bytes = 0
        self._open()

    def _open(self) -> None:
        self.stream, self.source = open_stream(self.locator)
        self.pos = 0
        self._tail = bytearray()  # the bytes just before pos (at least _LOOK_BACK of them, when read)

    @property
    def bytes_read(self) -> int:
        """Compressed bytes read from disk (all passes)."""
        return self._done_bytes + self.source.bytes_read

    @property
    def size(self) -> int:
        return _UNBOUNDED

    def _remember(self, data: bytes) -> None:
        if len(data) >= _LOOK_BACK:
            self._tail = bytearray(memoryview(data)[-_LOOK_BACK:])
        else:
            self._tail += data
            if len(self._tail) > 2 * _LOOK_BACK:  # trimmed now and then: amortised, not 64 KiB per read
                del self._tail[:-_LOOK_BACK]

    def _read(self, size: int) -> bytes:
        try:
            data = self.stream.read(size)
        except STREAM_ERRORS as exc:
            raise damaged_stream(self.locator, exc) from None
        self.pos += len(data)
        return data

    def reachable(self, offset: int) -> bool:
        """Whether ``offset`` can be read without restarting the stream."""
        return offset >= self.pos - len(self._tail)

    def restart(self) -> None:
        self._done_bytes += self.source.bytes_read
        self._close()
        self._open()
        self.restarts += 1

    def skip_to(self, offset: int) -> None:
        while self.pos < offset:
            chunk = self._read(min(offset - self.pos, _CHUNK))
            if not chunk:
                break
            self._remember(chunk)  # every chunk: the look-back must be the bytes just before pos

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` of the decompressed stream (fewer only at its end)."""
        if size <= 0 or offset < 0:
            return b""
        if not self.reachable(offset):
            self.restart()
        head = b""
        if offset < self.pos:
            start = len(self._tail) - (self.pos - offset)
            head = bytes(self._tail[start : start + size])
            if len(head) == size:
                return head
        self.skip_to(offset)
        data = self._read(size - len(head))
        self._remember(data)
        return head + data if head else data

    def drain(self) -> None:
        """Read to the end: a cut or damaged stream (a bad CRC, a missing trailer) raises here."""
        while chunk := self._read(_CHUNK):
            self._remember(chunk)

    def _close(self) -> None:
        for closer in (self.stream.close, self.source.close):
            with contextlib.suppress(Exception):
                closer()

    def close(self) -> None:
        self._done_bytes += self.source.bytes_read
        self._close()


# ------------------------------------------------------------------------------------------ cursors
_LOCAL = threading.local()  # per thread of a worker process: the stream it read last, kept for its next unit


def _forget_inherited_cursors() -> None:
    """In a forked worker: open cursors of its own (an inherited open file shares its offset with the parent's)."""
    global _LOCAL
    _LOCAL = threading.local()


os.register_at_fork(after_in_child=_forget_inherited_cursors)


def _cursors() -> dict[str, StreamCursor]:
    if not hasattr(_LOCAL, "cursors"):
        _LOCAL.cursors = {}
    return _LOCAL.cursors


def cursor_for(locator: str, offset: int) -> StreamCursor:
    """This thread's cursor on ``locator``, positioned at or before ``offset`` (restarted if it is past it).
    One per thread, on one stream at a time: a Dask worker with several threads runs units side by side."""
    cursors = _cursors()
    cursor = cursors.get(locator)
    if cursor is None:
        close_cursors()
        cursor = cursors[locator] = StreamCursor(locator)
    elif not cursor.reachable(offset):
        cursor.restart()
    return cursor


def close_cursors(locator: str | None = None) -> None:
    """Close the cursor this thread keeps between units (one open file at most; tests, long-lived processes), or
    only the one on ``locator``."""
    cursors = _cursors()
    for name in [name for name in cursors if locator is None or name == locator]:
        cursors.pop(name).close()


def group_in_stream_chunks(
    split: str, samples: Sequence[Sample], chunk: int | None = None
) -> list[tuple[str, Sequence[Sample]]]:
    """Each stream's samples in stream order, cut into units of ``chunk`` samples (``STREAM_CHUNK``); the
    remainder is a stream's FIRST unit, so every later one has the same size (the local executor runs the
    largest first, keeping plan order among equals: stream order) and the short one, run last, restarts the
    stream only for its short prefix. Ids: ``<split>-<stream>`` for a stream of one unit, else
    ``<split>-<stream>-<n>``. The cut depends on the samples only, never on the number of workers."""
    size = chunk or STREAM_CHUNK
    by_stream: dict[str, list[Sample]] = {}
    for sample in samples:
        by_stream.setdefault(sample.location.locator, []).append(sample)
    units: list[tuple[str, Sequence[Sample]]] = []
    for locator, chosen in sorted(by_stream.items()):
        ordered = sorted(chosen, key=lambda s: s.location.offset)
        name = stream_unit_id(split, locator)
        if len(ordered) <= size:
            units.append((name, tuple(ordered)))
            continue
        first = len(ordered) % size or size
        bounds = [0, *range(first, len(ordered), size), len(ordered)]
        units.extend(
            (f"{name}-{i:05d}", tuple(ordered[start:end]))
            for i, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False))
        )
    return units


class _HeaderBytes:
    """A tar header chain read from the stream, as the ByteSource ``member_header_problem`` checks."""

    def __init__(self, start: int, data: bytes) -> None:
        self.start, self.data = start, data

    @property
    def size(self) -> int:
        return self.start + len(self.data)

    def read_at(self, offset: int, size: int) -> bytes:
        return self.data[offset - self.start : offset - self.start + size]


class CursorReader:
    """A unit's (sample, bytes), read forward through this thread's cursor on each stream: the samples are read
    in (stream, offset) order; one the stream reaches before its turn in the unit is held until then (none in
    stream-ordered units; a shard writer's shuffled unit holds up to its own source bytes). Each member's tar
    header is checked against the listing first; a member above the member-size cap is not read."""

    #: what to do when the listing does not match the stream (a subclass names its own cache)
    stale: ClassVar[str] = (
        "delete its listing cache (<archive>.index.json beside it, or archive-index/ in the tool's cache "
        "folder) and run the same command again."
    )
    #: a member above the cap: a recorded skip (True), or the unit fails (False)
    skip_oversized: ClassVar[bool] = True

    def __init__(self, unit: WorkUnit) -> None:
        self.unit = unit
        self._cursor: StreamCursor | None = None
        self._start_bytes = 0
        self._bytes = 0

    @property
    def bytes_read(self) -> int:
        if self._cursor is None:
            return self._bytes
        return self._bytes + self._cursor.bytes_read - self._start_bytes

    def _use(self, locator: str, offset: int) -> StreamCursor:
        if self._cursor is not None and self._cursor.locator == locator and self._cursor.reachable(offset):
            return self._cursor
        self._leave()
        cursor = self._cursor = cursor_for(locator, offset)
        self._start_bytes = cursor.bytes_read
        return cursor

    def _leave(self) -> None:
        if self._cursor is not None:
            self._bytes += self._cursor.bytes_read - self._start_bytes
            self._cursor = None

    def _read(self, sample: Sample) -> bytes | MemberError:
        where = sample.location
        cap = self.unit.max_member_size
        if where.size > cap:
            message = (
                f"{where.locator}: {sample.name} is {where.size:,} bytes, above the member-size cap of {cap:,} "
                "bytes (--max-member-size); it is not read."
            )
            if self.skip_oversized:
                return MemberError(message)
            raise ArchiveError(message)
        header = where.header_offset if where.header_offset is not None else where.offset
        if header > where.offset or where.offset - header > MAX_HEADER_CHAIN:
            raise ArchiveError(
                f"{where.locator}: the index gives a bad header offset for {sample.name}; {self.stale}"
            )
        cursor = self._use(where.locator, header)
        chain = cursor.read_at(header, where.offset - header)
        if where.header_offset is not None:
            problem = member_header_problem(
                _HeaderBytes(header, chain), header, where.offset, where.size, sample.name
            )
            if problem is not None:
                raise ArchiveError(
                    f"{where.locator}: the tar header at offset {header} (decompressed) does not match the index "
                    f"for {sample.name} ({problem}); {self.stale}"
                )
        data = cursor.read_at(where.offset, where.size)
        if len(data) != where.size:
            raise ArchiveError(
                f"{where.locator} ends before {sample.name} ({len(data)} of {where.size} bytes): the archive "
                f"changed or was cut; {self.stale}"
            )
        return data

    def __iter__(self) -> Iterator[tuple[Sample, bytes | MemberError]]:
        samples = self.unit.samples
        order = sorted(
            range(len(samples)), key=lambda i: (samples[i].location.locator, samples[i].location.offset)
        )
        held: dict[int, bytes | MemberError] = {}
        reading = iter(order)
        for position, sample in enumerate(samples):
            data = held.pop(position, None)
            while data is None:
                index = next(reading)
                got = self._read(samples[index])
                if index == position:
                    data = got
                else:
                    held[index] = got
            yield sample, data

    def close(self) -> None:
        self._leave()  # the cursor stays open for this thread's next unit (cursor_for)


def list_stream(
    locator: str,
) -> tuple[list[tuple[str, int, int]], list[tuple[str, str]], int, list[int]]:
    """Worker side: every regular member of a tar.gz stream as (name, data offset, size), refusals
    (name, reason), the compressed bytes read, and each member's header offset (its tar header chain starts
    there: a reader checks it before using the member's bytes). Folders are skipped; a cut or damaged stream
    raises."""
    members: list[tuple[str, int, int]] = []
    headers: list[int] = []
    refused: list[tuple[str, str]] = []
    names: set[str] = set()
    stream, source = open_stream(locator)
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=_BUFFER) as tar:
            for info in tar:
                name = info.name[2:] if info.name.startswith("./") else info.name
                if info.isdir() or name in ("", "."):
                    continue
                problem = member_problem(info, name, names, flat=False)
                if problem is None:
                    members.append((name, info.offset_data, info.size))
                    headers.append(info.offset)
                else:
                    refused.append((name, problem))
        while stream.read(_BUFFER):  # the rest (tar padding, gzip trailer): a cut stream raises here
            pass
    except STREAM_ERRORS as exc:
        raise damaged_stream(locator, exc) from None
    finally:
        stream.close()
        source.close()
    return members, refused, source.bytes_read, headers


class StreamListing(IndexedArchive):
    """The cached listing of one stream (``path`` is the file on disk; ``member`` a tar.gz inside a zip)."""

    _KIND = "stream"
    _EXPECTED = "a tar.gz archive"

    def __init__(self, path: Path, member: str | None = None, cache_dir: Path | None = None) -> None:
        self._SUFFIX = f".{Path(member).name}.index.json" if member else ".index.json"
        super().__init__(path, cache_dir)
        self.source.close()
        self.locator = str(path) if member is None else f"{path}{ZIP_SEP}{member}"
        self.members: list[tuple[str, int, int]] | None = None
        self.refused: list[tuple[str, str]] = []
        self.headers: list[int] = []  # each member's header offset (parallel to ``members``)
        cached = self._load_cache()
        if cached is not None:
            self.members = [tuple(m) for m in cached["members"]]
            self.refused = [tuple(r) for r in cached["refused"]]
            self.headers = list(cached["headers"])

    def _schema_ok(self, data: dict) -> bool:
        # Offsets are in the decompressed stream: whole, non-negative numbers; anything else is rebuilt.
        members = data.get("members")
        return (
            isinstance(members, list)
            and all(
                isinstance(m, list)
                and len(m) == 3
                and isinstance(m[0], str)
                and all(type(v) is int and v >= 0 for v in m[1:])
                for m in members
            )
            and refusals_ok(data.get("refused"))
            and _headers_ok(data.get("headers"), members)
        )

    def set(
        self, members: list[tuple[str, int, int]], refused: list[tuple[str, str]], headers: list[int]
    ) -> None:
        self.members, self.refused, self.headers = list(members), list(refused), list(headers)
        self._write_cache(
            {
                "members": [list(m) for m in members],
                "refused": [list(r) for r in refused],
                "headers": list(headers),
            }
        )


def _headers_ok(headers: object, members: list) -> bool:
    """One header offset per member, a whole number of 512-byte blocks at most 64 KiB before its data (a
    listing written before header offsets were recorded has none: it is listed again)."""
    return (
        isinstance(headers, list)
        and len(headers) == len(members)
        and all(
            type(h) is int and 0 <= h < m[1] and (m[1] - h) % 512 == 0 and m[1] - h <= MAX_HEADER_CHAIN
            for h, m in zip(headers, members, strict=True)
        )
    )


def list_streams(listings: Sequence[StreamListing]) -> int:
    """List the streams not yet cached, in parallel threads (zlib inflates without the GIL); returns the
    compressed bytes read. The parent writes each cache."""
    todo = [listing for listing in listings if listing.members is None]
    if not todo:
        return 0
    workers = max(1, min(len(todo), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outputs = list(pool.map(lambda listing: list_stream(listing.locator), todo))
    total = 0
    for listing, (members, refused, nbytes, headers) in zip(todo, outputs, strict=True):
        listing.set(members, refused, headers)
        total += nbytes
    return total


def stream_unit_id(split: str, locator: str) -> str:
    path, member = split_locator(locator)
    name = Path(member or path).name
    for suffix in (".tar.gz", ".tgz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return f"{split}-{name}"


def group_by_stream(split: str, samples: Sequence[Sample]) -> list[tuple[str, Sequence[Sample]]]:
    """One unit per stream, its samples in stream order: a stream is read once, from its start."""
    by_stream: dict[str, list[Sample]] = {}
    for sample in samples:
        by_stream.setdefault(sample.location.locator, []).append(sample)
    return [
        (stream_unit_id(split, locator), tuple(sorted(chosen, key=lambda s: s.location.offset)))
        for locator, chosen in sorted(by_stream.items())
    ]


class StreamReader:
    """Yields a unit's samples from their streams, in the unit's order, reading each stream once."""

    def __init__(self, unit: WorkUnit) -> None:
        self.unit = unit
        self._open: dict[str, tuple[gzip.GzipFile, FileByteSource, tarfile.TarFile]] = {}
        self._done_bytes = 0

    @property
    def bytes_read(self) -> int:
        return self._done_bytes + sum(source.bytes_read for _s, source, _t in self._open.values())

    def _tar(self, locator: str) -> tarfile.TarFile:
        if locator not in self._open:
            stream, source = open_stream(locator)
            try:
                tar = tarfile.open(fileobj=stream, mode="r|", bufsize=_BUFFER)  # noqa: SIM115 - closed by _finish
            except STREAM_ERRORS as exc:
                stream.close()
                source.close()
                raise damaged_stream(locator, exc) from None
            self._open[locator] = (stream, source, tar)
        return self._open[locator][2]

    def _finish(self, locator: str) -> None:
        stream, source, tar = self._open.pop(locator)
        self._done_bytes += source.bytes_read
        for closer in (tar.close, stream.close, source.close):
            with contextlib.suppress(Exception):
                closer()

    def __iter__(self) -> Iterator[tuple[Sample, bytes | MemberError]]:
        wanted: dict[str, set[int]] = {}
        for sample in self.unit.samples:
            wanted.setdefault(sample.location.locator, set()).add(sample.location.offset)
        held: dict[tuple[str, int], bytes | MemberError] = {}
        for sample in self.unit.samples:
            where = sample.location
            key = (where.locator, where.offset)
            data = held.pop(key, None)
            if data is None:
                data = self._advance(where.locator, where.offset, wanted[where.locator], held)
            if not isinstance(data, MemberError) and len(data) != where.size:
                raise ArchiveError(
                    f"{where.locator}: {sample.name} holds {len(data)} bytes, the index says {where.size}: the "
                    "archive changed since it was indexed; run the build again."
                )
            wanted[where.locator].discard(where.offset)
            if not wanted[where.locator] and where.locator in self._open:
                self._finish(where.locator)  # nothing more needed from this stream: stop reading it
            yield sample, data

    def _advance(
        self, locator: str, offset: int, wanted: set[int], held: dict[tuple[str, int], bytes | MemberError]
    ) -> bytes | MemberError:
        tar = self._tar(locator)
        cap = self.unit.max_member_size
        try:
            while (info := tar.next()) is not None:
                if info.offset_data > offset:
                    break
                if info.offset_data in wanted and info.isreg():
                    data: bytes | MemberError
                    if info.size > cap:  # the stream's own header, whatever the (cached) listing said
                        data = MemberError(
                            f"{locator}: {info.name} is {info.size:,} bytes, above the member-size cap of "
                            f"{cap:,} bytes (--max-member-size); it is not read."
                        )
                    else:
                        handle = tar.extractfile(info)
                        data = handle.read() if handle is not None else b""
                    if info.offset_data == offset:
                        return data
                    held[(locator, info.offset_data)] = data
        except STREAM_ERRORS as exc:
            raise damaged_stream(locator, exc) from None
        raise ArchiveError(
            f"{locator} has no member at offset {offset} any more: the archive changed since it was "
            "indexed; run the build again."
        )

    def close(self) -> None:
        for locator in list(self._open):
            self._finish(locator)


def listing_files(
    listing: StreamListing, parse: Callable[[str], tuple[str, str] | str]
) -> tuple[dict[str, list[tuple[str, str, int, int, int]]], list[tuple[str, str]]]:
    """Sort a stream's members into classes, as (name, key, offset, size, header offset): ``parse(name)``
    gives (wnid, key) or a refusal reason."""
    by_class: dict[str, list[tuple[str, str, int, int, int]]] = {}
    refused = list(listing.refused)
    for (name, offset, size), header in zip(listing.members or (), listing.headers, strict=True):
        parsed = parse(name)
        if isinstance(parsed, str):
            refused.append((name, parsed))
            continue
        wnid, key = parsed
        by_class.setdefault(wnid, []).append((name, key, offset, size, header))
    return by_class, refused


def stream_index(
    split: str, listings: Sequence[StreamListing], parse, wnids: Sequence[str], layout: str
) -> SplitIndex:
    """The chosen classes' files across a split's streams (shared by the streamed layouts)."""
    files: dict[str, list[SourceFile]] = {wnid: [] for wnid in wnids}
    refused: list[tuple[str, str]] = []
    all_classes: set[str] = set()
    for listing in listings:
        by_class, refusals = listing_files(listing, parse)
        all_classes.update(by_class)
        shard = Path(listing.locator).name
        refused.extend((f"{split}/{shard}/{name}", reason) for name, reason in refusals)
        for wnid in wnids:
            for name, key, offset, size, header in by_class.get(wnid, ()):
                location = ByteLocation(listing.locator, offset, size, STREAM, header)
                files[wnid].append(SourceFile(name, key, location))
    warnings = []
    if len(set(wnids)) < len(all_classes):
        total = sum(os.path.getsize(listing.path) for listing in listings)
        warnings.append(
            f"{split}: the {layout} archives are gzip streams that cannot seek, so building {len(wnids)} of "
            f"{len(all_classes)} classes still reads all {len(listings)} of them ({total / 1e9:.2f} GB)."
        )
    return SplitIndex(split, {w: tuple(f) for w, f in files.items()}, tuple(refused), tuple(warnings))


class StreamedSource(SourceBase):
    """A layout of gzip-stream archives per split (the Hugging Face shards, the face-blurred release): each
    stream listed once (cached; streams in parallel threads), its members sorted into classes by ``parse``, one
    unit per stream. A subclass gives its archives per split (``streams``), the member-name parser and the
    names used in messages."""

    #: split -> what the split's archives are called (for ``missing`` and the "no such split" error)
    archive_names: ClassVar[dict[str, str]] = {}
    #: how the archives are named in the "cannot seek" warning
    kind: ClassVar[str] = ""
    #: added to the split in build.json's sources
    role_suffix: ClassVar[str] = ""
    #: samples per unit (each stream cut in stream order; the grouping runs in the parent)
    UNIT_SIZE: ClassVar[int] = STREAM_CHUNK

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        super().__init__(folder, cache_dir)
        self.streams = self.find_streams(self.folder)
        self._listings: dict[str, list[StreamListing]] = {}
        self._listing_bytes: dict[str, int] = {}

    @staticmethod
    def find_streams(folder: Path) -> dict[str, list[Path]]:
        """split -> its archives in ``folder`` (none: the split is absent)."""
        raise NotImplementedError

    @staticmethod
    def parse(name: str) -> tuple[str, str] | str:
        """A member name -> (wnid, key), or why it is refused."""
        raise NotImplementedError

    def no_split(self, split: str) -> InputError:
        return InputError(
            f"{self.archive_names[split]} is missing from {self.folder}: build the splits it has with --splits."
        )

    def splits(self) -> tuple[str, ...]:
        return tuple(split for split in ("train", "val") if split in self.streams)

    def missing(self) -> list[str]:
        return [
            f"{self.archive_names[split]} ({split})"
            for split in ("train", "val")
            if split not in self.streams
        ]

    def listings(self, split: str) -> list[StreamListing]:
        if split not in self._listings:
            if split not in self.streams:
                raise self.no_split(split)
            listings = [StreamListing(path, cache_dir=self.cache_dir) for path in self.streams[split]]
            self._listing_bytes[split] = list_streams(listings)
            self._listings[split] = listings
        return self._listings[split]

    def classes(self, split: str) -> tuple[str, ...]:
        found: set[str] = set()
        for listing in self.listings(split):
            found.update(listing_files(listing, self.parse)[0])
        return tuple(sorted(found))

    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        index = stream_index(split, self.listings(split), self.parse, wnids, self.kind)
        warnings = (*index.warnings, *self.more_warnings(split, index, wnids))
        nbytes = self._listing_bytes.pop(split, 0)  # the listing's reads, counted once
        return SplitIndex(split, index.files, index.refused, warnings, nbytes)

    def more_warnings(self, split: str, index: SplitIndex, wnids: Sequence[str]) -> list[str]:
        """Warnings of this layout beyond the streams' own (default: none)."""
        return []

    def member_label(self, split: str, wnid: str, name: str) -> str:
        return f"{split}/{name}"

    def group(self, split: str, samples: Sequence[Sample]) -> list[tuple[str, Sequence[Sample]]]:
        return group_in_stream_chunks(split, samples, self.UNIT_SIZE)

    def records(self) -> list[SourceRecord]:
        return [
            SourceRecord(path, f"{split}{self.role_suffix}")
            for split in self.splits()
            for path in self.streams[split]
        ]

    def close(self) -> None:
        super().close()
        for paths in self.streams.values():  # units read in this thread (a dry run, one worker) left a cursor
            for path in paths:
                close_cursors(str(path))

    @classmethod
    def open_unit(cls, unit: WorkUnit) -> CursorReader:
        return CursorReader(unit)
