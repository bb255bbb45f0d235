"""ImageNet-21K builds: fall11 and winter21 layouts, the ImageNet-21K-P recipe, --holdout, --label-space,
--classes/--under over 21K, and the squish resize."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path

import pytest
from support import CONFIGS

from imagenet_prep.build import build
from imagenet_prep.config import build_config, read_config_file
from imagenet_prep.image import ImageOptions, target_size
from imagenet_prep.outputs import check_output
from imagenet_prep.plan.recipes import c_sorted, holdout_split, keep_class, published_notes
from imagenet_prep.sample.imagenet21k import DEFAULT_21K_CLASSES, write_fall11, write_winter21
from imagenet_prep.taxonomy.imagenet21k import bundled_names, label_space

SIZES = (3, 5, 6, 8)  # cycled over the 7 classes: 3, 5, 6, 8, 3, 5, 6 images
KEPT = ("n01440764", "n02084071", "n04125692")  # the classes with MORE than 5 images


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


CONFIG = CONFIGS / "imagenet21k-p.yaml"


def _build(source: Path, out: Path, config: Path | None = None, **options) -> dict:
    values = {"source": source, "out": out, "workers": 2, "resize": "squish", "size": 48, **options}
    build(build_config(read_config_file(config) if config else {}, values))
    return json.loads((out / "build.json").read_text())


@pytest.fixture(scope="module")
def fall11(tmp_path_factory):
    root = tmp_path_factory.mktemp("fall11")
    return root, write_fall11(root, per_class=SIZES, seed=2)


@pytest.fixture(scope="module")
def winter21(tmp_path_factory):
    root = tmp_path_factory.mktemp("winter21")
    files = write_winter21(root, per_class=SIZES, seed=2)
    with tarfile.open(root / "winter21_whole.tar.gz") as archive:
        archive.extractall(root, filter="data")  # the folder of per-class tars a user extracts
    return root / "winter21_whole", files


def _check_recipe(out: Path, files: dict[str, list[str]], record: dict, release: str) -> None:
    assert record["classes"] == list(KEPT)
    assert (out / "labels.txt").read_text().split() == list(KEPT)
    for split in ("train", "val"):
        rows = _rows(out / f"{split}.csv")
        for label, wnid in enumerate(KEPT):
            ordered = c_sorted(files[wnid])  # C collation: n.._10 before n.._9
            expected = ordered[:2] if split == "val" else ordered[2:]
            got = [Path(r["path"]).name for r in rows if r["wnid"] == wnid]
            assert sorted(got) == sorted(expected), (split, wnid)
            assert {int(r["label"]) for r in rows if r["wnid"] == wnid} == {label}
    assert record["recipe"]["release"] == release
    notes = published_notes(record)
    assert any("classes: built 3" in note for note in notes)
    assert check_output(out).ok


def test_fall11_recipe_keeps_classes_over_the_threshold_and_takes_the_first_names(fall11, tmp_path):
    root, files = fall11
    out = tmp_path / "p"
    # The example config, with a threshold and val size a miniature reaches (500 and 50 in the file).
    record = _build(root, out, CONFIG, min_images=5, holdout=2)
    assert record["config"]["recipe"] == "imagenet21k-p"
    assert record["layout"] == "fall11"
    _check_recipe(out, files, record, "fall11")
    # Squish: every written image is 48x48, or an image with max side < 48 kept as it was.
    for row in _rows(out / "train.csv"):
        assert (row["width"], row["height"]) == ("48", "48")


def test_winter21_folder_of_class_tars_gives_the_same_split(winter21, tmp_path):
    folder, files = winter21
    out = tmp_path / "w"
    record = _build(folder, out, recipe="imagenet21k-p", min_images=5, holdout=2)
    assert record["layout"] == "class-tars"
    _check_recipe(out, files, record, "winter21")
    # The class tars' index is cached beside them: a second build reads no index bytes.
    assert (folder / "class-tars.index.json").is_file() and record["bytes_read"]["index"] > 0
    again = _build(folder, tmp_path / "again", recipe="imagenet21k-p", min_images=5, holdout=2)
    assert again["bytes_read"]["index"] == 0 and again["counts"] == record["counts"]


def test_the_published_threshold_is_more_than_500():
    assert not keep_class(500) and keep_class(501)
    assert keep_class(6, 5) and not keep_class(5, 5)


def test_holdout_is_seeded_per_class_and_labels_follow_a_named_label_space(fall11, tmp_path):
    root, files = fall11
    out = tmp_path / "h"
    record = _build(root, out, holdout=1, seed=4, label_space="imagenet22k", resize="none")
    space = label_space("imagenet22k")
    # The label maps are the bundled list, in its order; labels are positions in it.
    assert (out / "labels.txt").read_text().split() == list(space)
    index = json.loads((out / "class_index.json").read_text())
    assert index["0"] == [space[0], bundled_names()[space[0]]]
    classes_csv = _rows(out / "classes.csv")
    assert len(classes_csv) == len(space)
    tench = next(r for r in classes_csv if r["wnid"] == "n01440764")
    assert tench["imagenet1k_index"] == "0" and tench["name"] == "tench"
    dog = next(r for r in classes_csv if r["wnid"] == "n02084071")
    assert dog["imagenet1k_index"] == "" and dog["gloss"].startswith("a member of the genus Canis")
    val = _rows(out / "val.csv")
    for wnid in DEFAULT_21K_CLASSES:
        train_names, held = holdout_split(files[wnid], 1, 4, wnid)
        assert [Path(r["path"]).name for r in val if r["wnid"] == wnid] == list(held)
        assert {int(r["label"]) for r in val if r["wnid"] == wnid} == {space.index(wnid)}
    assert record["classes"] == sorted(DEFAULT_21K_CLASSES)
    assert check_output(out).ok
    # Microsoft's order puts the 1K first: the same build there labels tench 0 and 'dog' past 1000.
    ms = tmp_path / "ms"
    _build(root, ms, splits="train", train_per_class=1, label_space="imagenet22k-ms", resize="none")
    ms_space = label_space("imagenet22k-ms")
    assert (ms / "labels.txt").read_text().split() == list(ms_space)
    labels = {r["wnid"]: int(r["label"]) for r in _rows(ms / "train.csv")}
    assert labels["n01440764"] == ms_space.index("n01440764") < 1000 <= labels["n02084071"]


def test_classes_and_under_work_over_21k(fall11, tmp_path):
    root, _ = fall11
    out = tmp_path / "c"
    _build(root, out, splits="train", classes="feist,n00007846", resize="none")
    assert (out / "labels.txt").read_text().split() == ["n00007846", "n02085019"]
    dogs = tmp_path / "d"
    _build(root, dogs, splits="train", under="dog.n.01", resize="none")
    # Every dog class of the archive, not only the 1K ones.
    assert (dogs / "labels.txt").read_text().split() == ["n02084071", "n02085019", "n02085620"]


def test_a_source_without_val_needs_a_holdout(fall11, tmp_path):
    """Asked for val explicitly (without --splits the build takes train: tests/e2e/test_split_defaults.py)."""
    from imagenet_prep.errors import InputError

    with pytest.raises(InputError, match="no val split"):
        _build(fall11[0], tmp_path / "x", splits="train,val")


def test_squish_geometry():
    squish = ImageOptions(resize="squish", size=224)
    assert target_size(300, 100, squish) == (224, 224)
    assert target_size(200, 100, squish) is None  # max side < 224: copied unchanged
    assert target_size(224, 224, squish) is None
    assert target_size(200, 100, ImageOptions(resize="squish", size=224, upscale=True)) == (224, 224)
