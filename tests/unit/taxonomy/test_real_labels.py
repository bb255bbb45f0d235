"""Bundled ReaL labels: lookups by validation name/number and the manifest field."""

from __future__ import annotations

import pytest
from support.reference import DIGESTS, digest

from imagenet_prep import classes
from imagenet_prep.errors import UsageError
from imagenet_prep.taxonomy import real_labels


def test_val_00000002_has_two_labels() -> None:
    assert set(real_labels.real_labels_for("ILSVRC2012_val_00000002.JPEG") or ()) == {795, 970}
    assert real_labels.real_labels_for("ILSVRC2012_val_00000002.JPEG") == (795, 970)  # sorted
    assert real_labels.real_labels_for(2) == (795, 970)
    assert real_labels.real_field("val/n01751748/ILSVRC2012_val_00000002.JPEG") == "795 970"


def test_exactly_3163_empty_lists_and_50000_entries() -> None:
    table = real_labels.real_labels()
    assert len(table) == 50_000
    assert sum(1 for labels in table if not labels) == real_labels.NUM_EXCLUDED == 3163
    assert all(0 <= i < 1000 for labels in table for i in labels)
    assert real_labels.real_labels_for("ILSVRC2012_val_00000001.JPEG") == ()
    assert real_labels.real_field(1) == ""


def test_bundled_copy_equals_the_published_source() -> None:
    assert digest(list(real_labels.real_labels())) == DIGESTS["real"]  # the published real.json, lists sorted
    # and the labels make sense: most ReaL lists hold the image's original label
    agree = sum(
        classes.by_wnid(wnid).index in labels
        for wnid, labels in zip(classes.val_labels(), real_labels.real_labels(), strict=True)
        if labels
    )
    assert agree / (50_000 - 3163) > 0.85


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("ILSVRC2012_val_00000002.JPEG", 2),
        ("ILSVRC2012_val_00050000.JPEG", 50_000),
        ("ILSVRC2012_val_00000003_n01751748.JPEG", 3),  # Hugging Face tar names
        ("val_blurred/n01751748/ILSVRC2012_val_00000004.jpg", 4),
        ("ILSVRC2012_val_00000005", 5),
        ("ILSVRC2012_val_00000000.JPEG", None),
        ("ILSVRC2012_val_00050001.JPEG", None),
        ("ILSVRC2012_test_00000002.JPEG", None),
        ("n01440764_10026.JPEG", None),
        ("ILSVRC2012_val_2.JPEG", None),
    ],
)
def test_val_numbers(name: str, number: int | None) -> None:
    assert real_labels.val_number(name) == number
    assert (real_labels.real_labels_for(name) is None) == (number is None)


def test_non_val_name_is_a_usage_error_in_the_field() -> None:
    with pytest.raises(UsageError, match="not an ILSVRC2012 validation image"):
        real_labels.real_field("n01440764_10026.JPEG")
    assert real_labels.real_labels_for(0) is None and real_labels.real_labels_for(50_001) is None


def test_subset_remap() -> None:
    wnids = [classes.by_index(970).wnid, classes.by_index(795).wnid, classes.by_index(0).wnid]
    # sorted subset: index 0 -> 0, 795 -> 1, 970 -> 2
    assert real_labels.real_field(2, wnids) == "1 2"
    assert real_labels.real_field(2, [classes.by_index(795).wnid]) == "0"
    assert real_labels.real_field(2, [classes.by_index(5).wnid]) == ""
    assert real_labels.format_field([5, 3, 5]) == "3 5"
