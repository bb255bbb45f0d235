"""A release folder for the verify tests: three archives of random bytes, their MD5s, and a stray file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from support.fetching import DEVKIT, VAL, VERIFY_EXTRA, md5


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / "release"
    folder.mkdir()
    rng = random.Random(5)
    sums = {}
    for name, size in ((VAL, 2_500_000), (DEVKIT, 300_000), (VERIFY_EXTRA, 50_000)):
        data = rng.randbytes(size)
        (folder / name).write_bytes(data)
        sums[name] = md5(data)
    (folder / "unrelated.txt").write_text("not an archive")
    return folder, sums
