"""The wds source layout (sources/wds.py): detection of each variant, labels and wnids, refusals, the index
cache, and that a class subset reads only its share of the shards' bytes. Shards are real tars: the sample
registry's timm-style miniature, and tars written by webdataset's own TarWriter."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import webdataset as wds
from PIL import Image
from support.build import build_record

from imagenet_prep.build import build
from imagenet_prep.config import build_config
from imagenet_prep.sample.ilsvrc import SampleSpec
from imagenet_prep.sample.registry import MiniatureOptions, write_miniature
from imagenet_prep.sample.repack import write_layout
from imagenet_prep.sources import FolderProbe, detect_layouts, open_source
from imagenet_prep.sources.wds import WdsSource, find_shards
from imagenet_prep.taxonomy import classes

SORTED_1K = [c.wnid for c in sorted(classes.all_classes(), key=lambda c: c.wnid)]


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), (seed * 37 % 256, 80, 160)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def timm_release(tmp_path_factory):
    """timm's imagenet-1k-wds layout (imagenet1k-{train,validation}-NNNN.tar, _info.json), 4 classes."""
    root = tmp_path_factory.mktemp("timm") / "wds"
    spec = SampleSpec(classes=4, train_per_class=5, val_per_class=3, seed=3)
    return write_layout(root, spec, "wds")


def _write_plain(path: Path, samples: list[dict]) -> None:
    with wds.TarWriter(str(path)) as sink:
        for sample in samples:
            sink.write(sample)


def _index(root: Path, split: str = "train"):
    source = open_source(root)
    try:
        wnids = source.classes(split)
        return source.index(split, wnids, None)
    finally:
        source.close()


def test_timm_layout_is_detected_with_its_splits_from_info_json(timm_release):
    root = timm_release.root
    assert detect_layouts(root) == ["wds"]
    assert find_shards(root) == {
        "train": ["imagenet1k-train-0000.tar", "imagenet1k-train-0001.tar"],
        "val": ["imagenet1k-validation-0000.tar"],
    }
    assert open_source(root).splits() == ("train", "val")


def test_timm_layout_labels_are_the_classes_the_images_were_drawn_from(timm_release):
    train = _index(timm_release.root, "train")
    got = {wnid: sorted(f.key for f in files) for wnid, files in train.files.items()}
    want = {
        wnid: sorted(os.path.splitext(n)[0] for n in names)
        for wnid, names in timm_release.train_files.items()
    }
    assert got == want and train.refused == ()
    val = _index(timm_release.root, "val")
    got_val = {f.key: wnid for wnid, files in val.files.items() for f in files}
    assert got_val == {os.path.splitext(n)[0]: w for n, w in timm_release.val_files.items()}
    # val keys hold no wnid: the class came from .cls through the 1K sorted order (checked against the json)
    assert all(f.name.endswith(".JPEG") for files in val.files.values() for f in files)  # the json's filename


def test_plain_cls_tars_without_a_split_word_are_one_train_split_labelled_by_the_1k_order(tmp_path):
    root = tmp_path / "plain"
    root.mkdir()
    _write_plain(
        root / "shard-000000.tar", [{"__key__": f"{i:06d}", "jpg": _jpeg(i), "cls": i % 3} for i in range(6)]
    )
    _write_plain(
        root / "shard-000001.tar", [{"__key__": f"{i:06d}", "jpg": _jpeg(i), "cls": 7} for i in range(6, 8)]
    )
    assert detect_layouts(root) == ["wds"]
    index = _index(root)
    assert {w: sorted(f.key for f in fs) for w, fs in index.files.items()} == {
        SORTED_1K[0]: ["000000", "000003"],
        SORTED_1K[1]: ["000001", "000004"],
        SORTED_1K[2]: ["000002", "000005"],
        SORTED_1K[7]: ["000006", "000007"],
    }


def test_labels_txt_beside_the_shards_is_the_label_map(tmp_path):
    root = tmp_path / "ours"
    root.mkdir()
    mine = ["n02102040", "n03000684"]
    (root / "labels.txt").write_text("\n".join(mine) + "\n")
    _write_plain(
        root / "x-train-0.tar", [{"__key__": f"k{i}", "jpg": _jpeg(i), "cls": i % 2} for i in range(4)]
    )
    index = _index(root)
    assert {w: len(fs) for w, fs in index.files.items()} == {mine[0]: 2, mine[1]: 2}


def test_json_keyed_tars_take_the_wnid_and_disagreements_are_refused(tmp_path):
    root = tmp_path / "json"
    root.mkdir()
    (root / "labels.txt").write_text("n01440764\nn01443537\n")
    samples = [
        {"__key__": "a", "jpg": _jpeg(1), "json": {"wnid": "n01443537"}},  # json only
        {
            "__key__": "b",
            "jpg": _jpeg(2),
            "json": {"wnid": "n01443537"},
            "cls": 0,
        },  # cls says the other class
        {"__key__": "n01440764_9", "jpg": _jpeg(3), "json": {"wnid": "n01443537"}},  # key vs json
        {"__key__": "c", "jpg": _jpeg(4)},  # no label at all
        {"__key__": "d", "jpg": _jpeg(5), "cls": 9},  # outside labels.txt
    ]
    _write_plain(root / "val-0.tar", samples)
    assert detect_layouts(root) == ["wds"]
    index = _index(root, "val")
    assert {w: [f.key for f in fs] for w, fs in index.files.items()} == {"n01443537": ["a"]}
    reasons = dict(index.refused)
    assert "is not the class n01443537 (labels.txt line 1)" in reasons["val/val-0.tar/b.jpg"]
    assert "different classes" in reasons["val/val-0.tar/n01440764_9.jpg"]
    assert reasons["val/val-0.tar/c.jpg"] == "no .cls label and no wnid in its key or .json"
    assert "outside labels.txt" in reasons["val/val-0.tar/d.jpg"]


def test_other_layouts_tars_are_not_taken_for_shards(tmp_path, timm_release):
    # class tars: members are plain images, and <wnid>.tar names are never shards
    write_miniature(
        tmp_path / "ct", "class-tars", MiniatureOptions(wnids=("n01440764", "n01443537"), per_class=2)
    )
    assert detect_layouts(tmp_path / "ct") == ["class-tars"]
    assert not WdsSource.detect(FolderProbe.of(tmp_path / "ct"))
    # a tar of images alone (no .cls/.json) is not a shard folder
    plain = tmp_path / "images"
    plain.mkdir()
    with tarfile.open(plain / "train-0.tar", "w") as tar:
        info = tarfile.TarInfo("x.jpg")
        data = _jpeg(0)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert detect_layouts(plain) == []


def test_the_index_is_cached_and_a_changed_shard_is_scanned_again(tmp_path, timm_release):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(timm_release.root, root, ignore=shutil.ignore_patterns("*.index.json"))
    first = _index(root)
    assert first.bytes_read > 0 and (root / "wds-shards.index.json").is_file()
    again = _index(root)
    assert again.bytes_read == 0 and again.files == first.files
    shard = root / "imagenet1k-train-0001.tar"
    os.utime(shard, ns=(1, 1))
    changed = _index(root)
    assert 0 < changed.bytes_read < first.bytes_read and changed.files == first.files
    # a cache someone altered (an offset outside the shard) is not trusted
    doc = json.loads((root / "wds-shards.index.json").read_text())
    doc["shards"]["imagenet1k-train-0000.tar"]["samples"][0][2] = 1 << 40
    (root / "wds-shards.index.json").write_text(json.dumps(doc))
    assert _index(root).files == first.files


def test_a_class_subset_reads_only_its_share_of_the_shards(tmp_path, timm_release):
    root = timm_release.root
    _index(root)  # warm the cache: the subset build then reads images only
    wnid = sorted(timm_release.train_files)[0]
    record = build_record(root, tmp_path / "out", classes=wnid, splits="train", resize="none", workers=1)
    read = record["bytes_read"]
    assert read["index"] == 0
    index = _index(root)
    mine = sum(f.location.size + 512 for f in index.files[wnid])  # image bytes + its tar header
    total = sum(p.stat().st_size for p in root.glob("*-train-*.tar"))
    assert read["images"] == mine
    assert read["images"] < total / 3


def test_an_image_above_the_member_size_cap_is_refused(tmp_path):
    root = tmp_path / "big"
    root.mkdir()
    samples = [{"__key__": f"k{i}", "jpg": _jpeg(i) + bytes(5000 * i), "cls": 0} for i in range(3)]
    _write_plain(root / "train-0.tar", samples)
    values = {"source": str(root), "out": str(tmp_path / "out"), "max_member_size": 6000, "splits": "train"}
    result = build(build_config({}, {**values, "resize": "none", "workers": 1}))
    assert result.images_written == 2
    assert [issue.file for issue in result.skipped] == ["train/k2.jpg"]
    assert "above the member-size cap of 6,000 bytes" in result.skipped[0].reason


def test_hostile_member_names_are_refused_by_the_name_policy(tmp_path):
    root = tmp_path / "hostile"
    root.mkdir()
    with tarfile.open(root / "train-0.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (
            ("../evil.jpg", _jpeg(1)),
            ("../evil.cls", b"0"),
            ("ok.jpg", _jpeg(2)),
            ("ok.cls", b"0"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    index = _index(root)
    assert [f.key for fs in index.files.values() for f in fs] == ["ok"]
    assert ("train/train-0.tar/../evil.jpg", "path with '..'") in index.refused
