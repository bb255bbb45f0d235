"""ImageNet-21K-P recipe: class filter, C-collation validation split, seeded holdout, published counts."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from imagenet_prep.errors import UsageError
from imagenet_prep.plan import recipes as recipes_21k
from imagenet_prep.plan.recipes import CountDifference, holdout_split, keep_class, miil_split


def listing() -> list[str]:
    """60 names where byte order, natural order and case-insensitive order all disagree."""
    names = [f"n00000001_{i}.JPEG" for i in range(1, 41)]  # _1, _10.._19 before _2 in byte order
    names += [f"N00000001_{i}.JPEG" for i in range(5)]  # upper case: before every lower-case name
    names += [
        "n00000001_x.JPEG",
        "n00000001_X.JPEG",
        "n00000001_é.JPEG",
        "n00000001_Z.JPEG",
        "n00000001_.JPEG",
    ]
    names += [f"n00000001_{i:03d}.JPEG" for i in range(10)]  # zero-padded: "000" < "1"
    return names[::-1]  # not given in order


def test_keep_class_boundary() -> None:
    assert keep_class(500) is False
    assert keep_class(501) is True
    assert keep_class(0) is False


def test_miil_val_is_the_first_50_in_byte_order() -> None:
    names = listing()
    assert len(names) == 60
    train, val = miil_split(names)
    by_bytes = sorted(names, key=lambda n: n.encode())
    assert val == tuple(by_bytes[:50]) and train == tuple(by_bytes[50:])
    assert set(train) | set(val) == set(names) and len(train) == 10
    # what that means concretely
    assert val[0] == "N00000001_0.JPEG"  # upper case first
    assert "n00000001_10.JPEG" in val and val.index("n00000001_10.JPEG") < val.index("n00000001_2.JPEG")
    assert "n00000001_9.JPEG" in train  # natural sort would have put _9 among the first 50
    assert train[-1] == "n00000001_é.JPEG"  # non-ASCII bytes sort last
    assert train[-4:] == ("n00000001_X.JPEG", "n00000001_Z.JPEG", "n00000001_x.JPEG", "n00000001_é.JPEG")
    assert val[5:7] == ("n00000001_.JPEG", "n00000001_000.JPEG")  # "." < digits; "000" < "1"
    natural = sorted(
        names, key=lambda n: [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", n)]
    )
    assert tuple(natural[:50]) != val  # the test would catch a natural sort
    assert tuple(sorted(names, key=str.lower)[:50]) != val  # and a case-insensitive one


def test_miil_split_matches_ls_under_the_c_locale(tmp_path) -> None:
    for name in listing():
        (tmp_path / name).write_bytes(b"")
    env = {**os.environ, "LC_ALL": "C"}
    shown = subprocess.run(["ls", "-1"], cwd=tmp_path, env=env, capture_output=True, check=True).stdout
    ls_order = shown.decode().splitlines()
    _, val = miil_split(os.listdir(tmp_path))
    assert val == tuple(ls_order[:50])


def test_repeated_names_are_refused() -> None:
    with pytest.raises(UsageError, match="more than once"):
        miil_split(["a.JPEG", "b.JPEG", "a.JPEG"])


def test_holdout_is_seeded_per_class_and_independent_of_listing_order() -> None:
    names = [f"n01440764_{i}.JPEG" for i in range(300)]
    train, held = holdout_split(names, 25, seed=0, wnid="n01440764")
    assert len(held) == 25 and len(train) == 275 and set(train) | set(held) == set(names)
    assert held == tuple(sorted(held, key=lambda n: n.encode()))
    assert holdout_split(names[::-1], 25, 0, "n01440764") == (train, held)  # order-independent
    assert holdout_split(names, 25, 1, "n01440764")[1] != held  # another seed, another draw
    assert holdout_split(names, 25, 0, "n01443537")[1] != held  # another class, another draw
    assert held != tuple(sorted(names, key=lambda n: n.encode())[:25])  # random, not the first ones
    # pinned: the same draw on every machine and Python version
    assert holdout_split([f"f{i}" for i in range(10)], 3, 7, "n00000001")[1] == PINNED


PINNED = ("f2", "f4", "f6")  # recorded once; a change of the draw would silently change users' splits


def test_holdout_keeps_train_non_empty_and_validates_n() -> None:
    train, held = holdout_split(["a", "b", "c"], 10, 0, "n1")
    assert len(train) == 1 and len(held) == 2
    train, held = holdout_split(["a", "b", "c"], 10, 0, "n1", min_train=0)
    assert train == () and held == ("a", "b", "c")
    assert holdout_split(["a", "b"], 0, 0, "n1") == (("a", "b"), ())
    for bad in (-1, 1.5, True):
        with pytest.raises(UsageError, match="holdout"):
            holdout_split(["a"], bad, 0, "n1")  # type: ignore[arg-type]


def test_miil_target_size() -> None:
    assert recipes_21k.miil_target_size(500, 375) == (224, 224)
    assert recipes_21k.miil_target_size(223, 100) is None  # copied unchanged
    assert recipes_21k.miil_target_size(224, 100) == (224, 224)
    assert recipes_21k.miil_target_size(224, 224) is None


def test_published_counts_and_comparison() -> None:
    fall11 = recipes_21k.PUBLISHED["fall11"]
    assert (fall11.classes, fall11.train, fall11.val) == (11_221, 11_797_632, 561_052)
    winter21 = recipes_21k.PUBLISHED["winter21"]
    assert (winter21.classes, winter21.train, winter21.val) == (10_450, 11_060_223, 522_500)
    same = {"classes": 10_450, "train": 11_060_223, "val": 522_500}
    assert recipes_21k.compare_with_published("winter21", same) == ()
    differences = recipes_21k.compare_with_published(
        "fall11", {"classes": 11_221, "train": 11_797_600, "val": 561_050}
    )
    assert differences == (
        CountDifference("train", 11_797_600, 11_797_632),
        CountDifference("val", 561_050, 561_052),
    )
    assert differences[0].describe() == "train: built 11,797,600, published 11,797,632 (-32)"
    assert recipes_21k.compare_with_published("fall11", {"classes": 1}) == (
        CountDifference("classes", 1, 11_221),
    )
    with pytest.raises(UsageError, match="fall11, winter21"):
        recipes_21k.compare_with_published("spring22", same)


def test_miil_summary_from_class_counts() -> None:
    counts = {"n1": 500, "n2": 501, "n3": 1300, "n4": 12}
    assert recipes_21k.miil_summary(counts) == {"classes": 2, "train": 451 + 1250, "val": 100}
