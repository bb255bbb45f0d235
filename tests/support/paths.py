"""Where things are in the repository, whatever folder a test file sits in."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
DATA = REPO / "imagenet_prep" / "data"  # the package's bundled data
TESTS_DATA = REPO / "tests" / "data"
