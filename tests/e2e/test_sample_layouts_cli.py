"""`imagenet-prep sample --layout` for the releases beyond ILSVRC2012 (21K, boxes, evaluation sets)."""

from __future__ import annotations

import csv

import pytest
from support import cli

from imagenet_prep.taxonomy import evalsets


@pytest.mark.parametrize("layout", ["fall11", "imagenet-a"])
def test_sample_layout_writes_a_release_that_builds(tmp_path, layout):
    done = cli("sample", str(tmp_path / "src"), "--layout", layout)
    assert done.returncode == 0, done.stderr
    assert f"miniature {layout} release" in done.stdout
    extra = ["--holdout", "2"] if layout == "fall11" else ["--splits", "val"]
    built = cli(
        "build", "--source", str(tmp_path / "src"), "--out", str(tmp_path / "o"), "--size", "32", *extra
    )
    assert built.returncode == 0, built.stderr
    with (tmp_path / "o" / "classes.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    if layout == "imagenet-a":  # each class carries its 1K index: the mask for the 200-class logits
        mask = dict(evalsets.subset_classes("imagenet-a"))
        by_wnid = {wnid: index for index, wnid in mask.items()}
        assert all(int(row["imagenet1k_index"]) == by_wnid[row["wnid"]] for row in rows)
