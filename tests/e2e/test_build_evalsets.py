"""Evaluation sets as sources: ImageNetV2 (folder ints = 1K index), ImageNet-A/-R (200 classes, 1K index
column), ImageNet-Sketch (zip); all written as split val."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from imagenet_prep.build import build
from imagenet_prep.config import build_config
from imagenet_prep.errors import InputError
from imagenet_prep.outputs import check_output
from imagenet_prep.sample.registry import write_layout
from imagenet_prep.taxonomy import classes, evalsets


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _build(source: Path, out: Path, **options) -> dict:
    values = {"source": source, "out": out, "workers": 2, "splits": "val", "resize": "none", **options}
    build(build_config({}, values))
    assert check_output(out).ok
    return json.loads((out / "build.json").read_text())


@pytest.mark.parametrize("variant", ["matched-frequency", "top-images"])
def test_imagenetv2_folder_100_is_label_100(tmp_path, variant):
    source = write_layout(tmp_path / "src", "imagenetv2", variant=variant)
    out = tmp_path / "out"
    record = _build(source, out)
    assert record["layout"] == f"imagenetv2-{variant}"
    rows = _rows(out / "val.csv")
    # Folders 0, 2, 10, 100, 999 ("100" sorts before "2" as a string): labels are the 1K indices.
    assert sorted({int(r["label"]) for r in rows}) == [0, 2, 10, 100, 999]
    for row in rows:
        assert int(row["label"]) == classes.by_wnid(row["wnid"]).index
    assert len((out / "labels.txt").read_text().split()) == 1000  # the 1K label space
    assert sum(r["wnid"] == classes.by_index(100).wnid for r in rows) == 2


def test_imagenet_a_classes_csv_carries_the_bundled_1k_mask(tmp_path):
    wnids = tuple(w for _, w in evalsets.subset_classes("imagenet-a"))
    source = write_layout(tmp_path / "src", "imagenet-a", wnids=wnids, per_class=1)
    out = tmp_path / "out"
    _build(source, out)
    table = _rows(out / "classes.csv")
    assert [r["wnid"] for r in table] == list(wnids)
    assert tuple(int(r["imagenet1k_index"]) for r in table) == evalsets.indices_in_1k("imagenet-a")
    assert {int(r["label"]) for r in _rows(out / "val.csv")} == set(range(200))
    index = json.loads((out / "class_index.json").read_text())
    assert index["0"] == [wnids[0], classes.by_wnid(wnids[0]).name]  # 1K wnids and names


def test_imagenet_r_with_dotted_names_and_its_1k_index(tmp_path):
    source = write_layout(tmp_path / "src", "imagenet-r")
    out = tmp_path / "out"
    record = _build(source, out)
    table = _rows(out / "classes.csv")
    mask = dict(evalsets.subset_classes("imagenet-r"))
    by_wnid = {w: i for i, w in mask.items()}
    assert all(int(r["imagenet1k_index"]) == by_wnid[r["wnid"]] for r in table)
    assert record["counts"]["val"]["images"] == 8
    with pytest.raises(InputError, match="--splits val"):
        _build(source, tmp_path / "train", splits="train,val")


def test_imagenet_a_names_with_dots_are_kept_apart(tmp_path):
    source = write_layout(tmp_path / "src", "imagenet-a", per_class=3)
    out = tmp_path / "out"
    record = _build(source, out)
    assert record["counts"]["val"]["images"] == 12 and not record["skipped"]


def test_sketch_zip_is_read_by_offset_and_inflated(tmp_path):
    source = write_layout(tmp_path / "src", "sketch")
    out = tmp_path / "out"
    record = _build(source, out, resize="shorter", size=32)
    assert record["layout"] == "imagenet-sketch"
    rows = _rows(out / "val.csv")
    assert len(rows) == 10
    assert sorted({int(r["label"]) for r in rows}) == [0, 1, 151, 500, 999]


def test_sample_layouts_are_the_real_member_layouts(tmp_path):
    import tarfile
    import zipfile

    from imagenet_prep.errors import UsageError

    write_layout(tmp_path, "winter21", wnids=("n00007846",), per_class=2)
    with tarfile.open(tmp_path / "winter21_whole.tar.gz") as archive:
        assert archive.getnames() == ["winter21_whole/n00007846.tar"]
    write_layout(tmp_path, "sketch", wnids=("n01440764",), per_class=1)
    with zipfile.ZipFile(tmp_path / "ImageNet-Sketch.zip") as archive:
        assert archive.namelist() == ["sketch/n01440764/sketch_0.JPEG"]
    with pytest.raises(UsageError, match="fall11"):
        write_layout(tmp_path, "nope")
