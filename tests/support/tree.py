"""An output tree as {relative path: bytes}, for byte-identical comparisons between builds."""

from __future__ import annotations

import hashlib
from pathlib import Path

from imagenet_prep.build import STATE_DIR


def snapshot(out: Path) -> dict[str, bytes]:
    """Every output file but build.json (timings) and the state folder, by relative path."""
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file() and STATE_DIR not in path.relative_to(out).parts and path.name != "build.json"
    }


def tree_hashes(out: Path) -> dict[str, str]:
    """Every output file but build.json and the state folder: relative path -> sha256 (a small comparable
    summary of a whole tree, for comparing builds of many layouts)."""
    return {name: hashlib.sha256(data).hexdigest() for name, data in snapshot(out).items()}
