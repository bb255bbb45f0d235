"""A Dask address that accepts but never speaks, or answers garbage, ends the connection attempt within the
handshake deadline (``IMAGENET_PREP_DASK_TIMEOUT``, default 30 s; 3 s here) as one UsageError line, never a
hang or a traceback. Real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("distributed")

from imagenet_prep.errors import UsageError  # noqa: E402
from imagenet_prep.executors.dask import DaskExecutor  # noqa: E402

DEADLINE = 3


@pytest.fixture
def server(request) -> Iterator[int]:
    """A TCP server that accepts and then says nothing (``silent``) or sends garbage (``garbage``)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)
            if request.param == "garbage":
                # a length prefix claiming ~3 EiB, then noise (what a non-Dask service might send)
                conn.sendall(b"\xff" * 8 + b"\x00\x00\x00\x00\x00\x00\x00\x2a" + b"garbage" * 100)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.mark.parametrize("server", ["silent", "garbage"], indirect=True)
def test_a_scheduler_that_never_speaks_properly_is_one_line_within_the_deadline(server, monkeypatch):
    monkeypatch.setenv("IMAGENET_PREP_DASK_TIMEOUT", str(DEADLINE))
    started = time.monotonic()
    with pytest.raises(UsageError) as caught:
        DaskExecutor(1, f"tcp://127.0.0.1:{server}")
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "\n" not in message and f"127.0.0.1:{server}" in message and "Dask scheduler" in message
    assert elapsed < DEADLINE * 4, elapsed
