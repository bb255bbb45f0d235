"""Self-healing re-runs for the shard outputs (issue 14 item 2, for wds and parquet): a shard unit's done marker
records its shard files and sizes, so a truncated / emptied / deleted shard makes the same build command rebuild
exactly those units and end byte-identical to a clean build; plain `check` catches a shard cut by a few bytes
(its size against the marker) and prints the command that repairs it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagenet_prep.build import STATE_DIR, build
from imagenet_prep.config import build_config
from imagenet_prep.outputs import check_output


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from imagenet_prep.sample import SampleSpec, write_sample

    return write_sample(
        tmp_path_factory.mktemp("shard-repair-release"),
        SampleSpec(classes=4, train_per_class=3, val_per_class=2, seed=11),
    )


def _config(release, out: Path, output: str, **extra):
    options = {"workers": 1, "size": 32, "output": output, "shard_size": "4", "shuffle_seed": 3}
    return build_config({}, {"source": release.root, "out": out, **options, **extra})


def _hashes(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and STATE_DIR not in p.relative_to(out).parts and p.name != "build.json"
    }


@pytest.fixture(scope="module")
def clean(release, tmp_path_factory):
    hashes = {}
    for output in ("wds", "parquet"):
        out = tmp_path_factory.mktemp(f"shard-clean-{output}") / "out"
        assert build(_config(release, out, output)).ok
        hashes[output] = _hashes(out)
    return hashes


def _marker_files(out: Path) -> dict[str, dict[str, int]]:
    return {
        marker.stem: json.loads(marker.read_text())["files"]
        for marker in (out / STATE_DIR / "done").glob("*.json")
    }


def test_wds_markers_record_each_shard_and_its_index(release, clean, tmp_path):
    out = tmp_path / "out"
    build(_config(release, out, "wds"))
    files = _marker_files(out)
    assert len(files) == 3 + 2  # 12 train samples in shards of 4, 8 val samples in shards of 4
    for unit, recorded in files.items():
        assert set(recorded) == {f"imagenet-{unit}.tar", f"imagenet-{unit}.idx"}
        for rel, size in recorded.items():
            assert (out / rel).stat().st_size == size
    assert all(
        (out / rel).stat().st_size % 10240 == 0 for rec in files.values() for rel in rec if ".tar" in rel
    )


@pytest.mark.parametrize("output", ["wds", "parquet"])
def test_rerun_rebuilds_exactly_the_damaged_shards(release, clean, tmp_path, output):
    out = tmp_path / "out"
    build(_config(release, out, output))
    assert _hashes(out) == clean[output]
    if output == "wds":
        truncated, emptied, deleted = (
            "imagenet-train-000000.tar",
            "imagenet-train-000002.idx",
            "imagenet-val-000001.tar",
        )
    else:
        truncated, emptied, deleted = (
            "data/train-00000-of-00003.parquet",
            "data/train-00002-of-00003.parquet",
            "data/validation-00001-of-00002.parquet",
        )
    # cut only the end of the first shard: a tar loses just zero padding, a reader may not even notice
    with open(out / truncated, "r+b") as handle:
        handle.truncate(os.path.getsize(out / truncated) - 512)
    (out / emptied).write_bytes(b"")
    (out / deleted).unlink()

    report = check_output(out)
    assert not report.ok
    assert any(f"{truncated}:" in p and "bytes but its build wrote" in p for p in report.problems)
    assert any(f"{emptied}: 0 bytes" in p for p in report.problems)
    assert any(f"{deleted}: missing" in p for p in report.problems)
    assert report.repair and f"--output {output}" in report.repair and "--shard-size 4" in report.repair

    result = build(_config(release, out, output))
    assert result.units_rebuilt == 3
    assert result.units_resumed == result.units_total - 3
    assert _hashes(out) == clean[output]
    assert check_output(out).ok
    again = build(_config(release, out, output))
    assert again.units_rebuilt == 0 and again.units_resumed == again.units_total


def test_cli_check_prints_the_command_that_repairs_a_cut_shard(release, clean, tmp_path):
    out = tmp_path / "out"
    build(_config(release, out, "wds", shuffle=False))
    victim = out / "imagenet-val-000000.tar"
    data = victim.read_bytes()
    victim.write_bytes(data[:-1024])  # only zero padding is gone: the tar still reads
    run = [sys.executable, "-m", "imagenet_prep"]
    checked = subprocess.run([*run, "check", str(out)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 1
    assert "imagenet-val-000000.tar" in checked.stderr
    last = checked.stderr.strip().splitlines()[-1]
    command = last.split(": ", 1)[1].split()
    assert command[:2] == ["imagenet-prep", "build"]
    assert "--no-shuffle" in command and "--shuffle-seed" in command and "--output" in command
    repaired = subprocess.run([*run, *command[1:]], capture_output=True, text=True, timeout=120)
    assert repaired.returncode == 0, repaired.stderr
    assert "rebuilt 1 unit" in repaired.stdout
    assert victim.read_bytes() == data
