"""Many small units (a list touching every class with a few images, like SimCLR's 1%): the local pool hands them
to its workers several at a time, and that changes nothing a build writes. The tree equals the in-process
build's, every unit has its own done marker, and a build killed -9 mid-way resumes to the same bytes, its finished
units kept (real CLI processes, a real pool)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import build_argv, cli, snapshot
from support.kill_trial import finished_markers, kill_after_first_unit

from imagenet_prep.sample import SampleSpec, write_sample

# 60 classes x 3 train images (+ 1 val each, in one val unit): 240 images in 61 units, above the in-process
# limit (executors.local.IN_PROCESS_MAX), so two workers get the train units about 5 to a task (chunks).
SPEC = SampleSpec(classes=60, train_per_class=3, val_per_class=1, seed=23)
OPTIONS = ("--resize", "shorter", "--size", "24", "--quiet")
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("small-units"), SPEC)


@pytest.fixture(scope="module")
def reference(release, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("reference") / "out"
    done = cli("build", "--source", str(release.root), "--out", str(out), "--workers", "1", *OPTIONS)
    assert done.returncode == 0, done.stderr
    return snapshot(out)


def _build(release, out: Path, *extra: str) -> dict:
    done = cli("build", "--source", str(release.root), "--out", str(out), "--workers", "2", "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_many_small_units_give_the_in_process_tree_and_a_marker_each(release, reference, tmp_path):
    out = tmp_path / "out"
    got = _build(release, out, *OPTIONS)
    assert got["images"] == 240 and got["units"]["total"] == 61 and got["units"]["built"] == 61
    assert snapshot(out) == reference
    assert len(finished_markers(out)) == 61
    again = _build(release, out, *OPTIONS)  # nothing to do: every unit found finished by its own marker
    assert again["units"]["already_built"] == 61 and again["images_built"] == 0
    assert snapshot(out) == reference


def test_killed_mid_way_then_resumed_gives_the_same_bytes(release, reference, tmp_path, monkeypatch):
    # A killed build leaves Python's multiprocessing socket folder (pymp-*) in $TMPDIR: keep it here.
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    out = tmp_path / "out"
    argv = build_argv(release.root, out, "--workers", "2", *OPTIONS)
    killed = kill_after_first_unit(argv, out, units=61)
    done_before = len(finished_markers(out))
    if not killed:
        pytest.skip("the machine was too slow to kill the build before it finished (three tries)")
    assert 1 <= done_before < 61
    resumed = _build(release, out, *OPTIONS)
    assert resumed["units"]["already_built"] >= 1  # the units finished before the kill are kept
    assert resumed["units"]["already_built"] + resumed["units"]["built"] == 61
    assert snapshot(out) == reference
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
