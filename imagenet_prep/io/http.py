"""HTTP(S) shared by ``fetch`` and remote sources: the keep-alive session with retries and origin-bound
credentials (moved here from fetch/download.py), and :class:`HttpByteSource`, a ByteSource that reads an
archive by HTTP Range requests.

Credentials (``auth``, ``IMAGENET_PREP_USER``/``IMAGENET_PREP_PASSWORD``, ``~/.netrc``, user headers and
cookies) go only to the base URL's origin (scheme, host, port): a redirect elsewhere drops them all. They
never appear in results, errors or logs.
"""

from __future__ import annotations

import http.client
import os
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.utils import get_netrc_auth
from urllib3.util.retry import Retry

from ..errors import ArchiveError, UsageError
from ..version import __version__
from .spool import Spool, SpoolWriter

USER_ENV = "IMAGENET_PREP_USER"
PASSWORD_ENV = "IMAGENET_PREP_PASSWORD"
RETRY_STATUSES = (500, 502, 503, 504)
DEFAULT_PORTS = {"http": 80, "https": 443}


# A body that stops early: the connection was reset or closed, or a read timed out. Our own loop resumes
# these; urllib3's Retry only covers failures before the response headers arrive.
BODY_ERRORS = (
    urllib3.exceptions.HTTPError,  # ProtocolError (reset, IncompleteRead), ReadTimeoutError, SSLError
    http.client.HTTPException,
    requests.exceptions.RequestException,
    ConnectionError,
    TimeoutError,
)


_URL_RE = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^\s'\"<>]*)")


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    # The authority ends at the first '/'. Everything up to its *last* '@' is userinfo (urlsplit's hostname
    # rule), so a password holding '@' is masked whole; '?' and '#' do not end it here either, since a
    # password may hold them unencoded (masking too much is the safe side of a mistake).
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return match.group(0)
    return f"{scheme}***@{host}{slash}{path}"


def redact(text: str) -> str:
    """Mask the whole ``user:password@`` of every URL in ``text``, however many '@' the password holds."""
    return _URL_RE.sub(_mask_userinfo, text)


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (what may be stored on disk)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


_TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_HELP = (
    "headers are 'Name: value' on one line, e.g. --header 'Authorization: Bearer TOKEN' "
    "(the value is not shown here: it may hold a secret)"
)


def _bad_header_value(value: str) -> bool:
    return any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value)


def parse_headers(values: Iterable[str]) -> dict[str, str]:
    """``Name: value`` strings (``--header``) into a mapping. A malformed one is a UsageError that never
    echoes what was given (it is likely a token)."""
    headers: dict[str, str] = {}
    for number, text in enumerate(values, 1):
        name, sep, value = text.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not _TOKEN_RE.match(name) or _bad_header_value(value):
            raise UsageError(f"--header number {number} is malformed: {_HEADER_HELP}")
        headers[name] = value
    return headers


def check_headers(headers: Mapping[str, str] | None) -> None:
    """Refuse header names that are not HTTP tokens and values with line breaks or control characters, without
    echoing the value (requests' own error would print it)."""
    for number, (name, value) in enumerate((headers or {}).items(), 1):
        if not isinstance(name, str) or not _TOKEN_RE.match(name):
            raise UsageError(f"header number {number} has a malformed name: {_HEADER_HELP}")
        if not isinstance(value, str) or _bad_header_value(value):
            raise UsageError(f"the value of the header {name!r} is malformed: {_HEADER_HELP}")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme)


def describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, requests.exceptions.Timeout):
        text = f"timed out ({text})"
    return redact(text)[:300]


def env_auth() -> tuple[str, str] | None:
    user = os.environ.get(USER_ENV)
    if user:
        return user, os.environ.get(PASSWORD_ENV, "")
    return None


def _cookie_header(cookies: Mapping[str, str] | str) -> str:
    if isinstance(cookies, str):
        return cookies.strip()
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


class _KeepHeader(AuthBase):
    """Marks an ``Authorization`` header the user gave as the auth, so netrc does not overwrite it."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class _Session(requests.Session):
    """A session whose credentials never leave the origin they were given for.

    requests strips ``Authorization`` on a host change but re-adds netrc credentials for the new URL, even for
    another port of the same host, and keeps custom headers. Here the user's credentials and headers go to the
    base URL's origin only; after a redirect elsewhere, only netrc credentials for that other host apply.
    """

    def __init__(self, origin: tuple[str, str, int | None], private: Mapping[str, str]) -> None:
        super().__init__()
        self._home = origin
        self._private = dict(private)

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        headers = prepared_request.headers
        url = prepared_request.url or ""
        if _origin(url) != self._home:
            headers.pop("Authorization", None)
            for name in self._private:
                headers.pop(name, None)
            if self.trust_env and _origin(url)[1] != self._home[1]:
                netrc_auth = get_netrc_auth(url)
                if netrc_auth is not None:
                    prepared_request.prepare_auth(netrc_auth)
            return
        # Back on (or still on) the home origin: requests drops Cookie on every redirect, so restore ours.
        headers.update(self._private)
        auth = self.auth or (get_netrc_auth(url) if self.trust_env else None)
        if auth is not None:
            prepared_request.prepare_auth(auth)


def make_session(
    base_url: str,
    auth: Any,
    headers: Mapping[str, str] | None,
    cookies: Mapping[str, str] | str | None,
    retries: int,
    backoff_factor: float,
) -> tuple[_Session, dict[str, str]]:
    private = dict(headers or {})
    if cookies:
        private["Cookie"] = _cookie_header(cookies)
    session = _Session(_origin(base_url), private)
    if auth is None:
        auth = env_auth()
    if auth is None and any(name.lower() == "authorization" for name in private):
        auth = _KeepHeader()
    session.auth = auth
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff_factor,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,  # the last 5xx reply comes back and becomes a DownloadError naming the status
        respect_retry_after_header=True,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # identity: Content-Length and Range must count the archive's own bytes, not a compressed transfer.
    session.headers.update({"User-Agent": f"imagenet-prep/{__version__}", "Accept-Encoding": "identity"})
    return session, private


def parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """Parse ``bytes a-b/N`` or ``bytes */N`` into (a, b, N); unknown parts are None."""
    m = re.match(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", value or "")
    if not m:
        return None, None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    end = int(m.group(2)) if m.group(2) is not None else None
    total = int(m.group(3)) if m.group(3) != "*" else None
    return start, end, total


# ------------------------------------------------------------------------------------- remote byte source
TIMEOUT = (10, 60)  # (connect, read) seconds
READ_RETRIES = 5  # a body cut short is resumed from where it stopped this many times
DISCARD_CHUNK = 1 << 20
# A small read fetches at least this much: tarfile's 1-byte probe (the last byte of the previous member) and
# the next 512-byte header together, in one request.
MIN_READ = 513
_PIN_RE = re.compile(r"^(etag|lm)=(.*)$")
#: The overall minimum transfer rate of a remote read (bytes/s, once ``RATE_WINDOW`` seconds have passed), like
#: ``fetch --min-rate``: the read timeout alone lets a server that drips a byte now and then hold a build for
#: ever. The build option ``--remote-min-rate`` sets it (``set_min_rate``); without it
#: ``IMAGENET_PREP_HTTP_MIN_RATE`` does; ``IMAGENET_PREP_HTTP_RATE_WINDOW`` sets the window (0 turns it off).
MIN_RATE = 1024
RATE_WINDOW = 30.0
MIN_RATE_ENV = "IMAGENET_PREP_HTTP_MIN_RATE"


def set_min_rate(rate: float | None) -> None:
    """The build's ``--remote-min-rate`` (None: not given, the environment or the default stands). Kept in the
    environment, so the worker processes this process starts (a pool, a LocalCluster) read the same; a remote
    Dask worker gets it with each unit (``build.worker.UnitJob``)."""
    if rate is not None:
        os.environ[MIN_RATE_ENV] = str(int(rate))


def _env_number(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return value if 0 <= value < 1e12 else default


class _Rate:
    """One request's transfer, checked after every chunk: too slow after the window is a clear error. Only the
    time spent waiting on the server counts (a stream kept open between a reader's reads is not slow)."""

    def __init__(self) -> None:
        self.minimum = _env_number(MIN_RATE_ENV, MIN_RATE)
        self.window = _env_number("IMAGENET_PREP_HTTP_RATE_WINDOW", RATE_WINDOW)
        self.waited = 0.0
        self.received = 0

    def read(self, response: requests.Response, amount: int) -> bytes:
        """What has arrived of the body, up to ``amount`` (read1: a plain read waits for the whole amount,
        however slowly it drips)."""
        started = time.monotonic()
        try:
            return response.raw.read1(amount, decode_content=False)
        finally:
            self.waited += time.monotonic() - started

    def slow(self, n: int) -> str | None:
        """After ``n`` more bytes: a description when the transfer is under the minimum rate, else None."""
        self.received += n
        elapsed = self.waited
        if self.minimum and elapsed > self.window and self.received < self.minimum * elapsed:
            return (
                f"the server sent {self.received} bytes in {elapsed:.0f} s, under the minimum rate of "
                f"{self.minimum:g} bytes/s (--remote-min-rate, or IMAGENET_PREP_HTTP_MIN_RATE; over "
                f"IMAGENET_PREP_HTTP_RATE_WINDOW={self.window:g} s): a stalled or throttled server. Run the same "
                "command again later, or lower --remote-min-rate."
            )
        return None


def join_url(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + quote(name)


def split_pin(locator: str) -> tuple[str, tuple[str, str] | None]:
    """``url#etag=...`` -> (url, ("etag", value)); a locator names the exact version of the bytes it read."""
    url, _, fragment = locator.partition("#")
    m = _PIN_RE.match(fragment)
    return url, ((m.group(1), unquote(m.group(2))) if m else None)


def _done_with(response: requests.Response, complete: bool) -> None:
    """A body read to its end goes back to the pool (keep-alive); one left half-read is closed."""
    if complete:
        try:
            response.raw.drain_conn()
            response.raw.release_conn()
            return
        except BODY_ERRORS:
            pass
    response.close()


class _PastEnd(Exception):
    """A ranged read starting at or past the end of the file (HTTP 416)."""


_SESSIONS: dict[tuple[str, str, int | None], requests.Session] = {}
# A forked worker makes its own connections: two processes writing requests on one inherited keep-alive socket
# would read each other's replies.
os.register_at_fork(after_in_child=_SESSIONS.clear)


def session_for(url: str) -> requests.Session:
    """One keep-alive session per origin and process, with fetch's retries and credential rules."""
    origin = _origin(url)
    session = _SESSIONS.get(origin)
    if session is None:
        session, _ = make_session(url, None, None, None, retries=READ_RETRIES, backoff_factor=0.2)
        _SESSIONS[origin] = session
    return session


class HttpByteSource:
    """An archive read by HTTP Range requests (a :class:`~.bytesource.ByteSource`).

    - ``size`` comes from HEAD (or a one-byte GET's Content-Range); the archive's ETag (else Last-Modified) is
      pinned on first contact, or given in the locator (``url#etag=...``, what :attr:`locator` returns): every
      request carries ``If-Match`` for a strong ETag and every reply's validators are compared, so an archive
      replaced mid-build is a clear error, never a mix of two versions.
    - ``read_at`` outside a scan window is one exact ranged GET. Inside a window set by :meth:`scan` (a tar
      header scan, a unit's contiguous images), reads go through ONE streamed request from the first read to the
      window's end, skipping forward: a class tar's index costs one request, not one per member.
    - A body cut short (a dropped connection, a reset) is resumed from where it stopped (``READ_RETRIES``).
    - What a scan window streamed is kept in the spool (io/spool.py) and later reads of those bytes are served
      from it, after one If-Match check per source that the version is still current: a subset's class tars
      cross the network once, not once to index them and again for their images.
    - ``bytes_read`` counts body bytes received (skipped ones included): the bytes transferred.
    Pickles as its locator: a worker process opens its own session.
    """

    process_bytes_read = 0

    def __init__(self, locator: str) -> None:
        self.url, self._pin = split_pin(locator)
        self.where = redact(self.url)
        self.name = unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])
        self._size: int | None = None
        self._window: tuple[int, int] | None = None
        self._block: tuple[int, bytes] | None = None  # the last small read (offset, bytes)
        self._tail: tuple[int, bytes] | None = None  # the last bytes read from the stream (offset, bytes)
        self._stream: requests.Response | None = None
        self._stream_pos = 0
        self._stream_end = 0
        self._rate = _Rate()
        self.bytes_read = 0
        self.requests = 0
        self._spool: Spool | None = None
        self._spooling: SpoolWriter | None = None
        self._revalidated = False

    # ------------------------------------------------------------------------------------- identity
    @property
    def locator(self) -> str:
        self.size  # noqa: B018 - pins the validator
        if self._pin is None:
            return self.url
        return f"{self.url}#{self._pin[0]}={quote(self._pin[1], safe='')}"

    @property
    def validator(self) -> dict[str, str]:
        """For the index cache key: size and the pinned validator."""
        return {"size": str(self.size), **({self._pin[0]: self._pin[1]} if self._pin else {})}

    def _error(self, what: str) -> ArchiveError:
        return ArchiveError(f"{self.where}: {what}")

    def _check_validators(self, response: requests.Response) -> None:
        etag = response.headers.get("ETag")
        modified = response.headers.get("Last-Modified")
        seen = ("etag", etag) if etag else (("lm", modified) if modified else None)
        if self._pin is None:
            self._pin = seen
        elif seen is not None and seen != self._pin and not (self._pin[0] == "lm" and etag):
            raise self._error(
                f"the archive changed on the server during the build ({self._pin[0]} {self._pin[1]} became "
                f"{seen[1]}); nothing of the new version was used. Run the same command again to build from "
                "the new version (the changed archive is re-indexed)."
            )

    def _headers(self, start: int, end: int | None) -> dict[str, str]:
        headers = {"Range": f"bytes={start}-{'' if end is None else end - 1}"}
        if self._pin and self._pin[0] == "etag" and not self._pin[1].startswith("W/"):
            headers["If-Match"] = self._pin[1]
        return headers

    def _request(self, method: str, headers: dict[str, str], stream: bool) -> requests.Response:
        try:
            response = session_for(self.url).request(
                method, self.url, headers=headers, stream=stream, timeout=TIMEOUT, allow_redirects=True
            )
        except requests.RequestException as exc:
            raise self._error(f"cannot read it: {describe_error(exc)}") from None
        self.requests += 1
        if response.status_code == 412:
            response.close()
            raise self._error(
                "the archive changed on the server during the build (If-Match failed); nothing of the new "
                "version was used. Run the same command again to build from the new version."
            )
        if response.status_code in (401, 403):
            response.close()
            raise self._error(
                f"the server refused access (HTTP {response.status_code}): give credentials with ~/.netrc or "
                f"{USER_ENV}/{PASSWORD_ENV}."
            )
        if response.status_code == 404:
            response.close()
            raise self._error("not found on the server (HTTP 404).")
        return response

    @property
    def size(self) -> int:
        if self._size is None:
            response = self._request("HEAD", {}, stream=False)
            length = response.headers.get("Content-Length")
            if response.status_code == 200 and length is not None and length.isdigit():
                self._check_validators(response)
                self._size = int(length)
            else:  # no HEAD: a one-byte GET tells the size in its Content-Range
                response = self._request("GET", self._headers(0, 1), stream=False)
                total = parse_content_range(response.headers.get("Content-Range"))[2]
                if response.status_code != 206 or total is None:
                    raise self._error(
                        f"the server does not serve byte ranges (HTTP {response.status_code}); remote sources "
                        "need HTTP Range support."
                    )
                self._check_validators(response)
                self._size = total
        return self._size

    # ----------------------------------------------------------------------------------------- reads
    def scan(self, start: int, end: int) -> None:
        """Reads inside [start, end) will be forward and dense: serve them from one streamed request."""
        self._close_stream()
        self._window = (start, end)

    def read_at(self, offset: int, size: int) -> bytes:
        # A pinned locator (a worker's) needs no HEAD: the reply's Content-Range tells the size.
        end = offset + size if self._size is None and self._pin is not None else min(offset + size, self.size)
        if size <= 0 or offset >= end:
            return b""
        window = self._window
        try:
            spooled = self._from_spool(offset, end)
            if spooled is not None:
                return spooled
            if window is not None and window[0] <= offset < window[1] and end <= window[1]:
                return self._read_streamed(offset, end, window[1])
            if self._block is not None:
                first, data = self._block
                if first <= offset and end <= first + len(data):
                    return data[offset - first : end - first]
            if end - offset >= MIN_READ:
                return self._read_exact(offset, end)
            data = self._read_exact(offset, offset + MIN_READ)
            self._block = (offset, data)
            return data[: end - offset]
        except _PastEnd:
            return b""

    def _spool_for_pin(self) -> Spool | None:
        if self._spool is None and self._pin is not None:
            self._spool = Spool(self.url, self._pin)
        return self._spool

    def _from_spool(self, offset: int, end: int) -> bytes | None:
        spool = self._spool_for_pin()
        data = spool.read(offset, end) if spool is not None else None
        if data is not None and not self._revalidated:
            # The spool holds the pinned version: make sure it is still the server's (412 if not).
            response = self._request("GET", self._headers(0, 1), stream=False)
            self._count(len(response.content))
            if response.status_code != 206:
                raise self._error(f"the server answered HTTP {response.status_code} to a ranged read at 0.")
            self._check_validators(response)
            self._revalidated = True
        return data

    def _open(self, start: int, end: int) -> requests.Response:
        response = self._request("GET", self._headers(start, end), stream=True)
        status = response.status_code
        first, _, total = parse_content_range(response.headers.get("Content-Range"))
        if status == 416 and total is not None:  # at or past the end: nothing to read
            response.close()
            self._size = total
            raise _PastEnd
        if status != 206 or first != start:
            response.close()
            if status in (200, 206):
                raise self._error(
                    "the server ignored the byte range asked for; remote sources need HTTP Range support."
                )
            raise self._error(f"the server answered HTTP {status} to a ranged read at {start}.")
        self._check_validators(response)
        if total is not None:
            self._size = total
        return response

    def _count(self, n: int) -> None:
        self.bytes_read += n
        HttpByteSource.process_bytes_read += n

    def _read_exact(self, start: int, end: int) -> bytes:
        parts: list[bytes] = []
        pos = start
        failures = 0  # in a row, without progress
        while failures <= READ_RETRIES:
            response = self._open(pos, end)
            before = pos
            rate = _Rate()
            try:
                while pos < end:
                    chunk = rate.read(response, min(end - pos, 1 << 20))
                    if not chunk:
                        break
                    parts.append(chunk)
                    pos += len(chunk)
                    self._count(len(chunk))
                    slow = rate.slow(len(chunk))
                    if slow:
                        raise self._error(slow)
            except BODY_ERRORS:
                pass  # resumed below from where it stopped
            finally:
                _done_with(response, complete=pos >= end)
            if pos >= end or (self._size is not None and pos >= self._size):
                return b"".join(parts)
            end = min(end, self._size) if self._size is not None else end
            failures = 0 if pos > before else failures + 1
        raise self._error(
            f"the connection kept dropping ({READ_RETRIES + 1} tries) reading bytes {start}-{end}."
        )

    def _read_streamed(self, offset: int, end: int, window_end: int) -> bytes:
        """Serve [offset, end) from the window's one streamed request: skip forward to ``offset`` and keep at
        least ``MIN_READ`` bytes read as the tail (a re-read of the bytes just read, as tarfile does, costs no
        new request)."""
        if self._tail is not None:
            first, data = self._tail
            if first <= offset and end <= first + len(data):
                return data[offset - first : end - first]
        want = min(window_end, max(end, offset + MIN_READ))
        parts: list[bytes] = []
        pos = offset
        failures = 0  # in a row, without progress
        while failures <= READ_RETRIES:
            before = pos
            if self._stream is None or not (self._stream_pos <= pos < self._stream_end):
                self._close_stream()
                self._stream = self._open(pos, window_end)
                self._stream_pos, self._stream_end = pos, window_end
                self._rate = _Rate()
                spool = self._spool_for_pin()
                self._spooling = spool.writer(pos) if spool is not None else None
            try:
                while self._stream_pos < pos:  # skip forward (member data a header scan does not need)
                    skipped = self._rate.read(self._stream, min(pos - self._stream_pos, DISCARD_CHUNK))
                    if not skipped:
                        raise http.client.IncompleteRead(b"")
                    self._spool_write(self._stream_pos, skipped)
                    self._stream_pos += len(skipped)
                    self._count(len(skipped))
                    self._check_rate(len(skipped))
                while pos < want:
                    chunk = self._rate.read(self._stream, want - pos)
                    if not chunk:
                        raise http.client.IncompleteRead(b"")
                    self._spool_write(pos, chunk)
                    parts.append(chunk)
                    pos += len(chunk)
                    self._stream_pos = pos
                    self._count(len(chunk))
                    self._check_rate(len(chunk))
                data = b"".join(parts)
                self._tail = (offset, data)
                return data[: end - offset]
            except BODY_ERRORS:
                self._close_stream()  # reopened at ``pos`` on the next try
                failures = 0 if pos > before else failures + 1
        raise self._error(
            f"the connection kept dropping ({READ_RETRIES + 1} tries) reading bytes {offset}-{end}."
        )

    def _check_rate(self, n: int) -> None:
        slow = self._rate.slow(n)
        if slow:
            self._close_stream()
            raise self._error(slow)

    def _spool_write(self, offset: int, data: bytes) -> None:
        if self._spooling is not None:
            self._spooling.write(offset, data)

    def _close_stream(self) -> None:
        self._tail = None
        spooling, self._spooling = self._spooling, None
        if spooling is not None:
            spooling.finish()
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def close(self) -> None:
        self._close_stream()
        self._window = None

    def __enter__(self) -> HttpByteSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, object]:
        return {"locator": self.locator}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["locator"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"HttpByteSource({self.where!r})"

    def __str__(self) -> str:
        return self.where


def remote_exists(url: str) -> bool:
    """HEAD: True for 200, False for 404/410; anything else (refused, unreachable) is an ArchiveError."""
    where = redact(url)
    try:
        response = session_for(url).head(url, timeout=TIMEOUT, allow_redirects=True)
    except requests.RequestException as exc:
        raise ArchiveError(f"Cannot reach {where}: {describe_error(exc)}.") from None
    if response.status_code in (404, 410):
        return False
    if response.status_code in (401, 403):
        raise ArchiveError(
            f"The server refused {where} (HTTP {response.status_code}): give credentials with ~/.netrc or "
            f"{USER_ENV}/{PASSWORD_ENV}."
        )
    if response.status_code != 200:
        raise ArchiveError(f"{where}: the server answered HTTP {response.status_code} to HEAD.")
    return True


#: The largest small file (the devkit: ~2.5 MB) copied whole from a remote source.
MAX_SMALL_COPY = 64 << 20


def cached_copy(url: str, folder: os.PathLike[str] | str, limit: int = MAX_SMALL_COPY) -> str:
    """A small remote file (the devkit) copied into ``folder``, keyed by URL and validator; returns its path.
    A size (from the server, before any body byte) above ``limit`` is refused: one read holds the whole file."""
    import hashlib

    from .atomic import write_bytes_atomic
    from .bytesource import open_byte_source

    source: Any = open_byte_source(url)  # HTTP or an object store
    key = hashlib.sha1(f"{source.url}|{source.validator}".encode()).hexdigest()[:16]
    target = os.path.join(folder, f"{key}-{source.name}")
    if not os.path.isfile(target):
        if source.size > limit:
            raise ArchiveError(
                f"{redact(url)} is {source.size:,} bytes, more than a devkit could be ({limit:,}): not downloaded."
            )
        os.makedirs(folder, exist_ok=True)
        data = source.read_at(0, source.size)
        if len(data) > limit:  # a server that sends more than it announced
            raise ArchiveError(f"{redact(url)} sent more than {limit:,} bytes: not a devkit.")
        write_bytes_atomic(target, data)
    return target
