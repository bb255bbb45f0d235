"""--images through the CLI: the SimCLR 1% list on a release whose train names include some of the list's names
(exactly those are built; the record, `check` and the repair command keep the list), the same list from two
source layouts gives the same tree, and ImageNet-LT's val (20 per class, from train) and test (the ILSVRC val
set) on a release of every class (plan only)."""

from __future__ import annotations

import hashlib
import json
import lzma
import shlex
from importlib import resources
from pathlib import Path

import pytest
from support import cli, read_manifest
from support.lists import release_of_names, release_with_train_names
from support.tree import tree_hashes

from imagenet_prep.config import build_config
from imagenet_prep.outputs import WRITERS
from imagenet_prep.outputs.record import rebuild_command
from imagenet_prep.plan import make_plan
from imagenet_prep.sample.repack import REPACKERS, read_images
from imagenet_prep.taxonomy import classes
from imagenet_prep.taxonomy.image_lists import load

WNIDS = ("n01440764", "n02102040", "n03000684")
EXTRA = 3  # train images per class that the list does not name


def _by_class(name: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for image in load(None, name).images:
        found.setdefault(image.wnid or "", []).append(f"{image.key}.JPEG")
    return found


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory):
    """The official layout holding, per class of WNIDS, the SimCLR 1% list's names of that class and EXTRA
    others; and the same images re-packed in the Kaggle layout."""
    names = {wnid: _by_class("simclr-1pct")[wnid] for wnid in WNIDS}
    root = tmp_path_factory.mktemp("simclr") / "ilsvrc"
    held = release_with_train_names(root, names, per_class=max(map(len, names.values())) + EXTRA)
    val = {name: classes.val_labels()[int(name[-13:-5]) - 1] for name in _val_names(root)}
    train, vals = read_images(root, val)
    kaggle = tmp_path_factory.mktemp("simclr") / "kaggle"
    kaggle.mkdir(exist_ok=True)
    REPACKERS["kaggle"].write(kaggle, train, vals, 0)
    return root, kaggle, names, held


def _val_names(root: Path) -> list[str]:
    from support.tars import read_members

    return [name for name, _ in read_members(root / "ILSVRC2012_img_val.tar")]


def _build(source: Path, out: Path, *more: str):
    result = cli("build", "--source", str(source), "--out", str(out), "--size", "32", "--workers", "1", *more)
    assert result.returncode == 0, result.stderr
    return result


def test_simclr_1pct_builds_exactly_the_listed_images_and_records_the_list(listed, tmp_path):
    root, _, names, held = listed
    assert all(len(held[w]) == len(names[w]) + EXTRA for w in WNIDS)  # the release holds more than the list
    out = tmp_path / "out"
    _build(root, out, "--images", "simclr-1pct", "--classes", ",".join(WNIDS))
    built = {str(p.relative_to(out / "train")) for p in (out / "train").rglob("*") if p.is_file()}
    assert built == {f"{w}/{n}" for w in WNIDS for n in names[w]}
    assert not (out / "val").exists() and not (out / "val.csv").exists()
    record = json.loads((out / "build.json").read_text())
    assert record["config"]["images"] == "simclr-1pct"
    bundled = resources.files("imagenet_prep").joinpath("data/image-lists/simclr-1pct.txt.xz").read_bytes()
    (lists,) = record["images"]["lists"]
    assert lists["sha256"] == hashlib.sha256(lzma.decompress(bundled)).hexdigest()
    assert lists["lines"] == 12_811 and record["images"]["selected"] == {"train": len(built)}
    assert "--images simclr-1pct" in rebuild_command(record["config"])
    checked = cli("check", str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the list's bytes only: a full build of the same classes reads more images
    full = tmp_path / "full"
    _build(root, full, "--classes", ",".join(WNIDS), "--splits", "train")
    full_record = json.loads((full / "build.json").read_text())
    assert record["bytes_read"]["images"] < full_record["bytes_read"]["images"]
    assert len(read_manifest(full, "train")) == sum(len(held[w]) for w in WNIDS)


def test_the_same_list_from_two_layouts_gives_the_same_tree(listed, tmp_path):
    root, kaggle, names, _ = listed
    lines = [f"train/{w}/{n} {classes.by_wnid(w).index}" for w in WNIDS for n in names[w][:4]]
    lines += [f"{name}" for name in _val_names(root)[:4]]
    path = tmp_path / "mine.txt"
    path.write_text("\n".join(lines) + "\n")
    one, two = tmp_path / "one", tmp_path / "two"
    _build(root, one, "--images", str(path))
    _build(kaggle, two, "--images", str(path))
    assert tree_hashes(one) == tree_hashes(two)
    assert len([p for p in (one / "train").rglob("*") if p.is_file()]) == 12
    assert len([p for p in (one / "val").rglob("*") if p.is_file()]) == 4


def test_a_missing_name_fails_with_one_line_and_writes_nothing(listed, tmp_path):
    root, _, _, _ = listed
    path = tmp_path / "bad.txt"
    path.write_text("n01440764_99999999.JPEG\n")
    result = cli("build", "--source", str(root), "--out", str(tmp_path / "out"), "--images", str(path))
    assert result.returncode == 2
    assert "1 listed image(s) are not in the source" in result.stderr and "--allow-missing" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # ~30 s: 70,000 members written and indexed
def test_imagenet_lt_val_and_test_sizes_per_class(tmp_path):
    """ImageNet-LT on a release of every class: val = 20 per class drawn from the TRAIN images, test = 50 per
    class = the ILSVRC2012 val set (plan only)."""
    train = _by_class("imagenet-lt-val")
    val = [classes.val_file_name(k) for k in range(1, 50_001)]
    root = release_of_names(tmp_path / "lt", train, val)
    plan = make_plan(build_config({}, {"source": root, "out": tmp_path / "out", "images": "imagenet-lt"}))
    try:
        assert plan.splits == ("val", "test")
        assert plan.counts["val"] == dict.fromkeys(sorted(train), 20) and len(plan.counts["val"]) == 1000
        assert plan.counts["test"] == dict.fromkeys(sorted(train), 50)
        val_units = [u for u in plan.units if u.split == "val"]
        assert all(
            s.location.locator.endswith("ILSVRC2012_img_train.tar") for u in val_units for s in u.samples
        )
        assert plan.record["images"]["missing"] == 0
    finally:
        plan.source.close()


@pytest.mark.parametrize("output", sorted(WRITERS))
def test_every_writer_builds_a_test_split_and_checks_it(listed, tmp_path, output):
    root, _, names, _ = listed
    path = tmp_path / "test.txt"
    path.write_text(
        "\n".join([*_val_names(root)[:3], *names[WNIDS[0]][:2]]) + "\n"
    )  # test from val and train
    out = tmp_path / output
    needs = [word for key, value in WRITERS[output].needs.items() for word in (f"--{key}", str(value))]
    _build(root, out, "--output", output, "--images", f"test={path}", *needs)  # the options it needs (PNG...)
    assert len(read_manifest(out, "test")) == 5
    assert not (out / "train.csv").exists() and not (out / "val.csv").exists()
    checked = cli("check", str(out))
    assert checked.returncode == 0 and "Checked 5 images" in checked.stdout, checked.stdout + checked.stderr


def test_the_repair_command_and_a_bare_rerun_keep_the_list(listed, tmp_path):
    root, _, names, _ = listed
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("\n".join([*names[WNIDS[1]][:3], "n01440764_99999999.JPEG"]) + "\n")
    test.write_text(f"{names[WNIDS[2]][0]} 999\n{_val_names(root)[0]}\n")
    out = tmp_path / "out"
    spec = f"train={train},test={test}"
    _build(root, out, "--images", spec, "--allow-missing", "--ignore-list-labels")
    clean = tree_hashes(out)
    assert sum(name.startswith(("train/", "test/")) for name in clean) == 5
    (out / "test" / WNIDS[2] / names[WNIDS[2]][0]).unlink()
    check = cli("check", str(out))
    assert check.returncode == 1
    repair = shlex.split(check.stderr.strip().splitlines()[-1].split(": ", 1)[1])
    assert f"--images {spec}" in shlex.join(repair)
    assert "--allow-missing" in repair and "--ignore-list-labels" in repair
    rerun = cli(*repair[1:])
    assert rerun.returncode == 0, rerun.stderr
    assert tree_hashes(out) == clean
    (out / "train.csv").unlink()
    again = cli("build", "--out", str(out))  # the recorded configuration, list included
    assert again.returncode == 0, again.stderr
    assert tree_hashes(out) == clean
    other = cli("build", "--out", str(out), "--images", f"train={train}", "--allow-missing")
    assert other.returncode == 2 and "images" in other.stderr
