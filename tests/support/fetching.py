"""What the fetch tests share: the archives the loopback server offers and small checks on fetch's results."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from imagenet_prep.fetch.download import FetchResult

VAL = "ILSVRC2012_img_val.tar"  # a catalog name whose catalog size/MD5 the MD5SUMS overrides
EXTRA = "extra_archive.tar"  # a name only the MD5SUMS knows
DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"
VERIFY_EXTRA = "extra.bin"  # a file verify knows only from the sums it is given
SIZE = 3 * 1024 * 1024 + 12345
FAST = {"timeout": (2.0, 0.5), "retries": 3, "backoff_factor": 0.0, "max_stalls": 3}


def make_bytes(seed: int, size: int = SIZE) -> bytes:
    return random.Random(seed).randbytes(size)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def interrupt_after(nbytes: int):
    """A progress factory that stops a download (KeyboardInterrupt) once ``nbytes`` have arrived."""

    def factory(name, total, initial):
        seen = [0]

        def update(n):
            seen[0] += n
            if seen[0] >= nbytes:
                raise KeyboardInterrupt

        return update

    return factory


def only(results: list[FetchResult]) -> FetchResult:
    assert len(results) == 1
    return results[0]


def assert_no_final(dest: Path, name: str = VAL) -> None:
    assert not (dest / name).exists(), "a failed download must never carry the final name"


def by_file(results) -> dict:
    return {r.file: r for r in results}
