"""A real HTTP/1.1 file server on 127.0.0.1 (port 0) with switchable faults, for download tests.

Usage::

    with ArchiveServer({"a.tar": data}) as server:
        server.faults.drop_after = 1000          # close the connection after 1000 body bytes ...
        server.faults.drop_requests = 1          # ... for the first request only
        fetch(dest, ["a.tar"], server.url, ...)
        assert server.bytes_served < 1.2 * len(data)

Faults (all off by default; the ``*_requests`` counters say for how many body requests a fault applies):
``honor_range`` (False: answer 200 with the whole file to a Range request), ``drop_after`` (close the
connection after K body bytes; with ``drop_reset`` by a TCP reset), ``stall_after`` (send K bytes then go
silent for ``stall_seconds``), ``fail_status`` (answer e.g. 503 for the first N requests), ``length_delta``
(announce Content-Length + delta; a positive delta sends the real bytes then closes, a negative one sends only
the announced bytes), ``corrupt_at`` (flip the byte at that offset in every reply), ``redirect_to`` (302 from
``/data/<name>`` to that URL prefix + ``<name>``; other paths are served), ``trickle_rate`` (send the body at
that many bytes/s, in 16-byte pieces, for at most ``trickle_seconds``, then the rest at full speed: bounded in
time whatever the client does), ``omit_length`` (no Content-Length: the body ends when the connection
closes). A range that starts at or past the end gets 416 with ``Content-Range: bytes */N``; ``bytes=a-b``
ranges are served; an ``If-Match`` that is not the file's ETag gets 412. Every request is recorded (method,
path, headers, status, body bytes sent); ``bytes_served`` totals the body bytes.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

LAST_MODIFIED = email.utils.formatdate(1_700_000_000, usegmt=True)


@dataclass
class Faults:
    honor_range: bool = True
    send_validators: bool = True
    drop_after: int | None = None
    drop_requests: int = 0
    drop_reset: bool = False
    stall_after: int | None = None
    stall_requests: int = 0
    stall_seconds: float = 3.0
    fail_status: int | None = None
    fail_requests: int = 0
    length_delta: int = 0
    length_requests: int = 0
    corrupt_at: int | None = None
    redirect_to: str | None = None
    trickle_rate: float | None = None
    trickle_requests: int = 0
    trickle_seconds: float = 5.0
    omit_length: bool = False
    drip_seconds: float | None = None  # every body: one byte, then a pause this long, until stopped
    endless: bool = (
        False  # every body: no length, bytes without end (until the client goes or the server stops)
    )


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    body_bytes: int = 0


@dataclass
class _State:
    files: dict[str, bytes]
    faults: Faults = field(default_factory=Faults)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    body_requests: int = 0


_ETAGS: dict[int, tuple[bytes, str]] = {}


def etag_of(data: bytes) -> str:
    """A strong ETag from the content; remembered per bytes object (hashing a 300 MB archive on every request
    made a benchmark's server the bottleneck). A swapped file is a new object, so it gets its own ETag."""
    known = _ETAGS.get(id(data))
    if known is None or known[0] is not data:
        known = _ETAGS[id(data)] = (data, '"' + hashlib.md5(data).hexdigest() + '"')
    return known[1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as real servers do: else each small reply waits ~40 ms for a delayed ACK
    state: _State  # set on the subclass made per server

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def _record(self) -> Seen:
        seen = Seen(self.command, self.path, {k: v for k, v in self.headers.items()})
        with self.state.lock:
            self.state.seen.append(seen)
        return seen

    def _send_body(
        self, seen: Seen, body: bytes, drop_after: int | None, stall_after: int | None, trickle: bool = False
    ) -> None:
        sent = 0
        if trickle and self.state.faults.trickle_rate:
            piece_size = 16
            pause = piece_size / self.state.faults.trickle_rate
            deadline = time.monotonic() + self.state.faults.trickle_seconds
            while sent < len(body) and time.monotonic() < deadline and not self.state.stop.is_set():
                before = seen.body_bytes
                self._write(seen, body[sent : sent + piece_size])
                if seen.body_bytes == before:  # the client went away
                    return
                sent += piece_size
                self.state.stop.wait(pause)
            body = body[sent:]
        for i in range(0, len(body), 64 * 1024):
            piece = body[i : i + 64 * 1024]
            for limit, action in ((drop_after, "drop"), (stall_after, "stall")):
                if limit is not None and sent + len(piece) > limit:
                    piece = piece[: limit - sent]
                    self._write(seen, piece)
                    if action == "stall":
                        self.state.stop.wait(self.state.faults.stall_seconds)
                    self._abort(reset=action == "drop" and self.state.faults.drop_reset)
                    return
            self._write(seen, piece)
            sent += len(piece)

    def _send_forever(self, seen: Seen, body: bytes) -> None:
        """A dripping (one byte, then ``drip_seconds``) or endless body, until the client goes away."""
        self.close_connection = True
        piece = body[:1] or b"x"
        position = 0
        while not self.state.stop.is_set():
            before = seen.body_bytes
            if self.state.faults.drip_seconds is not None:
                self._write(seen, body[position : position + 1] or piece)
                position += 1
                self.state.stop.wait(self.state.faults.drip_seconds)
            else:
                self._write(seen, (body or b"x") * max(1, 65536 // max(1, len(body))))
            if seen.body_bytes == before:
                return

    def _write(self, seen: Seen, piece: bytes) -> None:
        if not piece:
            return
        try:
            self.wfile.write(piece)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return
        with self.state.lock:
            seen.body_bytes += len(piece)

    def _abort(self, reset: bool) -> None:
        if reset:
            # SO_LINGER 0: close() sends a TCP reset, the way a dying proxy or a network fault ends a
            # transfer. A reset makes the client's kernel discard bytes not yet read, so give it a moment to
            # read them first (else a test could not tell "resumed from where it stopped" from "lost the
            # tail").
            self.state.stop.wait(0.1)
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _simple(self, seen: Seen, status: int, headers: dict[str, str] | None = None) -> None:
        seen.status = status
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        seen = self._record()
        state = self.state
        faults = state.faults
        name = unquote(self.path.lstrip("/").split("?")[0]).split("/")[-1]
        if faults.redirect_to and self.path.startswith("/data/"):
            self._simple(
                seen, 302, {"Location": faults.redirect_to.rstrip("/") + "/" + self.path[len("/data/") :]}
            )
            return
        data = state.files.get(name)
        if data is None:
            self._simple(seen, 404)
            return
        with state.lock:
            n = state.body_requests
            state.body_requests += 1
        if faults.fail_status and n < faults.fail_requests:
            self._simple(seen, faults.fail_status)
            return
        if faults.corrupt_at is not None and faults.corrupt_at < len(data):
            data = (
                data[: faults.corrupt_at]
                + bytes([data[faults.corrupt_at] ^ 0xFF])
                + data[faults.corrupt_at + 1 :]
            )
        etag = etag_of(state.files[name])
        validators = {"ETag": etag, "Last-Modified": LAST_MODIFIED} if faults.send_validators else {}
        if_match = self.headers.get("If-Match")
        if if_match is not None and if_match not in ("*", etag):
            self._simple(seen, 412)
            return
        start = 0
        stop = len(data)
        status = 200
        range_header = self.headers.get("Range")
        if range_header and faults.honor_range:
            if_range = self.headers.get("If-Range")
            if if_range is None or if_range in (etag, LAST_MODIFIED):
                m = re.match(r"^bytes=(\d+)-(\d*)$", range_header.strip())
                if m:
                    start = int(m.group(1))
                    if start >= len(data):
                        self._simple(seen, 416, {"Content-Range": f"bytes */{len(data)}", **validators})
                        return
                    stop = min(len(data), int(m.group(2)) + 1) if m.group(2) else len(data)
                    status = 206
        body = data[start:stop]
        announced = len(body)
        lie = faults.length_delta and n < faults.length_requests
        if lie:
            announced = max(0, len(body) + faults.length_delta)
            if faults.length_delta < 0:
                body = body[:announced]
        seen.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/x-tar")
        self.send_header("Accept-Ranges", "bytes")
        if faults.omit_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(announced))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
        for key, value in validators.items():
            self.send_header(key, value)
        if lie:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if head:
            return
        if faults.drip_seconds is not None or faults.endless:
            self._send_forever(seen, body)
            return
        drop = faults.drop_after if n < faults.drop_requests else None
        stall = faults.stall_after if n < faults.stall_requests else None
        self._send_body(seen, body, drop, stall, trickle=n < faults.trickle_requests)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that goes away (a worker process exiting with its keep-alive connection open) is normal;
        anything else is still printed."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class ArchiveServer:
    """A threaded HTTP server in the background; use as a context manager."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.state = _State(files=dict(files or {}))
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = _QuietServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/data/"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def files(self) -> dict[str, bytes]:
        return self.state.files

    @property
    def seen(self) -> list[Seen]:
        with self.state.lock:
            return list(self.state.seen)

    @property
    def bytes_served(self) -> int:
        with self.state.lock:
            return sum(s.body_bytes for s in self.state.seen)

    def start(self) -> ArchiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.stop.set()  # wakes stalled handlers
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ArchiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
