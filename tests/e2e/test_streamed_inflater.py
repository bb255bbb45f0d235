"""The streamed tar.gz layouts (hf-tar, blurred, winter21, the older Kaggle zip's nested tar.gz) built on the command
line with zlib-ng's gzip reader (the fast extra) and in a process where importing zlib-ng fails (the stdlib's
reader): the same output bytes, and build.json names the inflater that ran; a layout without gzip streams
records none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import cli, without_package
from support.tree import tree_hashes

pytest.importorskip("zlib_ng")  # the test extra installs it: the comparison needs both readers

# Streamed layouts' units of 7 samples (250 in a real build), so that with 2 workers each cursor skips the
# units the other worker builds: every stream is inflated by both workers.
_SMALL_UNITS = (
    "import runpy, sys; from imagenet_prep.sources import streamed; streamed.StreamedSource.UNIT_SIZE = 7; "
    "sys.argv[0] = 'imagenet-prep'; runpy.run_module('imagenet_prep', run_name='__main__')"
)
LAYOUTS = ("hf-tar", "blurred", "winter21", "kaggle-zip-2019")


@pytest.fixture(scope="module")
def without_zlib_ng(tmp_path_factory) -> dict[str, str]:
    """The environment of a process in which `import zlib_ng` fails (a package of that name that raises
    ImportError, first on the path), whether or not the real one is installed."""
    return without_package(tmp_path_factory.mktemp("shadow"), "zlib_ng")


def _build(release: Path, out: Path, env: dict[str, str] | None = None) -> dict:
    argv = [
        sys.executable, "-c", _SMALL_UNITS, "build", "--source", str(release), "--out", str(out), "--resize",
        "square", "--size", "32", "--workers", "2", "--quiet",
    ]  # fmt: skip
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )
    assert done.returncode == 0, done.stderr
    return json.loads((out / "build.json").read_text())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_streamed_layout_builds_the_same_bytes_with_zlib_ng_and_the_stdlib(
    layout, tmp_path, without_zlib_ng
):
    release = tmp_path / "release"
    done = cli("sample", str(release), "--layout", layout, "--classes", "3", "--train-per-class", "8")
    assert done.returncode == 0, done.stderr
    fast = _build(release, tmp_path / "fast")
    stdlib = _build(release, tmp_path / "stdlib", env=without_zlib_ng)
    assert fast["inflater"].startswith("zlib-ng ") and stdlib["inflater"].startswith("zlib ")
    assert fast["counts"] == stdlib["counts"] and sum(c["images"] for c in fast["counts"].values()) > 0
    assert tree_hashes(tmp_path / "fast") == tree_hashes(tmp_path / "stdlib")


def test_a_layout_without_gzip_streams_records_no_inflater(tmp_path):
    release = tmp_path / "release"
    assert cli("sample", str(release), "--classes", "2", "--train-per-class", "2").returncode == 0
    record = _build(release, tmp_path / "out")
    assert "inflater" not in record and record["preprocessing"]["resizer"]
