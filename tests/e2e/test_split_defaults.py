"""Split defaults from the source: without --splits a build takes the splits the source has (an evaluation set:
val; a 21K source: train, with one line saying how to make val), records them resolved (the repair and
`build --out OUT` reproduce the build), and keeps the fingerprint of the explicit train,val on ILSVRC. Box
archives beside the source without --boxes are named in one line, not used."""

from __future__ import annotations

import json

import pytest
from support import build_argv, cli
from support.build import build_record

from imagenet_prep.build import build
from imagenet_prep.config import build_config
from imagenet_prep.errors import UsageError
from imagenet_prep.sample.imagenet21k import write_fall11
from imagenet_prep.sample.registry import write_layout


def _state(out) -> dict:
    return json.loads((out / ".imagenet-prep" / "state.json").read_text())


def test_an_evaluation_set_builds_its_val_split_without_splits(tmp_path):
    source = write_layout(tmp_path / "src", "imagenet-a")
    out = tmp_path / "out"
    record = build_record(source, out, workers=1, resize="none")
    assert record["config"]["splits"] == ["val"] and set(record["counts"]) == {"val"}
    assert record["counts"]["val"]["images"] > 0 and not record["warnings"]
    # the recorded (resolved) splits re-run the same build: every unit is already built
    rerun = cli("build", "--out", str(out), "--workers", "1", "-q")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((out / "build.json").read_text())["units"]["resumed"] == record["units"]["total"]


def test_a_21k_source_builds_train_and_says_how_to_get_val(tmp_path):
    source = tmp_path / "fall11"
    source.mkdir()
    write_fall11(source, per_class=3, seed=2)
    out = tmp_path / "out"
    done = cli(*build_argv(source, out, "--workers", "1", "--resize", "none", "-q")[3:])
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "--holdout N" in line]
    assert len(lines) == 1 and "train only" in lines[0], done.stderr
    record = json.loads((out / "build.json").read_text())
    assert record["config"]["splits"] == ["train"] and set(record["counts"]) == {"train"}
    assert any("--holdout N" in warning for warning in record["warnings"])
    # --holdout alone: val is derived, so the default is train,val
    held = build_record(source, tmp_path / "held", workers=1, resize="none", holdout=1)
    assert held["config"]["splits"] == ["train", "val"] and held["counts"]["val"]["images"] > 0


def test_an_ilsvrc_build_keeps_the_fingerprint_of_the_explicit_splits(quirky_release, tmp_path):
    options = {"source": quirky_release.root, "workers": 1, "size": 32, "classes": "n01440764,n02102040"}
    build(build_config({}, {**options, "out": tmp_path / "default"}))
    build(build_config({}, {**options, "out": tmp_path / "explicit", "splits": "train,val"}))
    default, explicit = _state(tmp_path / "default"), _state(tmp_path / "explicit")
    assert default["fingerprint"] == explicit["fingerprint"]
    recorded = json.loads((tmp_path / "default" / "build.json").read_text())["config"]
    assert recorded["splits"] == ["train", "val"]


def test_an_empty_splits_value_is_refused():
    with pytest.raises(UsageError, match="--splits: no split"):
        build_config({}, {"source": "src", "out": "out", "splits": ""})


def test_box_archives_beside_the_source_are_named_when_not_used(tmp_path):
    made = cli(
        "sample",
        str(tmp_path / "mini"),
        "--layout",
        "bbox",
        "--classes",
        "2",
        "--train-per-class",
        "2",
        "--val-per-class",
        "1",
    )
    assert made.returncode == 0, made.stderr
    plain = cli(
        *build_argv(tmp_path / "mini", tmp_path / "plain", "--size", "32", "--workers", "1", "-q")[3:]
    )
    assert plain.returncode == 0, plain.stderr
    named = [line for line in plain.stderr.splitlines() if "--boxes" in line]
    assert len(named) == 1, plain.stderr
    assert "ILSVRC2012_bbox_train_v2.tar.gz" in named[0] and "ILSVRC2012_bbox_val_v3.tgz" in named[0]
    assert not (tmp_path / "plain" / "boxes.csv").exists()
    boxed = cli(
        *build_argv(tmp_path / "mini", tmp_path / "boxed", "--size", "32", "--workers", "1", "-q", "--boxes")[
            3:
        ]
    )
    assert boxed.returncode == 0, boxed.stderr
    assert "--boxes" not in boxed.stderr and (tmp_path / "boxed" / "boxes.csv").is_file()
