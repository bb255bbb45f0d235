"""What the tests share (importable as ``support`` because pyproject's pytest section puts tests/ on sys.path):
the CLI in a subprocess (``cli``), an output tree's bytes (``snapshot``), the repository's paths, a build with
the test defaults, image bytes, a real HTTP server, hand-made tars and the kill -9 trial."""

from __future__ import annotations

from support.build import read_manifest, run_build
from support.cli import build_argv, cli, cli_argv, one_line_error, without_package
from support.paths import CONFIGS, DATA, REPO, TESTS_DATA
from support.tree import snapshot

__all__ = [
    "CONFIGS",
    "DATA",
    "REPO",
    "TESTS_DATA",
    "build_argv",
    "cli",
    "cli_argv",
    "one_line_error",
    "read_manifest",
    "run_build",
    "snapshot",
    "without_package",
]
