"""The tool's one cache folder."""

from __future__ import annotations

import os
from pathlib import Path

ENV_CACHE_DIR = "IMAGENET_PREP_CACHE"


def cache_dir() -> Path:
    """``$IMAGENET_PREP_CACHE``, else ``$XDG_CACHE_HOME/imagenet-prep``, else ``~/.cache/imagenet-prep``
    (``~`` expanded in either variable)."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "imagenet-prep"
