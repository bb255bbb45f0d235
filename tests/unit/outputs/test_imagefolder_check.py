"""`imagenet-prep check` on hostile trees: a bad label, a path outside the tree, a FIFO or link in place of an
image or a label map, an EPS file (never handed to Ghostscript), a missing path. Each is a problem reported,
never a crash or a hang."""

from __future__ import annotations

import csv
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from support import cli, read_manifest, run_build


@pytest.fixture(scope="module")
def built_tree(dog_release, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("check-tree") / "out"
    run_build(dog_release, out, size=32)
    return out


@pytest.fixture
def tree(built_tree, tmp_path) -> Path:
    out = tmp_path / "tree"
    shutil.copytree(built_tree, out)
    return out


def check_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return cli("check", *args, timeout=60, env=env)  # a FIFO that hangs the check fails the test here


def _rewrite_manifest(out: Path, split: str, edit) -> dict[str, str]:
    rows = read_manifest(out, split)
    edit(rows[0])
    with (out / f"{split}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows[0]


def test_check_passes_on_the_untouched_tree(tree):
    done = check_cli(str(tree), "--decode")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("field", "value"), [("label", "seven"), ("width", "1.5"), ("height", "")])
def test_non_integer_manifest_values_are_problems_not_crashes(tree, field, value):
    row = _rewrite_manifest(tree, "train", lambda r: r.__setitem__(field, value))
    done = check_cli(str(tree))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{row['path']}: {field} {value!r} is not a whole number" in done.stderr


def test_manifest_path_outside_the_tree_is_a_problem_and_not_opened(tree, tmp_path):
    outside = tmp_path / "outside.JPEG"
    outside.write_bytes(b"")
    _rewrite_manifest(tree, "val", lambda r: r.__setitem__("path", "../outside.JPEG"))
    done = check_cli(str(tree))
    assert done.returncode == 1 and "../outside.JPEG: not under val/" in done.stderr
    assert "cannot be read" not in done.stderr


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_fifo_or_symlink_in_place_of_an_image_is_not_a_regular_file(tree, kind):
    rel = read_manifest(tree, "train")[0]["path"]
    image = tree / rel
    target = tree.parent / "elsewhere.JPEG"
    shutil.move(image, target)
    if kind == "fifo":
        os.mkfifo(image)
    else:
        image.symlink_to(target)
    t0 = time.monotonic()
    done = check_cli(str(tree), "--decode")
    assert done.returncode == 1, done.stderr
    assert f"{rel}: not a regular file" in done.stderr
    assert time.monotonic() - t0 < 30


def test_fifo_as_a_label_map_does_not_hang(tree):
    (tree / "class_index.json").unlink()
    os.mkfifo(tree / "class_index.json")
    done = check_cli(str(tree))
    assert done.returncode == 1 and "class_index.json: not a regular file" in done.stderr


def _eps(width: int, height: int) -> bytes:
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n"
        + f"%%BoundingBox: 0 0 {width} {height}\n".encode()
        + b"%%EndComments\n0 0 moveto showpage\n%%EOF\n"
    )


def test_eps_file_is_never_handed_to_ghostscript(tree, tmp_path):
    row = read_manifest(tree, "train")[0]
    (tree / row["path"]).write_bytes(_eps(int(row["width"]), int(row["height"])))
    # A fake Ghostscript first on PATH: it leaves a mark if anything runs it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mark = tmp_path / "gs-was-run"
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\ntouch {mark}\nexit 1\n")
    gs.chmod(gs.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = check_cli(str(tree), "--decode", env=env)
    assert done.returncode == 1, done.stderr
    assert f"{row['path']}: not a JPEG, PNG or WEBP image" in done.stderr
    assert not mark.exists()


def test_check_on_a_missing_path_says_it_is_missing(tmp_path):
    done = check_cli(str(tmp_path / "nope"))
    assert done.returncode == 2
    assert done.stderr.startswith("imagenet-prep: error: ") and "does not exist" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
