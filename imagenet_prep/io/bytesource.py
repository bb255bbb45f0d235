"""Random-access bytes: the ByteSource protocol every reader uses, and the local-file implementation.

An HTTP Range or object-store source plugs in behind the same two members (``size``, ``read_at``).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import ArchiveError, MemberError


@runtime_checkable
class ByteSource(Protocol):
    """Random-access bytes: a local file today, an HTTP Range reader later."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, size: int) -> bytes: ...


class FileByteSource:
    """A local file read with ``os.pread`` (no shared file position: safe after fork and in threads).

    Pickles as its path only; the file is (re)opened lazily in whichever process uses it. ``bytes_read``
    counts the bytes actually returned by this instance's reads (callers report it in their results).
    """

    def __init__(self, path: str | os.PathLike[str], *, nofollow: bool = False) -> None:
        self.path = Path(path)
        self.nofollow = nofollow  # a folder source's image: a link swapped in after planning is not followed
        self._fd: int | None = None
        self._size: int | None = None
        self.bytes_read = 0

    def _open(self) -> int:
        if self._fd is None:
            try:
                # Non-blocking: a FIFO swapped in after planning opens at once (and is refused below) instead
                # of waiting for a writer; the flag changes nothing for a regular file.
                flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
                if self.nofollow:
                    flags |= getattr(os, "O_NOFOLLOW", 0)
                try:
                    fd = os.open(self.path, flags)
                except OSError as exc:
                    if self.nofollow and exc.errno == errno.ELOOP:
                        raise MemberError(
                            f"{self.path} is a link (swapped in after planning?): not followed, not read."
                        ) from None
                    raise
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    os.close(fd)
                    raise MemberError(
                        f"{self.path} is not a regular file (a FIFO or a device?); it is not read."
                    )
                self._fd, self._size = fd, st.st_size
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
        """Up to ``size`` bytes at ``offset`` (fewer only at the end of the file).

        One ``pread`` does it for a regular file (Linux reads up to ~2 GiB at once). Should it come back short,
        the rest is read into ONE preallocated buffer (never by concatenating, which made a 4 GiB read cost
        8 GB); callers bound ``size`` (the member-size cap) before asking.
        """
        fd = self._open()
        if size <= 0 or offset < 0:
            return b""
        data = os.pread(fd, size, offset)
        if 0 < len(data) < size:
            data = self._read_rest(fd, offset, size, data)
        self.bytes_read += len(data)
        return data

    @staticmethod
    def _read_rest(fd: int, offset: int, size: int, head: bytes) -> bytes:
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = len(head)
        view[:got] = head
        del head
        while got < size:
            count = os.preadv(fd, [view[got:]], offset + got)
            if count <= 0:
                break
            got += count
        view.release()
        del buffer[got:]  # in place: no second copy
        return bytes(buffer)

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
        self.__init__(state["path"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"FileByteSource({str(self.path)!r})"


def is_remote(locator: object) -> bool:
    """Whether a locator is a URL read by a remote byte source (http, https, s3, gs) rather than a local path."""
    return (
        isinstance(locator, str) and locator.split("://", 1)[0].lower() in REMOTE_SCHEMES and "://" in locator
    )


#: URL scheme -> "module:class" of its ByteSource (imported on first use: the remote clients are heavy)
REMOTE_SCHEMES = {
    "http": "http:HttpByteSource",
    "https": "http:HttpByteSource",
    "s3": "objectstore:ObjectByteSource",
    "gs": "objectstore:ObjectByteSource",
}


def open_byte_source(locator: str | os.PathLike[str]) -> ByteSource:
    """The byte source for a ``ByteLocation.locator``: a local path, or a URL by its scheme."""
    if is_remote(locator):
        import importlib

        module, _, name = REMOTE_SCHEMES[str(locator).split("://", 1)[0].lower()].partition(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), name)(str(locator))
    return FileByteSource(locator)


def as_byte_source(source: ByteSource | str | os.PathLike[str]) -> ByteSource:
    if isinstance(source, (str, os.PathLike)):
        return open_byte_source(source)
    return source


def describe_source(source: ByteSource) -> str:
    return str(getattr(source, "path", source))


class RangeView(io.RawIOBase):
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

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
