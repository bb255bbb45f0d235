"""Atomic file writes: a temporary name in the same folder, then os.replace, so a crash never leaves a
half-written file under its final name."""

from __future__ import annotations

import os
from pathlib import Path

TMP_MARK = ".tmp-"


def temp_path_for(path: Path) -> Path:
    """A unique sibling temporary name; the pid keeps concurrent writers apart. Cleaners match TMP_MARK."""
    return path.with_name(f"{TMP_MARK}{os.getpid()}-{path.name}")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))
