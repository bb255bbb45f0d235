"""Shard datasets as sources, end to end through the CLI: ImageFolder -> wds -> (as a source) -> parquet -> (as a
source) -> ImageFolder gives the same images and labels, byte for byte at ``--resize none``; and so do a
timm-style WebDataset folder written by the real ``webdataset`` package and a Hub-style Parquet folder written by
the real ``datasets`` package, each in its documented layout (formats.md: timm's imagenet-1k-wds; the Hub's
ILSVRC/imagenet-1k Parquet shards, here without the ``_<wnid>`` path suffix so the ClassLabel names decide)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import webdataset as wds
from support import cli
from support.tree import snapshot

from imagenet_prep.taxonomy import classes

SORTED = [c.wnid for c in sorted(classes.all_classes(), key=lambda c: c.wnid)]
SAMPLE = ("--classes", "6", "--train-per-class", "5", "--val-per-class", "3", "--seed", "11")
NONE = ("--resize", "none", "--workers", "2")


def _build(source: Path, out: Path, *options: str) -> dict:
    done = cli("build", "--source", str(source), "--out", str(out), *NONE, *options)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "build.json").read_text())


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """The starting ImageFolder tree (`sample --layout imagefolder`: train/<wnid>/, val/<wnid>/)."""
    root = tmp_path_factory.mktemp("shardsrc") / "tree"
    done = cli("sample", str(root), "--layout", "imagefolder", *SAMPLE)
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="module")
def direct(tree: Path) -> dict[str, bytes]:
    """The ImageFolder the tree gives directly: what every route below must give too."""
    out = tree.parent / "direct"
    _build(tree, out)
    return snapshot(out)


def _images(root: Path) -> dict[tuple[str, str, str], bytes]:
    """(split, wnid, stem) -> bytes of every image under root/<split>/<wnid>/."""
    return {
        (p.parts[-3], p.parts[-2], p.name.split(".")[0]): p.read_bytes()
        for p in root.glob("*/n*/*")
        if p.is_file()
    }


def test_imagefolder_to_wds_to_parquet_to_imagefolder_is_byte_identical(tree, direct, tmp_path):
    shards = tmp_path / "wds"
    _build(tree, shards, "--output", "wds", "--shard-size", "7")
    assert cli("inspect", str(shards)).stdout.startswith(f"{shards}: layout wds")
    parquet = tmp_path / "parquet"
    _build(shards, parquet, "--output", "parquet", "--shard-size", "11")
    assert cli("inspect", str(parquet)).stdout.startswith(f"{parquet}: layout hf-parquet")
    back = tmp_path / "back"
    _build(parquet, back)
    assert snapshot(back) == direct  # every image, label map and manifest
    # the original bytes: every image of the tree, unchanged, in its class
    assert _images(back) == _images(tree)
    # and re-sharding our own shards gives the same shards
    again = tmp_path / "wds-again"
    _build(shards, again, "--output", "wds", "--shard-size", "7")
    # (the source folder also holds what reading it left: its index cache and the build record's MD5 cache)
    made = {name: data for name, data in snapshot(shards).items() if not name.startswith((".", "wds-shards"))}
    assert snapshot(again) == made


def test_a_timm_style_folder_written_by_webdataset_builds_the_same_tree(tree, direct, tmp_path):
    root = tmp_path / "timm"
    root.mkdir()
    splits = {}
    for split, shard_split, count in (("train", "train", 2), ("val", "validation", 1)):
        items = sorted((p.parent.name, p) for p in (tree / split).glob("n*/*"))
        names, lengths = [], []
        for k in range(count):
            name = f"imagenet1k-{shard_split}-{k:04d}.tar"
            part = items[k::count]
            with wds.TarWriter(str(root / name)) as sink:
                for wnid, path in part:
                    label = SORTED.index(wnid)
                    meta = {"filename": path.name, "label": label, "width": 0, "height": 0}
                    sink.write({"__key__": path.stem, "jpg": path.read_bytes(), "cls": label, "json": meta})
            names.append(name)
            lengths.append(len(part))
        splits[shard_split] = {
            "name": shard_split,
            "num_samples": sum(lengths),
            "shard_lengths": lengths,
            "filenames": names,
        }
    (root / "_info.json").write_text(json.dumps({"name": "imagenet-1k", "splits": splits}))
    assert cli("inspect", str(root)).stdout.startswith(f"{root}: layout wds")
    out = tmp_path / "out"
    _build(root, out)
    assert snapshot(out) == direct


def test_a_hub_style_parquet_folder_written_by_datasets_builds_the_same_tree(tree, direct, tmp_path):
    root = tmp_path / "hub"
    # The Hub's ClassLabel names: the 1K words strings in sorted-wnid order, the second "crane" as "crane2".
    words = [c.words for c in sorted(classes.all_classes(), key=lambda c: c.wnid)]
    words[words.index("crane", words.index("crane") + 1)] = "crane2"
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=words)})
    for split, hub_split in (("train", "train"), ("val", "validation")):
        paths = sorted((tree / split).glob("n*/*"))
        images = [{"bytes": p.read_bytes(), "path": p.name} for p in paths]
        labels = [SORTED.index(p.parent.name) for p in paths]
        ds = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
        ds.to_parquet(str(root / "data" / f"{hub_split}-00000-of-00001.parquet"))
    assert cli("inspect", str(root)).stdout.startswith(f"{root}: layout hf-parquet")
    out = tmp_path / "out"
    _build(root, out)
    assert snapshot(out) == direct
