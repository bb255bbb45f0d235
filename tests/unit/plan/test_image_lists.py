"""--images: every spelling of a list line, the per-split form (val drawn from train, a test split), the label and
folder check, missing names, the per-class draw after the list, and what build.json records. Plans only, on a
miniature release in the official layout (the CLI builds are in tests/e2e/test_build_image_lists.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from imagenet_prep.config import build_config
from imagenet_prep.errors import InputError, UsageError
from imagenet_prep.plan import make_plan
from imagenet_prep.sample import SampleSpec, write_sample
from imagenet_prep.taxonomy import classes
from imagenet_prep.taxonomy.image_lists import (
    PUBLISHED_SHA256,
    load,
    normalise_spec,
    parse_line,
    parse_lines,
    parse_spec,
)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(
        tmp_path_factory.mktemp("lists-release"),
        SampleSpec(classes=4, train_per_class=6, val_per_class=3, seed=11),
    )


def _plan(release, tmp_path: Path, **options):
    values = {"source": release.root, "out": tmp_path / "out", **options}
    return make_plan(build_config({}, values), cache_dir=tmp_path / "cache")


def _keys(plan) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for unit in plan.units:
        found.setdefault(unit.split, set()).update(sample.key for sample in unit.samples)
    return found


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------------ spellings
@pytest.mark.parametrize(
    ("line", "key", "split", "wnid", "label"),
    [
        ("n01440764_10026.JPEG", "n01440764_10026", "train", "n01440764", None),
        ("ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000001", "val", None, None),
        ("train/n01440764/n01440764_10026.JPEG", "n01440764_10026", "train", "n01440764", None),
        ("n01440764/n01440764_10026.JPEG 0", "n01440764_10026", "train", "n01440764", 0),
        ("val/n01440764/ILSVRC2012_val_00029930.JPEG 0", "ILSVRC2012_val_00029930", "val", "n01440764", 0),
        ("./train\\n01440764\\n01440764_7.JPEG\t12", "n01440764_7", "train", "n01440764", 12),
        ("ILSVRC2012_img_val/ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000002", "val", None, None),
        ("imagenet-a/n01498041/0.000116_clock.jpg", "0.000116_clock", None, "n01498041", None),  # an eval set
        ("x/0042", "0042", None, None, None),
    ],
)
def test_each_spelling_names_the_canonical_key(line, key, split, wnid, label):
    image = parse_line(line, 7)
    assert (image.key, image.source_split, image.wnid, image.label, image.line) == (
        key,
        split,
        wnid,
        label,
        7,
    )


def test_blank_lines_and_comments_are_ignored_and_line_numbers_kept():
    text = "# SimCLR 1%\n\nn01440764_1.JPEG  # first\n   \nval/n01440764/ILSVRC2012_val_00000293.JPEG 0\n"
    images = parse_lines(text, "list.txt")
    assert [(i.key, i.line) for i in images] == [("n01440764_1", 3), ("ILSVRC2012_val_00000293", 5)]


def test_bare_train_names_parse_as_every_other_line_does():
    """parse_lines reads a bare train file name (most lines of the SimCLR lists) in one regex: the same image
    as parse_line makes of it, beside lines that take the full parse (padded, commented, labelled, paths)."""
    lines = [
        "n01440764_10026.JPEG",
        " n01440764_10027.JPEG",
        "n01440764_3.JPEG # c",
        "n01440764_4.JPEG 0",
        "train/n01440764/n01440764_5.JPEG",
        "n01440764_6.jpeg",
        "n01440764_7.JPEG.JPEG",
        "ILSVRC2012_val_00000001.JPEG",
    ]
    images = parse_lines("\n".join(lines), "list.txt")
    assert images == [parse_line(line.split("#")[0].strip(), n) for n, line in enumerate(lines, 1)]
    assert [image.key for image in images[:2]] == ["n01440764_10026", "n01440764_10027"]
    assert images[0].wnid is images[4].wnid is images[3].wnid  # one string per class


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("a b c", "line 4"),
        ("n01440764_1.JPEG zero", "line 4"),
        ("../n01440764_1.JPEG", "relative path"),
        ("val/n01440764/n01440764_1.JPEG", "ILSVRC2012 train image"),
        ("n02102040/n01440764_1.JPEG", "folder n02102040"),
    ],
)
def test_a_line_that_is_no_image_is_an_error_naming_the_line(line, says):
    with pytest.raises(InputError, match=says) as caught:
        parse_lines("\n\n\n" + line + "\n", "my.txt")
    assert "my.txt line 4" in str(caught.value)


# ------------------------------------------------------------------------------------------------ specs
def test_specs_bundled_and_per_split(tmp_path):
    listed = _write(tmp_path, "a.txt", ["n01440764_1.JPEG"])
    assert parse_spec("imagenet-lt") == (("val", "imagenet-lt-val"), ("test", "imagenet-lt-test"))
    assert parse_spec(f"train={listed},val=imagenet-lt-val") == (
        ("train", str(listed.resolve())),
        ("val", "imagenet-lt-val"),
    )
    assert parse_spec(str(listed)) == ((None, str(listed.resolve())),)
    assert normalise_spec("simclr-1pct") == "simclr-1pct"
    for bad, says in [
        (f"dev={listed}", "SPLIT=LIST"),
        ("val=imagenet-lt", "several splits"),
        (f"train={listed},train=simclr-1pct", "twice"),
        (str(tmp_path / "absent.txt"), "neither a file nor a bundled list"),
    ]:
        with pytest.raises(UsageError, match=says):
            parse_spec(bad)


def test_bundled_lists_are_the_published_lines():
    sizes = {
        "simclr-1pct": 12_811,
        "simclr-10pct": 128_116,
        "imagenet-lt-val": 20_000,
        "imagenet-lt-test": 50_000,
    }
    for name, size in sizes.items():
        listed = load(None, name)
        assert len(listed.images) == size and name in PUBLISHED_SHA256
        assert len({image.key for image in listed.images}) == size
    one = {i.key for i in load("train", "simclr-1pct").images}
    ten = {i.key for i in load("train", "simclr-10pct").images}
    assert one < ten  # the 1% fraction is inside the 10% one
    lt_val = load("val", "imagenet-lt-val").images
    assert {i.source_split for i in lt_val} == {"train"}
    assert all(i.label == classes.by_wnid(i.wnid).index for i in lt_val[:500])
    test = load("test", "imagenet-lt-test").images
    assert {i.key for i in test} == {Path(classes.val_file_name(k)).stem for k in range(1, 50_001)}
    assert all(classes.val_labels()[int(i.key[-8:]) - 1] == i.wnid for i in test)


def test_config_takes_the_lists_splits_and_refuses_what_does_not_fit(tmp_path):
    base = {"source": tmp_path / "src", "out": tmp_path / "out"}
    assert build_config({}, {**base, "images": "imagenet-lt"}).splits == ("val", "test")
    assert build_config({}, {**base, "images": "simclr-10pct"}).splits == ("train",)
    for values, says in [
        ({"splits": "train,test"}, "'test' needs an image list"),
        ({"images": "simclr-1pct", "splits": "train,val"}, "gives lists for train only"),
        ({"images": "simclr-1pct", "holdout": 3}, "drop --holdout"),
        ({"allow_missing": True}, "goes with --images"),
    ]:
        with pytest.raises(UsageError, match=says):
            build_config({}, {**base, **values})


# ------------------------------------------------------------------------------------------------ plans
def test_a_plain_list_builds_exactly_its_images_each_in_its_own_split(release, tmp_path):
    wnid = release.wnids[0]
    train = [n for names in release.train_files.values() for n in names[:2]]
    val = list(release.val_files)[:3]
    lines = ["# mixed spellings", *train[:2], f"train/{train[2]}".replace("train/", f"train/{train[2][:9]}/")]
    lines += [f"{train[3][:9]}/{train[3]} {classes.by_wnid(train[3][:9]).index}", *train[4:]]
    lines += [f"val/{release.val_files[val[0]]}/{val[0]}", *val[1:]]
    plan = _plan(release, tmp_path, images=str(_write(tmp_path, "list.txt", lines)))
    assert _keys(plan) == {"train": {n[:-5] for n in train}, "val": {n[:-5] for n in val}}
    assert plan.class_set.wnids == release.wnids  # the label space is the full build's
    assert plan.counts["train"][wnid] == 2
    record = plan.record["images"]
    assert record["lists"][0]["sha256"] == hashlib.sha256((tmp_path / "list.txt").read_bytes()).hexdigest()
    assert record["lists"][0]["list"] == str((tmp_path / "list.txt").resolve())
    assert record["selected"] == {"train": len(train), "val": len(val)} and record["missing"] == 0


def test_per_split_lists_val_drawn_from_train_and_a_test_split(release, tmp_path):
    names = {w: list(n) for w, n in release.train_files.items()}
    train = [n for ns in names.values() for n in ns[:4]]
    val = [n for ns in names.values() for n in ns[4:]]  # ImageNet-LT style: val from the train images
    test = list(release.val_files)
    spec = ",".join(
        f"{split}={_write(tmp_path, f'{split}.txt', lines)}"
        for split, lines in (("train", train), ("val", val), ("test", test))
    )
    plan = _plan(release, tmp_path, images=spec)
    assert plan.splits == ("train", "val", "test")
    keys = _keys(plan)
    assert keys == {
        "train": {n[:-5] for n in train},
        "val": {n[:-5] for n in val},
        "test": {n[:-5] for n in test},
    }
    val_samples = [s for u in plan.units if u.split == "val" for s in u.samples]
    assert {s.wnid for s in val_samples} == set(release.wnids)
    assert all(s.location.locator.endswith("ILSVRC2012_img_train.tar") for s in val_samples)
    test_samples = [s for u in plan.units if u.split == "test" for s in u.samples]
    assert all(s.wnid == release.val_files[s.name] for s in test_samples)
    assert len({u.unit_id for u in plan.units}) == len(plan.units)


def test_a_label_or_folder_that_disagrees_is_an_error_naming_the_file_and_line(release, tmp_path):
    name = release.train_files[release.wnids[1]][0]
    right = classes.by_wnid(release.wnids[1]).index
    bad = _write(tmp_path, "labels.txt", [f"{release.wnids[1]}/{name} {right}", f"{name} {right + 1}"])
    with pytest.raises(InputError, match=r"labels.txt line 2: .* is labelled \d+ but is class") as caught:
        _plan(release, tmp_path, images=str(bad))
    assert "--ignore-list-labels" in str(caught.value)
    val_name, val_wnid = next(iter(release.val_files.items()))
    other = next(w for w in release.wnids if w != val_wnid)
    folder = _write(tmp_path, "folders.txt", ["", f"val/{other}/{val_name}"])
    with pytest.raises(InputError, match=f"folders.txt line 2: .* listed in class {other}"):
        _plan(release, tmp_path, images=str(folder))
    trusted = _plan(release, tmp_path, images=str(bad), ignore_list_labels=True)
    assert _keys(trusted) == {"train": {name[:-5]}}
    assert [s.wnid for u in trusted.units for s in u.samples] == [release.wnids[1]]  # the source's class


def test_missing_names_are_counted_and_fail_unless_allowed(release, tmp_path):
    held = release.train_files[release.wnids[0]][:2]
    absent = [f"{release.wnids[0]}_999999.JPEG", "n09999999_1.JPEG", "ILSVRC2012_val_00049999.JPEG"]
    listed = _write(tmp_path, "some.txt", [*held, *absent])
    with pytest.raises(
        InputError, match=r"^3 listed image\(s\) are not in the source: \S*/some.txt line 3 \(\w+\), line 4 "
    ) as caught:
        _plan(release, tmp_path, images=str(listed))
    assert "--allow-missing" in str(caught.value)
    plan = _plan(release, tmp_path, images=str(listed), allow_missing=True)
    assert _keys(plan) == {"train": {n[:-5] for n in held}}
    assert plan.record["images"]["missing"] == 3
    assert any("3 listed image(s) are not in the source" in w for w in plan.warnings)


def test_classes_narrow_the_list_and_the_per_class_draw_applies_after_it(release, tmp_path):
    every = [n for ns in release.train_files.values() for n in ns[:5]]
    listed = str(_write(tmp_path, "five.txt", every))
    narrowed = _plan(release, tmp_path, images=listed, classes=release.wnids[0])
    assert _keys(narrowed) == {"train": {n[:-5] for n in release.train_files[release.wnids[0]][:5]}}
    assert narrowed.record["images"]["outside_classes"] == 15
    drawn = _plan(release, tmp_path, images=listed, train_per_class=2, seed=4)
    chosen = _keys(drawn)["train"]
    assert len(chosen) == 8 and chosen <= {n[:-5] for n in every}
    assert drawn.counts["train"] == dict.fromkeys(release.wnids, 2)
    assert _keys(_plan(release, tmp_path, images=listed, train_per_class=2, seed=4))["train"] == chosen


def test_the_list_order_does_not_change_the_plan(release, tmp_path):
    names = [n for ns in release.train_files.values() for n in ns[:3]]
    one = _plan(release, tmp_path, images=str(_write(tmp_path, "a.txt", names)))
    two = _plan(release, tmp_path, images=str(_write(tmp_path, "b.txt", names[::-1])))
    assert [u.fingerprint for u in one.units] == [u.fingerprint for u in two.units]


def test_inspect_shows_a_lists_counts_per_split_and_class(tmp_path):
    from typer.testing import CliRunner

    from imagenet_prep.cli import app

    shown = CliRunner().invoke(app, ["inspect", "--images", "imagenet-lt"])
    assert shown.exit_code == 0, shown.output
    assert "val: 20,000 images in 1,000 classes, 20..20 per class" in shown.output
    assert "test: 50,000 images in 1,000 classes, 50..50 per class" in shown.output
    mine = _write(
        tmp_path, "mine.txt", ["n01440764_1.JPEG", "n01440764_2.JPEG", "ILSVRC2012_val_00000001.JPEG"]
    )
    listed = CliRunner().invoke(app, ["inspect", "--images", f"test={mine}", "--json"])
    report = json.loads(listed.output)
    assert report["splits"]["test"]["per_class"] == {"n01440764": 2, classes.val_labels()[0]: 1}


def test_a_lists_plan_holds_only_the_listed_files_and_counts_classes_by_all(release, tmp_path, monkeypatch):
    """Memory in proportion to the list: each class is cut down to its listed files as the index is read, so
    what the list selection gets (and the plan holds) is the listed files only, from either source split.
    --min-images still counts every file a class holds, and the plan is the one the whole index gave."""
    from imagenet_prep.plan import listed as listed_module
    from imagenet_prep.plan import make as make_module

    seen: dict[str, int] = {}
    select = listed_module.select

    def spy(lists, out_splits, files, *args, **kwargs):
        for split, by_class in files.items():
            seen[split] = sum(len(kept) for kept in by_class.values())
        return select(lists, out_splits, files, *args, **kwargs)

    names = {w: list(n) for w, n in release.train_files.items()}
    train = [ns[0] for ns in names.values()]  # one image a class, each class holds 6
    val = list(release.val_files)[:2]
    spec = str(_write(tmp_path, "list.txt", [*train, *val]))
    monkeypatch.setattr(listed_module, "select", spy)
    plan = _plan(release, tmp_path / "cut", images=spec, min_images=5)
    assert seen == {"train": len(train), "val": len(val)}
    monkeypatch.setattr(make_module, "listed_only", lambda files, keys: files)  # the whole index, as before
    seen.clear()
    whole = _plan(release, tmp_path / "whole", images=spec, min_images=5)
    assert seen == {"train": 6 * len(names), "val": len(release.val_files)}
    assert [(u.unit_id, u.fingerprint) for u in plan.units] == [
        (u.unit_id, u.fingerprint) for u in whole.units
    ]
    assert plan.counts == whole.counts and plan.record == whole.record and plan.warnings == whole.warnings
    assert set(plan.counts["train"]) == set(names)  # 1 listed image a class, but 6 held: none dropped
