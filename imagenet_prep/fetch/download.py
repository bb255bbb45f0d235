"""Resumable, verified downloads of the release archives, over HTTP(S) or from a local mirror folder.

Per file: bytes go to ``<name>.part`` (the server's ETag / Last-Modified is kept in ``<name>.part.json`` so a
later run can resume with ``If-Range``); the MD5 is computed while streaming (a partial file left by an
earlier run is hashed first); size and MD5 are checked, the data is fsync'ed, then ``os.replace`` gives it the
final name and the MD5 is recorded in the verify cache. Only verified bytes ever carry the final name.

A file whose size or MD5 is wrong is deleted (``.part`` and ``.part.json``): resuming it would keep the bad
bytes, and keeping 148 GB of known-bad data would only block the re-download's free-space check.

Credentials (``auth``, ``IMAGENET_PREP_USER``/``IMAGENET_PREP_PASSWORD``, ``~/.netrc``, user headers and
cookies) go only to the base URL's origin (scheme, host, port): a redirect elsewhere drops them all. They
never appear in results, errors, logs or the ``.part.json`` sidecar (which is written 0600, without the URL's
``user:password@``). A malformed header is refused without echoing it.

Hostile surroundings: ``.part`` and ``.part.json`` are opened without following symbolic links and only as
regular files (a link planted there could point outside ``--dest``; a FIFO would hang the run): a link or a
special file as ``.part`` is refused with a message, the sidecar is replaced atomically. An attempt slower than
``min_rate`` bytes/s over ``rate_window`` seconds is aborted and resumed like a dropped connection; a body
never grows past the known size, and a body of unknown size stops at ``max_size`` or before the free space of
``--dest`` falls under ``FREE_SPACE_RESERVE``.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

import requests
from requests.auth import AuthBase
from requests.utils import get_netrc_auth

from ..errors import (
    ChecksumError,
    DownloadError,
    ImagenetPrepError,
    InputError,
    InsufficientSpaceError,
    UsageError,
)
from ..io.atomic import temp_path_for
from ..io.http import (  # shared with the remote byte source (moved there; names kept)
    BODY_ERRORS,
    PASSWORD_ENV,
    RETRY_STATUSES,
    USER_ENV,
    check_headers,
    describe_error,
    env_auth,
    make_session,
    parse_content_range,
    redact,
    strip_userinfo,
)
from .catalog import DEFAULT_BASE_URL, Expected, resolve
from .verify import ProgressFactory, check_file, load_checksums, record_md5

CHUNK_SIZE = 256 << 10  # network reads: small enough that a dropped connection loses little
DEFAULT_MIN_RATE = (
    1024  # bytes/s: an attempt slower than this over RATE_WINDOW seconds is aborted and resumed
)
RATE_WINDOW = 30.0
FREE_SPACE_RESERVE = (
    256 << 20
)  # a body of unknown size stops before the free space of --dest falls under this
_SPACE_RECHECK = 64 << 20  # ... re-checked every this many bytes (other writers share the disk)
_SIDECAR_MAX = 64 << 10  # a .part.json is ~200 bytes; anything larger is not ours
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

FetchStatus = Literal["downloaded", "resumed", "already-verified", "present-unverified", "failed"]


class _Cancelled(DownloadError):
    pass


class UnsafePartialError(InputError):
    """A ``.part`` file that is a symbolic link, a special file or hard-linked elsewhere: refused, untouched."""


@dataclass(frozen=True)
class FetchResult:
    """Outcome for one file. ``status``: downloaded (from scratch), resumed (a Range request continued a
    partial file), already-verified (present and matching), present-unverified (present, no MD5 known to check
    it), failed (see ``error``; nothing carries the final name). ``bytes_downloaded`` counts body bytes
    received in this run, including any discarded by a restart."""

    file: str
    status: FetchStatus
    bytes_downloaded: int
    md5: str | None
    size: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FetchReport:
    """What ``imagenet-prep fetch`` did: one :class:`FetchResult` per file asked for, into ``dest``."""

    dest: str
    results: tuple[FetchResult, ...]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``fetch --json`` (keys in docs/python-api.md)."""
        return {"dest": self.dest, "ok": self.ok, "results": [result.to_dict() for result in self.results]}


# ----------------------------------------------------------------------------------------------- helpers


def human_bytes(n: int | None) -> str:
    """1.5 MB style (powers of 1000); '?' when unknown."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def _is_local(base_url: str) -> bool:
    scheme = urlsplit(base_url).scheme.lower()
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def _local_root(base_url: str) -> Path:
    parts = urlsplit(base_url)
    return Path(unquote(parts.path)) if parts.scheme.lower() == "file" else Path(base_url)


def credentials_available(
    base_url: str,
    auth: Any = None,
    headers: Mapping[str, str] | None = None,
    cookies: Mapping[str, str] | str | None = None,
) -> bool:
    """True when some credential would be sent to ``base_url`` (explicit, env vars, URL userinfo or netrc)."""
    if auth or headers or cookies or env_auth() or urlsplit(base_url).username:
        return True
    try:
        return get_netrc_auth(base_url) is not None
    except Exception:  # a broken netrc is reported by requests itself later
        return False


def _check_space(dest: Path, needed: int | None, what: str) -> None:
    if needed is None or needed <= 0:
        return
    free = shutil.disk_usage(dest).free
    if needed > free:
        raise InsufficientSpaceError(
            f"{what} needs {human_bytes(needed)} but {dest} has {human_bytes(free)} free; "
            "free some space or choose another --dest"
        )


def _status_error(status: int, url: str, filename: str) -> DownloadError:
    where = redact(url)
    if status in (401, 403):
        return DownloadError(
            f"the server refused {filename} (HTTP {status}) at {where}: image-net.org needs an account; "
            f"give credentials with ~/.netrc, {USER_ENV}/{PASSWORD_ENV}, --header or --cookie, "
            "or use a mirror (--base-url)"
        )
    if status == 404:
        return DownloadError(f"{filename} was not found (HTTP 404) at {where}; check --base-url")
    extra = " after retries" if status in RETRY_STATUSES else ""
    return DownloadError(f"the server answered HTTP {status}{extra} for {filename} at {where}")


# ------------------------------------------------------------------------------------------ partial files


def _open_regular(path: Path, flags: int, *, shared_ok: bool = True) -> int:
    """``os.open`` that never follows a symbolic link and never blocks on a FIFO; only a regular file (and,
    unless ``shared_ok``, one without other hard links) is returned, else UnsafePartialError."""
    try:
        fd = os.open(path, flags | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePartialError(
                f"{path} is a symbolic link; fetch does not read or write through links (one could point "
                "outside --dest): delete it and re-run fetch"
            ) from None
        if exc.errno == errno.ENXIO:  # a FIFO without a reader, opened for writing
            raise UnsafePartialError(
                f"{path} is not a regular file (a FIFO?); delete it and re-run fetch"
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePartialError(
                f"{path} is not a regular file (a FIFO, device or folder); delete it and re-run fetch"
            )
        if not shared_ok and st.st_nlink > 1:
            raise UnsafePartialError(
                f"{path} has {st.st_nlink} hard links; fetch does not write into a file that has other names "
                "(one could be outside --dest): delete it and re-run fetch"
            )
        if _O_NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


class _Partial:
    """``<name>.part`` with its running MD5 and the validator of the response that started it. Both files are
    opened through ``_open_regular``: never through a symbolic link, never a FIFO or device."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.path = final.with_name(final.name + ".part")
        self.meta_path = final.with_name(final.name + ".part.json")
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def load(self) -> int:
        """Hash a partial file an earlier run left (resume must cover every byte); returns its size."""
        try:
            fd = _open_regular(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return self.size
        with os.fdopen(fd, "rb") as f:
            while chunk := f.read(4 << 20):
                self.md5.update(chunk)
                self.size += len(chunk)
        return self.size

    def open_append(self) -> Any:
        """The partial file for appending (created if missing); see ``_open_regular``."""
        fd = _open_regular(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, shared_ok=False)
        return os.fdopen(fd, "ab")

    def reset(self) -> int:
        dropped = self.size
        fd = _open_regular(self.path, os.O_WRONLY | os.O_CREAT, shared_ok=False)
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)
        self.meta_path.unlink(missing_ok=True)
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0
        return dropped

    def validator(self, url: str) -> str | None:
        try:
            fd = _open_regular(self.meta_path, os.O_RDONLY)
            with os.fdopen(fd, "rb") as f:
                meta = json.loads(f.read(_SIDECAR_MAX + 1).decode("utf-8"))
        except (OSError, ValueError, ImagenetPrepError):
            return (
                None  # absent, damaged, a link or a FIFO: resume without a validator (the MD5 still decides)
            )
        if not isinstance(meta, dict) or meta.get("url") != strip_userinfo(url):
            return None
        etag = meta.get("etag")
        # If-Range needs a strong validator; a weak ETag would make a conforming server always send 200.
        if isinstance(etag, str) and etag and not etag.startswith("W/"):
            return etag
        modified = meta.get("last_modified")
        return modified if isinstance(modified, str) and modified else None

    def save_validator(self, url: str, response: requests.Response) -> None:
        etag = response.headers.get("ETag")
        modified = response.headers.get("Last-Modified")
        if etag or modified:
            doc = {"url": strip_userinfo(url), "etag": etag, "last_modified": modified}
            self._write_sidecar(json.dumps(doc).encode("utf-8"))
        else:
            self.meta_path.unlink(missing_ok=True)

    def _write_sidecar(self, data: bytes) -> None:
        """Write ``.part.json`` 0600 under a temporary name, then rename it over the old one: a symbolic link
        planted there is replaced, never followed."""
        tmp = Path(temp_path_for(self.meta_path))
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.meta_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def append(self, f: Any, chunk: bytes) -> None:
        f.write(chunk)
        self.md5.update(chunk)
        self.size += len(chunk)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)

    def commit(self) -> str:
        """fsync, give the data its final name, record its MD5 in the verify cache; returns the MD5."""
        fd = _open_regular(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.path, self.final)
        self.meta_path.unlink(missing_ok=True)
        digest = self.md5.hexdigest()
        record_md5(self.final, digest)
        return digest


def _finish(part: _Partial, target: Expected, source: str, sizes_seen: set[int], html: bool) -> str:
    """Check size and MD5 of a complete partial file; commit it, or delete it and raise ChecksumError."""
    hint = " (the server sent an HTML page: a login page? check the credentials)" if html else ""
    if target.size is not None and part.size != target.size:
        got = part.size
        part.discard()
        raise ChecksumError(
            f"{target.filename}: got {got} bytes from {source}, expected {target.size}{hint}; the partial "
            "file was deleted; re-run fetch, or pass --checksums if this mirror serves other bytes"
        )
    if target.md5 is None and len(sizes_seen) > 1:
        part.discard()
        raise DownloadError(
            f"{target.filename}: the server gave inconsistent sizes "
            f"({', '.join(map(str, sorted(sizes_seen)))} bytes) and no MD5 is known to settle it; "
            "the partial file was deleted; pass --checksums to verify"
        )
    digest = part.md5.hexdigest()
    if target.md5 is not None and digest != target.md5:
        part.discard()
        raise ChecksumError(
            f"{target.filename}: MD5 {digest} of the {part.size} bytes from {source} does not match "
            f"the expected {target.md5}{hint}; the partial file was deleted; re-run fetch to download it "
            "again, or pass --checksums if this mirror serves other bytes"
        )
    return part.commit()


# ------------------------------------------------------------------------------------------- transfers


@dataclass
class _Options:
    dest: Path
    base_url: str
    timeout: tuple[float, float]
    max_stalls: int
    backoff_factor: float
    retries: int
    auth: Any
    headers: Mapping[str, str] | None
    cookies: Mapping[str, str] | str | None
    progress: ProgressFactory | None
    cancel: threading.Event
    min_rate: float = DEFAULT_MIN_RATE
    rate_window: float = RATE_WINDOW
    max_size: int | None = None


class _Bar:
    """Adapts the progress factory: created lazily once the total is known, and able to rewind on restart."""

    def __init__(self, factory: ProgressFactory | None, filename: str) -> None:
        self._factory = factory
        self._filename = filename
        self._callback: Callable[[int], None] | None = None
        self._started = False

    def start(self, total: int | None, initial: int) -> None:
        if not self._started and self._factory is not None:
            self._callback = self._factory(self._filename, total, initial)
        self._started = True

    def __call__(self, n: int) -> None:
        if self._callback is not None and n:
            self._callback(n)


def _body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body exactly as sent. No Content-Encoding decoding: a .tar.gz served with ``Content-Encoding:
    gzip`` must keep the bytes its MD5 is for. read1 hands over whatever arrived, so a drop or a stall loses
    nothing already received and the resume starts exactly there."""
    raw = response.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # urllib3 < 2.3
        yield from raw.stream(CHUNK_SIZE, decode_content=False)
        return
    while data := read1(CHUNK_SIZE, decode_content=False):
        yield data


def _url_for(base_url: str, target: Expected) -> str:
    return base_url.rstrip("/") + "/" + quote(target.url_path)


class _HttpDownload:
    """One file over HTTP: a loop of requests, each resuming the partial file where the last one stopped."""

    def __init__(self, target: Expected, opts: _Options) -> None:
        self.target = target
        self.opts = opts
        self.url = _url_for(opts.base_url, target)
        self.where = redact(self.url)
        self.part = _Partial(opts.dest / target.filename)
        self.bar = _Bar(opts.progress, target.filename)
        self.received = 0
        self.used_range = False
        self.html = False
        self.sizes_seen: set[int] = set()
        self.space_checked = target.size is not None
        self.slow: float | None = (
            None  # the rate (bytes/s) of the last attempt when it was aborted as too slow
        )

    def run(self) -> tuple[FetchStatus, int, str]:
        target, opts, part = self.target, self.opts, self.part
        part.load()
        if target.size is not None and part.size > target.size:
            part.reset()  # longer than the real file: cannot be a prefix of it
        _check_space(opts.dest, None if target.size is None else target.size - part.size, target.filename)
        session, private = make_session(
            opts.base_url, opts.auth, opts.headers, opts.cookies, opts.retries, opts.backoff_factor
        )
        high_water, stalls = part.size, 0
        with session:
            while not (target.size is not None and part.size == target.size):
                self._check_cancel()
                self.slow = None
                why = self._attempt(session, private)
                if why is None:
                    break
                # The attempt ended early. Resume; give up after max_stalls attempts in a row without progress
                # (progress = more bytes than ever before, so restarts that get no further count as stalls; an
                # attempt aborted below the minimum rate counts as a stall whatever it got).
                progressed = part.size > high_water
                high_water = max(high_water, part.size)
                stalls = 0 if progressed and self.slow is None else stalls + 1
                if stalls > opts.max_stalls and self.slow is not None:
                    raise DownloadError(
                        f"{target.filename}: {stalls} attempts in a row stayed below the minimum rate of "
                        f"{_human_rate(opts.min_rate)} ({why}); the server or the network is too slow: re-run "
                        f"fetch later to resume from {part.size} bytes, or lower --min-rate"
                    )
                if stalls > opts.max_stalls:
                    raise DownloadError(
                        f"{target.filename}: {stalls} attempts in a row made no progress at {part.size} "
                        f"bytes ({why}); re-run fetch to resume"
                    )
                if stalls and opts.backoff_factor:
                    time.sleep(min(60.0, opts.backoff_factor * 2 ** (stalls - 1)))
        digest = _finish(part, target, self.where, self.sizes_seen, self.html)
        return ("resumed" if self.used_range else "downloaded"), self.received, digest

    def _check_cancel(self) -> None:
        if self.opts.cancel.is_set():
            raise _Cancelled(
                f"{self.target.filename}: interrupted; re-run fetch to resume from {self.part.size} bytes"
            )

    def _attempt(self, session: requests.Session, private: Mapping[str, str]) -> str | None:
        """One request. Returns None when the partial file is complete, else why the attempt ended early."""
        part = self.part
        headers = dict(private)
        if part.size > 0:
            headers["Range"] = f"bytes={part.size}-"
            validator = part.validator(self.url)
            if validator:
                headers["If-Range"] = validator
        try:
            response = session.get(self.url, headers=headers, stream=True, timeout=self.opts.timeout)
        except requests.RequestException as exc:  # urllib3's Retry has already retried these
            raise DownloadError(
                f"cannot download {self.target.filename} from {self.where}: {describe_error(exc)}"
            ) from None
        with response:
            status = response.status_code
            content_range = response.headers.get("Content-Range")
            self.html = "text/html" in response.headers.get("Content-Type", "")
            if status == 416:
                full = parse_content_range(content_range)[2]
                if part.size > 0 and (full == part.size or (full is None and self.target.md5 is not None)):
                    self.sizes_seen.add(part.size)
                    self.used_range = True
                    return None  # the partial file is complete: only the checks remain
                self.bar(-part.reset())
                return f"HTTP 416 with Content-Range {content_range!r}"
            if status == 206 and parse_content_range(content_range)[0] != part.size:
                self.bar(-part.reset())  # not the bytes asked for: start over without Range
                return f"HTTP 206 with unexpected Content-Range {content_range!r}"
            if status not in (200, 206):
                raise _status_error(status, self.url, self.target.filename)
            if status == 206:
                full = parse_content_range(content_range)[2]
                self.used_range = True
            else:
                if part.size > 0:
                    # The server ignored Range, or If-Range says the file changed: restart from byte 0.
                    self.bar(-part.reset())
                part.save_validator(self.url, response)
                length = response.headers.get("Content-Length", "")
                full = int(length) if length.isdigit() else None
            self._check_total(full)
            self.bar.start(full if full is not None else self.target.size, part.size)
            return self._stream(response, full)

    def _check_total(self, full: int | None) -> None:
        if full is None:
            return
        self.sizes_seen.add(full)
        target = self.target
        if target.size is not None and full != target.size:
            hint = " (an HTML page: a login page? check the credentials)" if self.html else ""
            raise ChecksumError(
                f"{self.where} offers {full} bytes{hint} but {target.filename} is {target.size} bytes; "
                "check --base-url, or pass --checksums if this mirror serves other bytes"
            )
        if not self.space_checked:
            _check_space(self.opts.dest, full - self.part.size, target.filename)
            self.space_checked = True

    def _stream(self, response: requests.Response, full: int | None) -> str | None:
        part, opts = self.part, self.opts
        limit = self.target.size if self.target.size is not None else full
        unknown = _UnknownSizeCap(self.target.filename, self.where, opts) if limit is None else None
        window_start, window_bytes = time.monotonic(), 0
        try:
            with part.open_append() as f:
                for chunk in _body_chunks(response):
                    self._check_cancel()
                    if limit is not None and part.size + len(chunk) > limit:
                        part.discard()
                        raise ChecksumError(
                            f"{self.where} sent more than the {limit} bytes of {self.target.filename}; "
                            "the partial file was deleted"
                        )
                    if unknown is not None:
                        unknown.check(part, len(chunk))
                    part.append(f, chunk)
                    self.received += len(chunk)
                    self.bar(len(chunk))
                    # Minimum rate, over a tumbling window: a trickle keeps the read timeout from firing.
                    window_bytes += len(chunk)
                    elapsed = time.monotonic() - window_start
                    if opts.min_rate and elapsed >= opts.rate_window:
                        rate = window_bytes / elapsed
                        if rate < opts.min_rate:
                            self.slow = rate
                            return (
                                f"{_human_rate(rate)} over the last {elapsed:.0f} s, under the minimum rate of "
                                f"{_human_rate(opts.min_rate)}"
                            )
                        window_start, window_bytes = time.monotonic(), 0
        except BODY_ERRORS as exc:
            return describe_error(exc)
        if full is None or part.size == full:
            return None
        return f"the body ended at {part.size} of {full} bytes"


def _human_rate(rate: float) -> str:
    return f"{human_bytes(int(rate))}/s"


class _UnknownSizeCap:
    """The limit for a body whose size nobody announced or knows: ``max_size``, and the free space of the
    destination minus FREE_SPACE_RESERVE (re-read every _SPACE_RECHECK bytes: other downloads share it)."""

    def __init__(self, filename: str, where: str, opts: _Options) -> None:
        self.filename, self.where, self.opts = filename, where, opts
        self.next_space_check = 0
        self.space_limit = 0

    def check(self, part: _Partial, incoming: int) -> None:
        new_size = part.size + incoming
        max_size = self.opts.max_size
        if max_size is not None and new_size > max_size:
            part.discard()
            raise DownloadError(
                f"{self.filename}: {self.where} sent more than {human_bytes(max_size)}, the maximum size for a "
                "file whose size is not known (the server announced none); the partial file was deleted; "
                "raise --max-size if the file really is that large"
            )
        if new_size > self.next_space_check:
            free = shutil.disk_usage(self.opts.dest).free
            self.space_limit = part.size + free - FREE_SPACE_RESERVE
            self.next_space_check = part.size + _SPACE_RECHECK
        if new_size > self.space_limit:
            raise InsufficientSpaceError(
                f"{self.filename}: {self.where} announced no size and no size is known for it; stopped at "
                f"{human_bytes(part.size)} so that {self.opts.dest} keeps {human_bytes(FREE_SPACE_RESERVE)} "
                "free; the partial file is kept: free some space (or choose another --dest) and re-run fetch "
                "to resume"
            )


def _copy_local(target: Expected, opts: _Options) -> tuple[FetchStatus, int, str]:
    root = _local_root(opts.base_url)
    source = root / target.url_path
    if not source.is_file():
        source = root / target.filename  # a mirror folder is usually flat
    if not source.is_file():
        raise DownloadError(f"{target.filename} is not in the mirror folder {root}")
    full = source.stat().st_size
    if target.size is not None and full != target.size:
        raise ChecksumError(
            f"{source} is {full} bytes but {target.filename} is {target.size} bytes; "
            "pass --checksums if this mirror holds other bytes"
        )
    part = _Partial(opts.dest / target.filename)
    part.load()
    resumed = 0 < part.size <= full
    if part.size > full:
        part.reset()
    _check_space(opts.dest, full - part.size, target.filename)
    bar = _Bar(opts.progress, target.filename)
    bar.start(full, part.size)
    copied = 0
    with open(source, "rb") as src, part.open_append() as out:
        src.seek(part.size)
        while chunk := src.read(CHUNK_SIZE):
            if opts.cancel.is_set():
                raise _Cancelled(
                    f"{target.filename}: interrupted; re-run fetch to resume from {part.size} bytes"
                )
            part.append(out, chunk)
            copied += len(chunk)
            bar(len(chunk))
    digest = _finish(part, target, str(source), {full}, html=False)
    return ("resumed" if resumed else "downloaded"), copied, digest


def _fetch_one(target: Expected, opts: _Options) -> FetchResult:
    final = opts.dest / target.filename
    try:
        if final.exists():
            present = check_file(final, target, progress=opts.progress)
            if present.status == "ok":
                return FetchResult(
                    target.filename, "already-verified", 0, present.actual_md5, present.actual_size
                )
            if present.status == "unverified":
                return FetchResult(target.filename, "present-unverified", 0, None, present.actual_size)
            detail = (
                f"{present.actual_size} bytes, expected {present.expected_size}"
                if present.size_ok is False
                else f"MD5 {present.actual_md5}, expected {present.expected_md5}"
            )
            raise ChecksumError(
                f"{final} exists but does not match ({detail}); move it away or delete it, then re-run fetch"
            )
        if _is_local(opts.base_url):
            status, nbytes, digest = _copy_local(target, opts)
        else:
            status, nbytes, digest = _HttpDownload(target, opts).run()
        return FetchResult(target.filename, status, nbytes, digest, final.stat().st_size)
    except ImagenetPrepError as exc:
        return FetchResult(target.filename, "failed", 0, None, target.size, str(exc))
    except OSError as exc:
        return FetchResult(
            target.filename,
            "failed",
            0,
            None,
            target.size,
            f"{target.filename}: cannot write in {opts.dest}: {exc.strerror or exc}; "
            "the partial file is kept, fix the cause and re-run fetch to resume",
        )


def _regular_size(path: Path) -> int:
    """Size of ``path`` when it is a regular file itself (a link is not followed), else 0."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def fetch(
    dest: str | Path,
    keys: list[str] | tuple[str, ...] | None = None,
    base_url: str = DEFAULT_BASE_URL,
    *,
    checksums: Mapping[str, str] | str | Path | None = None,
    jobs: int = 1,
    auth: tuple[str, str] | AuthBase | None = None,
    headers: Mapping[str, str] | None = None,
    cookies: Mapping[str, str] | str | None = None,
    progress: ProgressFactory | None = None,
    timeout: float | tuple[float, float] = (15.0, 60.0),
    retries: int = 5,
    backoff_factor: float = 1.0,
    max_stalls: int = 5,
    min_rate: float = DEFAULT_MIN_RATE,
    rate_window: float = RATE_WINDOW,
    max_size: int | None = None,
) -> list[FetchResult]:
    """Download ``keys`` into ``dest``: catalog keys such as ``train`` or file names (default: train, val,
    devkit).

    ``base_url`` is an http(s) URL, a local folder or a ``file://`` URL. ``checksums`` (an MD5SUMS path or a
    mapping) overrides the catalog per file name. ``timeout`` is (connect, read) seconds. Each file gets a
    result record; a failure of one file does not stop the others. An attempt slower than ``min_rate``
    bytes/s (0: no minimum) over ``rate_window`` seconds is aborted and resumed, and counts as a stall.
    ``max_size`` caps a body whose size neither the catalog, the checksums nor the server gives (beyond it the
    free space of ``dest``, less FREE_SPACE_RESERVE, caps it anyway). Raises UsageError for unknown keys or
    malformed ``headers``,
    InsufficientSpaceError when the known sizes do not fit, InputError when ``dest`` cannot be created.
    """
    dest = Path(dest)
    overrides = load_checksums(checksums)
    targets = resolve(list(keys) if keys else None, overrides)
    if jobs < 1:
        raise InputError(f"--jobs must be at least 1, not {jobs}")
    check_headers(headers)
    if min_rate < 0 or rate_window <= 0:
        raise UsageError(f"--min-rate must be 0 or more (got {min_rate}) over a window > 0 s")
    if max_size is not None and max_size < 1:
        raise UsageError(f"--max-size must be at least 1 byte (got {max_size})")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the destination {dest}: {exc.strerror or exc}") from exc
    if not _is_local(base_url) and urlsplit(base_url).scheme.lower() not in ("http", "https"):
        raise InputError(
            f"--base-url must be an http(s) URL, a folder or a file:// URL, not {redact(base_url)!r}"
        )
    # Up-front check for everything whose size is known, so a big fetch does not fail hours in.
    needed = 0
    for target in targets:
        final = dest / target.filename
        if target.size is not None and not final.exists():
            needed += target.size - _regular_size(final.with_name(final.name + ".part"))
    _check_space(dest, needed, "the requested archives")
    if isinstance(timeout, (int, float)):
        timeout = (float(timeout), float(timeout))
    opts = _Options(
        dest=dest,
        base_url=base_url,
        timeout=timeout,
        max_stalls=max_stalls,
        backoff_factor=backoff_factor,
        retries=retries,
        auth=auth,
        headers=headers,
        cookies=cookies,
        progress=progress,
        cancel=threading.Event(),
        min_rate=float(min_rate),
        rate_window=float(rate_window),
        max_size=max_size,
    )
    if jobs == 1 or len(targets) == 1:
        return [_fetch_one(target, opts) for target in targets]
    pool = ThreadPoolExecutor(max_workers=min(jobs, len(targets)), thread_name_prefix="imagenet-prep-fetch")
    try:
        futures = [pool.submit(_fetch_one, target, opts) for target in targets]
        return [future.result() for future in futures]
    except BaseException:
        opts.cancel.set()  # Ctrl-C: workers stop at their next chunk and keep their partial files
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
