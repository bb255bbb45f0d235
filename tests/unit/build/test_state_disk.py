"""A full disk is reported as the disk that is full: a cache on a full tmpfs (the remote devkit's copy) names the
cache's path, not OUT's. A real tmpfs (root only; skipped elsewhere) and a real HTTP server."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.http_server import ArchiveServer

from imagenet_prep.build.state import write_error
from imagenet_prep.io.http import cached_copy


@contextlib.contextmanager
def full_tmpfs(where: Path) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "imagenet-prep-test", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"needs a small tmpfs (root): {mounted.stderr.strip() or 'mount failed'}")
    try:
        with contextlib.suppress(OSError), open(where / "filler", "wb") as handle:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_cache_disk_is_named_not_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with ArchiveServer({"devkit.tar.gz": b"k" * 100_000}) as server, full_tmpfs(tmp_path / "cache") as cache:
        with pytest.raises(OSError) as caught:
            cached_copy(server.url + "devkit.tar.gz", cache / "remote")
        message = str(write_error(caught.value, out))
    assert "is full" in message and str(cache / "remote") in message
    assert f"holding {out} " not in message and f"holding {out}." not in message
