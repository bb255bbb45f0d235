"""The generative presets from the command line: configs/imagenet256-adm.yaml (zip) and
configs/imagenet32-downsampled.yaml (npz) give the same bytes from every source layout (one release written in
several layouts), work for a subset and in a shard output, `check` passes, and build.json records the
preprocessing a metric depends on."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from support import CONFIGS, cli

from imagenet_prep.sample import SampleSpec
from imagenet_prep.sample.repack import write_layouts

SPEC = SampleSpec(classes=12, train_per_class=4, val_per_class=2, quirks=True, seed=9)
LAYOUTS = ("ilsvrc", "kaggle", "hf-parquet", "imagefolder")
PRESETS = {
    "zip": (CONFIGS / "imagenet256-adm.yaml", ("--size", "32", "--splits", "train,val")),
    "npz": (CONFIGS / "imagenet32-downsampled.yaml", ("--size", "8")),
}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    return write_layouts(tmp_path_factory.mktemp("generative-layouts"), SPEC, LAYOUTS)


def build(source: Path, out: Path, output: str, *more: str) -> dict:
    config, flags = PRESETS[output]
    done = cli("build", "--config", str(config), "--source", str(source), "--out", str(out), *flags, *more)
    assert done.returncode == 0, done.stderr
    checked = cli("check", str(out), "--decode")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return json.loads((out / "build.json").read_text())


def hashes(out: Path, suffix: str) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob(f"*{suffix}"))}


@pytest.mark.parametrize("output", ["zip", "npz"])
def test_the_preset_gives_the_same_bytes_from_every_layout(layouts, tmp_path, output):
    suffix = ".zip" if output == "zip" else ".npz"
    results = {}
    for layout in LAYOUTS:
        record = build(layouts[layout].root, tmp_path / layout, output)
        results[layout] = hashes(tmp_path / layout, suffix)
        assert record["preprocessing"]["decode"] == "full" and record["preprocessing"]["format"] == "png"
    reference = results["ilsvrc"]
    assert len(reference) == (2 if output == "zip" else 11)
    assert all(found == reference for found in results.values()), results
    out = tmp_path / "ilsvrc"
    if output == "zip":
        with zipfile.ZipFile(out / "train.zip") as archive:
            labels = json.loads(archive.read("dataset.json"))["labels"]
        assert len(labels) == SPEC.classes * SPEC.train_per_class
        assert record["preprocessing"]["convention"].startswith("guided-diffusion")
    else:
        rows = sum(len(np.load(out / f"train_data_batch_{i}.npz")["labels"]) for i in range(1, 11))
        assert rows == SPEC.classes * SPEC.train_per_class
        assert record["preprocessing"]["filter"] == "box"


def test_a_subset_and_a_shard_output_with_the_adm_crop(layouts, tmp_path):
    wnids = sorted(layouts["ilsvrc"].wnids)[:3]
    record = build(layouts["kaggle"].root, tmp_path / "subset", "zip", "--classes", ",".join(wnids))
    assert record["classes"] == wnids
    with zipfile.ZipFile(tmp_path / "subset" / "train.zip") as archive:
        assert {label for _, label in json.loads(archive.read("dataset.json"))["labels"]} == {0, 1, 2}
    flags = ("--resize", "adm", "--size", "32", "--format", "png", "--output", "wds", "--quiet")
    done = cli("build", "--source", str(layouts["ilsvrc"].root), "--out", str(tmp_path / "wds"), *flags)
    assert done.returncode == 0, done.stderr
    assert cli("check", str(tmp_path / "wds")).returncode == 0
