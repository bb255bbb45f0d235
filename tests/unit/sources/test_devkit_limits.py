"""Issue 15, hostile inputs read by the tool itself: devkit bombs, and trees given to `imagenet-prep check`
(a bad label, a FIFO or link in place of an image, an EPS file, a missing path)."""

from __future__ import annotations

import csv
import gzip
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from support import read_manifest, run_build

from imagenet_prep.errors import DevkitError
from imagenet_prep.fetch.catalog import GROUND_TRUTH_PATH, META_PATH
from imagenet_prep.sources import devkit as devkit_mod
from imagenet_prep.sources.devkit import read_devkit


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=9)


@pytest.fixture(scope="module")
def real_members(dog_release) -> dict[str, bytes]:
    with tarfile.open(dog_release.devkit) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


# ------------------------------------------------------------------------------------------------ devkit
def test_devkit_caps_are_generous_for_the_real_devkit():
    # The real ILSVRC2012_devkit_t12 holds a ~2 MB meta.mat and a ~190 KB ground truth (50,000 short lines).
    assert devkit_mod.MAX_META_BYTES >= 8 << 20 and devkit_mod.MAX_GROUND_TRUTH_BYTES >= 1 << 20


def test_ground_truth_bomb_in_the_tar_gz_is_refused(tmp_path, real_members):
    bomb = b"1\n" * (10 << 20)  # 20 MB of ground truth; ~20 KB once compressed
    path = tmp_path / "ILSVRC2012_devkit_t12.tar.gz"
    path.write_bytes(_tar_gz({META_PATH: real_members[META_PATH], GROUND_TRUTH_PATH: bomb}))
    assert path.stat().st_size < 100_000
    with pytest.raises(DevkitError, match="too large to be the real one") as exc:
        read_devkit(path)
    assert "ILSVRC2012_validation_ground_truth.txt" in str(exc.value) and len(str(exc.value)) < 400


def test_huge_meta_mat_is_refused_before_it_is_read(tmp_path, real_members):
    path = tmp_path / "ILSVRC2012_devkit_t12.tar.gz"
    path.write_bytes(
        _tar_gz({META_PATH: bytes(64 << 20), GROUND_TRUTH_PATH: real_members[GROUND_TRUTH_PATH]})
    )
    with pytest.raises(DevkitError, match="meta.mat .*too large to be the real one"):
        read_devkit(path)


def test_extracted_devkit_folder_with_a_huge_ground_truth_is_refused(tmp_path, real_members):
    data = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    (data / "meta.mat").write_bytes(real_members[META_PATH])
    with open(data / "ILSVRC2012_validation_ground_truth.txt", "wb") as f:
        f.truncate(64 << 20)  # sparse: costs no disk
    with pytest.raises(DevkitError, match="too large to be the real one"):
        read_devkit(tmp_path)


def test_extracted_devkit_folder_with_a_fifo_does_not_hang(tmp_path, real_members):
    data = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    os.mkfifo(data / "meta.mat")
    (data / "ILSVRC2012_validation_ground_truth.txt").write_bytes(real_members[GROUND_TRUTH_PATH])
    probe = "import sys; from imagenet_prep.sources.devkit import read_devkit; read_devkit(sys.argv[1])"
    done = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0 and "not a regular file" in done.stderr


def test_the_sample_devkit_still_reads(dog_release):
    assert len(read_devkit(dog_release.devkit).val_ground_truth) == 50_000


# ------------------------------------------------------------------------------------------------- check
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
    return subprocess.run(
        [sys.executable, "-m", "imagenet_prep", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,  # a FIFO that hangs the check fails the test here
        env=env,
    )


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
