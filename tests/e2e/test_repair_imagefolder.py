"""Self-healing re-runs and an honest `check` (issue 14, item 2), and fixed-shape outputs in a real build
(item 1).

A built tree whose files are truncated, emptied or deleted is repaired by running the same build again: just
the affected units are rebuilt (their done markers record their files' sizes), and the tree ends
byte-identical to a clean build. Plain `check` (no --decode) finds a truncated JPEG and prints the command that
repairs the tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from imagenet_prep.build import STATE_DIR, build
from imagenet_prep.config import build_config
from imagenet_prep.outputs import check_output


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from imagenet_prep.sample import SampleSpec, write_sample

    return write_sample(
        tmp_path_factory.mktemp("ux-release"),
        SampleSpec(classes=5, train_per_class=4, val_per_class=2, seed=4),
    )


def _config(release, out: Path, **extra):
    return build_config({}, {"source": release.root, "out": out, "workers": 1, "size": 48, **extra})


def _hashes(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and STATE_DIR not in p.parts and p.name != "build.json"
    }


@pytest.fixture(scope="module")
def clean(release, tmp_path_factory):
    out = tmp_path_factory.mktemp("ux-clean") / "out"
    build(_config(release, out))
    return out, _hashes(out)


def _unit_of(out: Path, rel: str) -> str:
    for marker in (out / STATE_DIR / "done").glob("*.json"):
        if rel in json.loads(marker.read_text())["files"]:
            return marker.stem
    raise AssertionError(f"no marker records {rel}")


def test_rerun_rebuilds_exactly_the_damaged_units(release, clean, tmp_path):
    clean_out, clean_hashes = clean
    out = tmp_path / "out"
    build(_config(release, out))
    assert _hashes(out) == clean_hashes
    images = sorted(rel for rel in clean_hashes if rel.endswith(".JPEG"))
    train = [rel for rel in images if rel.startswith("train/")]
    truncated, emptied, deleted = train[0], train[-1], images[-1]  # first and last train class, a val file
    damaged_units = {_unit_of(out, rel) for rel in (truncated, emptied, deleted)}
    assert len(damaged_units) == 3  # one file in each of three units (train class, other class, val)
    with open(out / truncated, "r+b") as handle:
        handle.truncate(os.path.getsize(out / truncated) // 2)
    (out / emptied).write_bytes(b"")
    (out / deleted).unlink()

    report = check_output(out)
    assert not report.ok and report.problem_count == 3
    assert report.repair and report.repair.startswith("imagenet-prep build --source")

    result = build(_config(release, out))
    assert result.units_rebuilt == 3
    assert result.units_resumed == result.units_total - 3
    assert _hashes(out) == clean_hashes
    assert check_output(out).ok
    record = json.loads((out / "build.json").read_text())
    assert record["units"]["rebuilt"] == 3
    # and a re-run of a sound tree rebuilds nothing
    again = build(_config(release, out))
    assert again.units_rebuilt == 0 and again.units_resumed == again.units_total


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagenet_prep", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_plain_check_finds_a_truncated_jpeg_and_prints_the_repair_command(release, tmp_path):
    out = tmp_path / "out"
    build(_config(release, out))
    victim = sorted(out.glob("train/*/*.JPEG"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 40])
    with Image.open(victim) as image:  # the header still reads: only the end is gone
        assert image.size[0] > 0
    # found without --decode (the size its done marker recorded, and the JPEG's missing EOI marker)
    plain = check_output(out)
    assert any("truncated" in problem or "bytes but" in problem for problem in plain.problems)
    result = _cli("check", str(out))
    assert result.returncode == 1
    assert victim.name in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "imagenet-prep build --source" in last and f"--out {out}" in last and "--size 48" in last
    # the printed command repairs it
    command = last.split(": ", 1)[1].split()
    assert command[:2] == ["imagenet-prep", "build"]
    repaired = _cli(*command[1:])
    assert repaired.returncode == 0, repaired.stderr
    assert "rebuilt 1 unit" in repaired.stdout
    assert victim.read_bytes() == data
    assert _cli("check", str(out), "--json").returncode == 0


def test_eoi_check_without_markers(release, tmp_path):
    out = tmp_path / "out"
    build(_config(release, out))
    for marker in (out / STATE_DIR / "done").glob("*.json"):
        marker.unlink()
    victim = sorted(out.glob("val/*/*.JPEG"))[0]
    victim.write_bytes(victim.read_bytes()[:-2])
    report = check_output(out)
    assert report.problem_count == 1 and "EOI" in report.problems[0]


@pytest.mark.parametrize("mode", ["square", "center-crop"])
def test_fixed_shape_builds_are_exact_and_count_the_enlarged(release, tmp_path, mode):
    out = tmp_path / mode
    # sample images are 40..120 px: at 100 some sources are smaller on a side and are enlarged
    build(_config(release, out, resize=mode, size=100))
    sizes = {Image.open(p).size for p in out.glob("*/*/*.JPEG")}
    assert sizes == {(100, 100)}
    record = json.loads((out / "build.json").read_text())
    assert record["enlarged"] == _sources_smaller_than(release, 100)
    assert 0 < record["enlarged"] < sum(c["images"] for c in record["counts"].values())


def _sources_smaller_than(release, size: int) -> int:
    import io

    from imagenet_prep.plan import make_plan
    from imagenet_prep.sources import source_class

    plan = make_plan(_config(release, release.root.parent / "unused"))
    smaller = 0
    for unit in plan.units:
        reader = source_class(unit.source).open_unit(unit)
        for _sample, data in reader:
            smaller += min(Image.open(io.BytesIO(data)).size) < size
        reader.close()
    return smaller
