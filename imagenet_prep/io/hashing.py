"""File hashing (one implementation: verify, fetch and the build record use it)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

CHUNK_SIZE = 4 << 20  # large reads: hashing a 148 GB tar is disk-bound, not call-bound


def md5_file(path: str | Path, progress: Callable[[int], None] | None = None) -> str:
    """Hex MD5 of a file, read in 4 MiB chunks; ``progress`` receives the bytes of each chunk."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()
