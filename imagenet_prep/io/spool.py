"""Local copies of the byte ranges a remote header scan streamed: a subset's images cross the network once.

Indexing a remote class tar streams the whole class tar in one request (its headers sit between its images),
and the build then reads the same images again by Range. The spool keeps what a scan streamed on local disk,
under the cache folder, keyed by the archive's URL and its pinned validator (ETag, else Last-Modified), so a
worker's read of those bytes is served locally.

- A spool file holds bytes [start, end) of exactly one version of one archive: it is written under a temporary
  name and renamed when the stream stops, so a reader never sees a partial file; an archive without a validator
  is never spooled (its versions cannot be told apart).
- A reader serving a pinned version from the spool still asks the server once (a one-byte ranged GET with
  If-Match) whether that version is current, so an archive replaced mid-build stays a clear error.
- The spool is bounded by ``IMAGENET_PREP_SPOOL_MAX`` bytes (default 8 GiB, ``0`` turns it off): when a new
  file takes it over, the least recently used files go first. It is a cache: deleting it loses nothing.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import re
import tempfile
import time
from pathlib import Path

from ..errors import UsageError
from .paths import cache_dir

SPOOL_ENV = "IMAGENET_PREP_SPOOL_MAX"
DEFAULT_MAX_BYTES = 8 << 30
_NAME = re.compile(r"^(\d+)-(\d+)\.bin$")


def spool_root() -> Path:
    return cache_dir() / "remote-spool"


def spool_limit() -> int:
    """The spool's size bound in bytes (``$IMAGENET_PREP_SPOOL_MAX``; 0 = no spool)."""
    value = os.environ.get(SPOOL_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_BYTES
    if not value.isdigit():
        raise UsageError(f"{SPOOL_ENV} must be a number of bytes (0 turns the spool off), not {value!r}.")
    return int(value)


class Spool:
    """The spooled ranges of one version of one remote archive."""

    def __init__(self, url: str, pin: tuple[str, str]) -> None:
        key = hashlib.sha256(f"{url}|{pin[0]}={pin[1]}".encode()).hexdigest()[:24]
        self.folder = spool_root() / key
        self._starts: list[int] = []
        self._ranges: list[tuple[int, int, Path]] | None = None
        self._touched: set[Path] = set()

    def _load(self) -> list[tuple[int, int, Path]]:
        if self._ranges is None:
            ranges = []
            with contextlib.suppress(OSError):
                for entry in os.scandir(self.folder):
                    m = _NAME.match(entry.name)
                    if m and int(m.group(2)) > int(m.group(1)):
                        ranges.append((int(m.group(1)), int(m.group(2)), Path(entry.path)))
            ranges.sort()
            self._ranges = ranges
            self._starts = [start for start, _, _ in ranges]
        return self._ranges

    def read(self, offset: int, end: int) -> bytes | None:
        """Bytes [offset, end) if one spool file holds them all, else None (read them from the server)."""
        ranges = self._load()
        i = bisect.bisect_right(self._starts, offset) - 1
        if i < 0:
            return None
        start, stop, path = ranges[i]
        if end > stop:
            return None
        try:
            with open(path, "rb") as file:
                data = os.pread(file.fileno(), end - offset, offset - start)
                if path not in self._touched:  # least recently used goes first
                    self._touched.add(path)
                    os.utime(file.fileno())
        except OSError:  # evicted meanwhile: the server still has the bytes
            return None
        return data if len(data) == end - offset else None

    def writer(self, start: int) -> SpoolWriter | None:
        """A writer for a stream starting at ``start``, or None when the spool is off."""
        return SpoolWriter(self.folder, start) if spool_limit() > 0 else None


class SpoolWriter:
    """Bytes of one stream, appended in order; ``finish`` publishes them (or drops a stream too short)."""

    def __init__(self, folder: Path, start: int) -> None:
        self.folder = folder
        self.start = self.pos = start
        self._file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self._broken = False

    def write(self, offset: int, data: bytes) -> None:
        """Append ``data`` found at ``offset``; a gap or a failed write ends this file where it was."""
        if self._broken or not data:
            return
        if offset != self.pos:
            self._broken = True
            return
        try:
            if self._file is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed in finish()
                    dir=self.folder, prefix=".part-", delete=False
                )
            self._file.write(data)
        except OSError:  # a full disk: the spool is an optimisation, the build goes on from the server
            self._broken = True
            return
        self.pos += len(data)

    def finish(self) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.close()
            if self.pos > self.start:
                target = self.folder / f"{self.start}-{self.pos}.bin"
                os.replace(file.name, target)
                evict(spool_limit(), keep=target)
                return
        except OSError:
            pass
        with contextlib.suppress(OSError):
            os.unlink(file.name)


def evict(limit: int, keep: Path | None = None) -> None:
    """Remove the least recently used spool files until the spool holds at most ``limit`` bytes."""
    files = []
    with contextlib.suppress(OSError):
        for folder in os.scandir(spool_root()):
            with contextlib.suppress(OSError):
                for entry in os.scandir(folder.path):
                    if _NAME.match(entry.name):
                        st = entry.stat()
                        files.append((st.st_mtime_ns, st.st_size, Path(entry.path)))
                    elif entry.name.startswith(".part-") and entry.stat().st_mtime < time.time() - 86400:
                        os.unlink(entry.path)  # left by a killed process a day ago
    total = sum(size for _, size, _ in files)
    # Oldest first; the file just written goes last (it goes only if it alone is over the bound).
    for _, size, path in sorted(files, key=lambda f: (f[2] == keep, f[0])):
        if total <= limit:
            break
        with contextlib.suppress(OSError):
            path.unlink()
            total -= size
