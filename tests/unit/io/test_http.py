"""Remote reads have an overall minimum rate (io/http.py; ``IMAGENET_PREP_HTTP_MIN_RATE`` bytes/s over
``IMAGENET_PREP_HTTP_RATE_WINDOW`` seconds, default 1024 over 30, as ``fetch --min-rate``): a server that
drips one byte at a time ends the read as one clear error within the window plus one pause, and an endless
body is never read past the bytes asked for. A real HTTP server on 127.0.0.1 (tests/support/http_server.py)."""

from __future__ import annotations

import time

import pytest
from support.http_server import ArchiveServer

from imagenet_prep.errors import ArchiveError
from imagenet_prep.io.http import HttpByteSource

DATA = bytes(range(256)) * 64  # 16 KiB
WINDOW = 2.0


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("IMAGENET_PREP_HTTP_MIN_RATE", "1024")
    monkeypatch.setenv("IMAGENET_PREP_HTTP_RATE_WINDOW", str(WINDOW))
    with ArchiveServer({"a.tar": DATA}) as running:
        yield running


def test_a_dripping_server_ends_the_read_within_the_deadline(server):
    server.faults.drip_seconds = 1.0
    source = HttpByteSource(server.url + "a.tar")
    assert source.size == len(DATA)  # HEAD has no body: no drip
    started = time.monotonic()
    with pytest.raises(ArchiveError) as caught:
        source.read_at(0, 8192)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "\n" not in message and "IMAGENET_PREP_HTTP_MIN_RATE" in message and "a.tar" in message
    assert elapsed < WINDOW + 1.0 + 3.0, elapsed  # the window, one pause, slack for a loaded machine
    source.close()


def test_a_dripping_server_ends_a_streamed_scan_too(server):
    server.faults.drip_seconds = 1.0
    source = HttpByteSource(server.url + "a.tar")
    source.size  # noqa: B018 - the HEAD
    started = time.monotonic()
    with pytest.raises(ArchiveError, match="IMAGENET_PREP_HTTP_MIN_RATE"):
        source.scan(0, len(DATA))
        source.read_at(0, 4096)
    assert time.monotonic() - started < WINDOW + 1.0 + 3.0
    source.close()


def test_an_endless_body_is_read_only_as_far_as_asked(server):
    server.faults.endless = True
    source = HttpByteSource(server.url + "a.tar")
    source.size  # noqa: B018
    started = time.monotonic()
    try:
        data = source.read_at(100, 1000)
        assert len(data) == 1000
    except ArchiveError as exc:  # a body without the range's Content-Range: refused, also fine
        assert "\n" not in str(exc)
    assert time.monotonic() - started < 10
    source.close()
