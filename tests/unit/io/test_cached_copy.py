"""io/http.py ``cached_copy``: a small remote file (the devkit) is copied only when the size the server gives is
within a bound, checked before any body byte is asked for (a HEAD saying 3 GB must not make a 3 GB read)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.http_server import ArchiveServer

from imagenet_prep.errors import ArchiveError
from imagenet_prep.io.http import MAX_SMALL_COPY, cached_copy


def test_a_remote_devkit_larger_than_the_bound_is_refused_before_download(tmp_path):
    with ArchiveServer({"devkit.tar.gz": b"x" * 5000}) as server:
        with pytest.raises(ArchiveError, match="5,000 bytes"):
            cached_copy(f"{server.url}devkit.tar.gz", tmp_path / "cache", limit=4000)
        assert server.bytes_served == 0
        assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*devkit*"))
        path = cached_copy(f"{server.url}devkit.tar.gz", tmp_path / "cache", limit=5000)
        assert Path(path).read_bytes() == b"x" * 5000
    assert 16 << 20 <= MAX_SMALL_COPY <= 256 << 20  # the real devkit is ~2.5 MB
