"""Evaluation-set helpers: ImageNetV2 folder labels, ImageNet-A/-R class lists and their 1K indices."""

from __future__ import annotations

import csv
import io

import pytest
from support.reference import DIGESTS, digest

from imagenet_prep import classes, labels
from imagenet_prep.errors import UnknownClassError, UsageError
from imagenet_prep.taxonomy import evalsets


def test_imagenetv2_folder_100_is_label_100_not_string_order() -> None:
    assert evalsets.imagenetv2_label("100") == 100
    assert evalsets.imagenetv2_wnid("100") == classes.by_index(100).wnid
    assert evalsets.imagenetv2_wnid("0") == "n01440764"
    assert evalsets.imagenetv2_label("999") == 999
    folders = [str(i) for i in range(1000)]
    # a string sort puts folder "100" 4th ("0", "1", "10", "100"): its label must still be 100, not 3
    assert sorted(folders)[3] == "100"
    assert [evalsets.imagenetv2_label(f) for f in sorted(folders)][3] == 100


@pytest.mark.parametrize("bad", ["1000", "-1", "1.0", "", "abc", "0100", " 1 2"])
def test_imagenetv2_bad_folders(bad: str) -> None:
    with pytest.raises(UnknownClassError, match="0..999"):
        evalsets.imagenetv2_label(bad)


@pytest.mark.parametrize(
    ("name", "variant"),
    [
        ("imagenetv2-matched-frequency.tar.gz", "matched-frequency"),
        ("downloads/imagenetv2-matched-frequency-format-val/", "matched-frequency"),
        ("imagenetv2-threshold0.7.tar.gz", "threshold0.7"),
        ("imagenetv2-top-images-format-val", "top-images"),
        ("imagenetv2-threshold0x7.tar.gz", None),
        ("imagenet-a.tar", None),
    ],
)
def test_imagenetv2_variant(name: str, variant: str | None) -> None:
    assert evalsets.imagenetv2_variant(name) == variant


@pytest.mark.parametrize("eval_set", ["imagenet-a", "imagenet-r"])
def test_a_and_r_classes_agree_with_the_published_indices_and_lists(eval_set: str) -> None:
    pairs = evalsets.subset_classes(eval_set)
    assert len(pairs) == 200
    indices = evalsets.indices_in_1k(eval_set)
    assert digest(indices) == DIGESTS[f"{eval_set} indices"]  # the published <set>_indices.txt
    assert digest(list(pairs)) == DIGESTS[f"{eval_set} classes"]  # the published (index, wnid) list
    assert all(classes.by_index(i).wnid == w for i, w in pairs)
    assert list(indices) == sorted(indices)


def test_a_and_r_differ_and_known_members() -> None:
    a, r = evalsets.indices_in_1k("imagenet-a"), evalsets.indices_in_1k("imagenet-r")
    assert a[:3] == (6, 11, 13) and r[:3] == (1, 2, 4)
    assert a != r
    assert len(evalsets.indices_in_1k("imagenetv2")) == 1000


def test_imagenet1k_indices_of_a_built_200_class_tree_and_classes_csv() -> None:
    wnids = [w for _, w in evalsets.subset_classes("imagenet-a")]
    assert evalsets.imagenet1k_indices(wnids) == evalsets.indices_in_1k("imagenet-a")
    # labels.py already writes this column for any 1K subset: row i's imagenet1k_index is indices_in_1k[i]
    rows = list(csv.DictReader(io.StringIO(labels.classes_csv(wnids))))
    assert [int(row["imagenet1k_index"]) for row in rows] == list(evalsets.indices_in_1k("imagenet-a"))
    assert [int(row["index"]) for row in rows] == list(range(200))
    assert evalsets.imagenet1k_indices(["n00004475", "n01440764"]) == (None, 0)  # a 21K class has none


def test_class_of_member() -> None:
    assert evalsets.class_of_member(
        "imagenetv2", "imagenetv2-matched-frequency-format-val/100/7e1b.jpeg"
    ) == (classes.by_index(100).wnid)
    assert (
        evalsets.class_of_member("imagenet-a", "imagenet-a/n01498041/0.000116_digital clock.jpg")
        == "n01498041"
    )
    assert evalsets.class_of_member("imagenet-r", "imagenet-r/n01443537/art_0.jpg") == "n01443537"
    assert evalsets.class_of_member("sketch", "sketch/n01440764/sketch_0.JPEG") == "n01440764"
    assert evalsets.class_of_member("imagenet-a", "imagenet-a/README.txt") is None
    assert evalsets.class_of_member("imagenet-a", "imagenet-a/n01498041/._0.jpg") is None
    assert evalsets.class_of_member("imagenet-r", "x.jpg") is None
    with pytest.raises(UnknownClassError, match="not one of the 200 imagenet-a classes"):
        evalsets.class_of_member("imagenet-a", "imagenet-a/n01440764/1.jpg")  # tench is not in ImageNet-A
    with pytest.raises(UnknownClassError):
        evalsets.class_of_member("imagenetv2", "imagenetv2-top-images-format-val/1000/a.jpeg")
    with pytest.raises(UsageError, match="Unknown evaluation set"):
        evalsets.class_of_member("imagenet-c", "a/b.jpg")
