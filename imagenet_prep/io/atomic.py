"""Atomic file writes: a temporary name in the same folder, then os.replace, so a crash never leaves a
half-written file under its final name. The one implementation: workers, the parent, fetch, verify and
sample all write through here, and the build's cleaners remove what a killed run left (names starting with
``TMP_MARK``)."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TMP_MARK = ".tmp-"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def temp_path_for(path: str | os.PathLike[str]) -> str:
    """A unique sibling temporary name: the pid and thread keep concurrent writers apart."""
    folder, _, name = os.fspath(path).rpartition("/")
    prefix = f"{folder}/" if folder or os.fspath(path).startswith("/") else ""
    return f"{prefix}{TMP_MARK}{os.getpid()}.{threading.get_native_id()}-{name}"


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically. Raw os calls: workers call this once per image, and a buffered
    file object plus Path arithmetic cost twice what the system calls do. OSError propagates (the caller
    words it: a full disk in a worker and in the parent get the same message)."""
    tmp = temp_path_for(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            # os.write names no file: name the one being written, so the message names the disk that is full
            # (a cache's, not OUT's).
            raise OSError(exc.errno, exc.strerror, os.fspath(path)) from None
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A file object for streaming writes; moved into place when the block ends without an error."""
    tmp = Path(temp_path_for(path))
    try:
        with open(tmp, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
