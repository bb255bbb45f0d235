"""The `imagenet-prep build` command line the subprocess tests run (one spelling, not one per test)."""

from __future__ import annotations

import sys
from pathlib import Path


def build_argv(source: str | Path, out: str | Path, *options: str) -> list[str]:
    """``python -m imagenet_prep build --source SOURCE --out OUT OPTIONS...`` with this interpreter."""
    return [
        sys.executable,
        "-m",
        "imagenet_prep",
        "build",
        "--source",
        str(source),
        "--out",
        str(out),
        *options,
    ]
