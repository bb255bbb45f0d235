"""The fetch tests' loopback server with two archives, their MD5s, and a user without a .netrc."""

from __future__ import annotations

import pytest
from support.fetching import EXTRA, VAL, make_bytes, md5
from support.http_server import ArchiveServer


@pytest.fixture
def payload() -> bytes:
    return make_bytes(1)


@pytest.fixture
def server(payload: bytes):
    with ArchiveServer({VAL: payload, EXTRA: make_bytes(2, 1_000_000)}) as srv:
        yield srv


@pytest.fixture
def sums(server: ArchiveServer) -> dict[str, str]:
    return {name: md5(data) for name, data in server.files.items()}


@pytest.fixture
def no_netrc(tmp_path, monkeypatch):
    empty = tmp_path / "empty-netrc"
    empty.write_text("")
    monkeypatch.setenv("NETRC", str(empty))
    monkeypatch.delenv("IMAGENET_PREP_USER", raising=False)
    monkeypatch.delenv("IMAGENET_PREP_PASSWORD", raising=False)
