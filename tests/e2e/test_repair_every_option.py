"""The repair command `imagenet-prep check` prints, run exactly as printed (real `python -m imagenet_prep`
processes), repairs a damaged output for builds using each group of options: one file truncated, another
deleted; then `check` passes and the bytes are those of the undamaged build. And `build --out OUT` alone
re-runs the configuration recorded in OUT."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from imagenet_prep.build.state import STATE_DIR

ONE_K = ("n01440764", "n02102040", "n02979186")  # the first three Imagenette classes


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagenet_prep", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "1000"},
    )


def _ok(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = _cli(*args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


@pytest.fixture(scope="module")
def ilsvrc(tmp_path_factory) -> Path:
    """A miniature ILSVRC2012 release with its bounding-box archives."""
    root = tmp_path_factory.mktemp("ilsvrc") / "release"
    _ok("sample", root, "--wnids", ",".join(ONE_K), "--train-per-class", "4", "--val-per-class", "2")
    _ok("sample", root, "--layout", "bbox")
    return root


@pytest.fixture(scope="module")
def winter21(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("winter21") / "release"
    _ok("sample", root, "--layout", "winter21")
    return root


def _tree(out: Path) -> dict[str, str]:
    """Every output file but build.json (timings) and the state folder: relative path -> sha256."""
    return {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file() and path.name != "build.json" and STATE_DIR not in path.relative_to(out).parts
    }


def _damage(out: Path) -> tuple[str, str]:
    """Truncate the first data file (an image or a shard) to half, delete the last one."""
    data = [rel for rel in _tree(out) if "/" in rel or rel.endswith((".tar", ".parquet"))]
    data = [rel for rel in data if not rel.endswith((".csv", ".json", ".txt"))]
    assert len(data) >= 2, data
    first, last = data[0], data[-1]
    with open(out / first, "r+b") as handle:
        handle.truncate(os.path.getsize(out / first) // 2)
    (out / last).unlink()
    return first, last


def _printed_repair(out: Path) -> list[str]:
    """The command `check` prints on its last line, as words."""
    check = _cli("check", out)
    assert check.returncode == 1, (check.stdout, check.stderr)
    last = check.stderr.strip().splitlines()[-1]
    assert last.startswith("To repair it, run its build again"), check.stderr
    command = shlex.split(last.split(": ", 1)[1])
    assert command[:2] == ["imagenet-prep", "build"]
    return command


def _build_damage_repair(source: Path, out: Path, *options: str) -> tuple[list[str], dict]:
    """Build, damage, run the printed repair exactly as printed; the tree must come back byte for byte."""
    _ok("build", "--source", source, "--out", out, "--workers", "2", "-q", *options)
    clean = _tree(out)
    _damage(out)
    assert _tree(out) != clean
    command = _printed_repair(out)
    _ok(*command[1:])
    assert _tree(out) == clean
    _ok("check", out)
    report = json.loads(_cli("check", out, "--json").stdout)
    assert report["ok"] and report["repair"] is None
    return command, clean


def test_a_1k_build_with_selection_and_image_options(ilsvrc, tmp_path):
    options = (
        *(
            "--classes",
            f"{ONE_K[0]},{ONE_K[2]}",
            "--train-per-class",
            "3",
            "--val-per-class",
            "1",
            "--seed",
            "4",
        ),
        *("--resize", "center-crop", "--size", "24", "--format", "png", "--filter", "box", "--upscale"),
        *("--no-draft", "--no-verify", "--max-member-size", "8MiB", "--quality", "80"),
    )
    command, clean = _build_damage_repair(ilsvrc, tmp_path / "out", *options)
    text = " ".join(command)
    for flag in ("--no-verify", "--max-member-size 8388608", "--no-draft", "--upscale", "--format png"):
        assert flag in text
    assert any(rel.endswith(".png") for rel in clean)


@pytest.mark.parametrize("output", ["wds", "parquet"])
def test_a_shard_build_with_shard_options(ilsvrc, tmp_path, output):
    options = ("--output", output, "--shard-size", "3", "--shuffle-seed", "5", "--size", "24")
    if output == "parquet":
        options = (*options, "--no-shuffle", "--splits", "train")
    command, clean = _build_damage_repair(ilsvrc, tmp_path / "out", *options)
    assert f"--output {output} --shard-size 3" in " ".join(command)
    assert sum(rel.endswith((".tar", ".parquet")) for rel in clean) >= 3


def test_a_winter21_build_with_holdout_and_label_space(winter21, tmp_path):
    """The reported bug: this build's repair command dropped --holdout and --label-space and was refused."""
    options = (
        *("--holdout", "2", "--label-space", "imagenet12k", "--min-images", "3", "--layout", "winter21"),
        *("--max-member-size", "128MiB", "--no-verify", "--resize", "none"),
    )
    command, clean = _build_damage_repair(winter21, tmp_path / "out", *options)
    text = " ".join(command)
    for flag in ("--holdout 2", "--label-space imagenet12k", "--min-images 3", "--layout winter21"):
        assert flag in text
    assert "--max-member-size 134217728" in text and "--no-verify" in text and "--resize none" in text
    assert any(rel.startswith("val/") for rel in clean)  # the held-out val split


def test_boxes_real_labels_and_allow_skips(ilsvrc, tmp_path):
    out = tmp_path / "out"
    options = ("--boxes", "--real-labels", "--allow-skips", "--size", "32", "--splits", "val")
    command, clean = _build_damage_repair(ilsvrc, out, *options)
    assert {"--boxes", "--real-labels", "--allow-skips"} <= set(command)
    assert "boxes.csv" in clean and "real_labels" in (out / "val.csv").read_text().splitlines()[0]
    # `build --out OUT` alone would drop --allow-skips (how a build ran is not in the plan state): not offered
    _damage(out)
    report = json.loads(_cli("check", out, "--json").stdout)
    assert report["repair_short"] is None and "--allow-skips" in report["repair"]


def test_build_out_alone_reruns_the_recorded_configuration(ilsvrc, tmp_path):
    out = tmp_path / "out"
    options = (
        "--output",
        "wds",
        "--shard-size",
        "2",
        "--train-per-class",
        "2",
        "--size",
        "20",
        "--seed",
        "9",
    )
    _ok("build", "--source", ilsvrc, "--out", out, "--workers", "2", "-q", *options)
    clean = _tree(out)
    _damage(out)
    report = json.loads(_cli("check", out, "--json").stdout)
    assert not report["ok"]
    assert report["repair_short"] == f"imagenet-prep build --out {out}"
    assert report["repair"].startswith(f"imagenet-prep build --source {ilsvrc} --out {out} ")
    check = _cli("check", out)
    assert (
        f"To repair it with the configuration recorded in it: imagenet-prep build --out {out}" in check.stderr
    )
    rerun = _ok(*shlex.split(report["repair_short"])[1:])
    assert "rebuilt 2 units" in rerun.stdout
    assert _tree(out) == clean
    # flags beside it override the recorded values, as over a --config file: another size is another build
    refused = _cli("build", "--out", out, "--size", "24")
    assert refused.returncode == 2 and "size: 20 -> 24" in refused.stderr
    # an OUT that holds no build still needs --source
    empty = _cli("build", "--out", tmp_path / "nothing")
    assert empty.returncode == 2 and "--source is required" in empty.stderr


def test_a_sharded_build_is_repaired_by_one_whole_build(ilsvrc, tmp_path):
    """A job-array build (--num-shards, then finalize): the repair runs the whole build once, not a shard."""
    out = tmp_path / "out"
    for index in ("0", "1"):
        _ok(
            "build",
            "--source",
            ilsvrc,
            "--out",
            out,
            "--num-shards",
            "2",
            "--shard-index",
            index,
            "--size",
            "24",
        )
    _ok("finalize", out)
    clean = _tree(out)
    _damage(out)
    command = _printed_repair(out)
    assert "--num-shards" not in command and "--shard-index" not in command and "--size" in command
    _ok(*command[1:])
    assert _tree(out) == clean
    _ok("check", out)
