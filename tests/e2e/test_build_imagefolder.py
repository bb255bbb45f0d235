"""End-to-end builds of miniature releases written in the exact ILSVRC2012 format (issue 4's acceptance)."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import pytest
from PIL import Image
from support import cli, read_manifest, run_build, snapshot

from imagenet_prep import classes
from imagenet_prep.outputs.imagefolder_check import check_tree

IMAGE_SUFFIXES = {".JPEG", ".png", ".webp"}


def train_member_bytes(release, wnid: str, name: str) -> bytes:
    with tarfile.open(release.train_tar) as outer:
        inner_bytes = outer.extractfile(f"{wnid}.tar").read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        return inner.extractfile(name).read()


@pytest.fixture(scope="module")
def full_build(quirky_release, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "out"
    result = run_build(quirky_release, out, workers=2, allow_skips=False)
    return out, result


def test_full_build_places_every_image_per_ground_truth(quirky_release, full_build):
    out, result = full_build
    assert result.skipped == ()
    expected_train = {
        f"train/{wnid}/{Path(name).stem}.JPEG"
        for wnid, names in quirky_release.train_files.items()
        for name in names
    }
    expected_val = {f"val/{wnid}/{Path(name).stem}.JPEG" for name, wnid in quirky_release.val_files.items()}
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.suffix in IMAGE_SUFFIXES}
    assert written == expected_train | expected_val
    for split, expected in (("train", expected_train), ("val", expected_val)):
        rows = read_manifest(out, split)
        assert {row["path"] for row in rows} == expected
    # Counts per class equal the archive's.
    for wnid, names in quirky_release.train_files.items():
        assert result.counts["train"][wnid] == len(names)
        assert len(list((out / "train" / wnid).iterdir())) == len(names)
    record = json.loads((out / "build.json").read_text())
    assert record["counts"]["train"]["images"] == sum(len(n) for n in quirky_release.train_files.values())
    assert record["counts"]["val"]["images"] == len(quirky_release.val_files)
    assert {source["file"] for source in record["sources"]} >= {
        "ILSVRC2012_img_train.tar",
        "ILSVRC2012_img_val.tar",
    }
    assert all(len(source["md5"]) == 32 for source in record["sources"] if source["bytes"])
    assert check_tree(out, decode=True).ok


def test_label_maps_agree_with_each_other_and_the_manifests(quirky_release, full_build):
    out, _ = full_build
    wnids = (out / "labels.txt").read_text().split()
    assert wnids == sorted(quirky_release.wnids)
    index = json.loads((out / "class_index.json").read_text())
    assert [index[str(i)][0] for i in range(len(wnids))] == wnids
    assert [index[str(i)][1] for i in range(len(wnids))] == [classes.by_wnid(w).name for w in wnids]
    with (out / "classes.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["wnid"] for row in rows] == wnids
    for row in rows:
        info = classes.by_wnid(row["wnid"])
        assert int(row["imagenet1k_index"]) == info.index
        assert int(row["ilsvrc2012_id"]) == info.ilsvrc2012_id
        assert int(row["tf_index"]) == info.index + 1
    for split in ("train", "val"):
        for row in read_manifest(out, split):
            assert wnids[int(row["label"])] == row["wnid"]


def test_imagefolder_style_reader_matches_labels(full_build):
    """A plain ImageFolder: sorted class folders are the classes; the label of a file is its folder's index."""
    out, _ = full_build
    labels_txt = (out / "labels.txt").read_text().split()
    for split in ("train", "val"):
        class_dirs = sorted(p.name for p in (out / split).iterdir() if p.is_dir())
        assert class_dirs == labels_txt
        samples = {
            f"{split}/{d}/{f.name}": i
            for i, d in enumerate(class_dirs)
            for f in sorted((out / split / d).iterdir())
        }
        manifest = {row["path"]: int(row["label"]) for row in read_manifest(out, split)}
        assert samples == manifest
        for rel in list(samples)[:5]:
            with Image.open(out / rel) as image:
                image.load()
                assert image.mode == "RGB"


def test_quirk_files_come_out_as_rgb_jpegs_and_are_recorded(quirky_release, full_build):
    out, result = full_build
    assert quirky_release.quirk_files, "the quirky release must hold quirk files"
    repaired = {issue.file: issue.reason for issue in result.repaired}
    for name in quirky_release.quirk_files:
        wnid = name.split("_")[0]
        path = out / "train" / wnid / f"{Path(name).stem}.JPEG"
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            image.load()
    assert "train/n02105855_2933.JPEG" in repaired
    assert "png" in repaired["train/n02105855_2933.JPEG"].lower()
    record = json.loads((out / "build.json").read_text())
    assert any(item["file"] == "train/n02105855_2933.JPEG" for item in record["repaired"])


@pytest.mark.parametrize(
    ("mode", "size"), [("shorter", 40), ("square", 32), ("longer", 50), ("center-crop", 30)]
)
def test_resize_modes_give_the_promised_geometry(quirky_release, tmp_path, mode, size):
    out = tmp_path / "out"
    run_build(quirky_release, out, resize=mode, size=size, splits="train", classes="n01440764,n02105855")
    rows = read_manifest(out, "train")
    assert rows
    for row in rows:
        with Image.open(out / row["path"]) as image:
            width, height = image.size
        assert (width, height) == (int(row["width"]), int(row["height"]))
        if mode == "shorter":
            assert min(width, height) <= size
        if mode == "longer":
            assert max(width, height) <= size
        if mode in ("square", "center-crop"):
            assert width == height <= size
    if mode == "square":
        assert all((int(r["width"]), int(r["height"])) == (size, size) for r in rows)


def test_shorter_side_equals_size_unless_the_source_is_smaller(quirky_release, tmp_path):
    out = tmp_path / "out"
    run_build(quirky_release, out, resize="shorter", size=40, splits="train")
    for row in read_manifest(out, "train"):
        wnid, name = row["wnid"], Path(row["path"]).stem + ".JPEG"
        with Image.open(io.BytesIO(train_member_bytes(quirky_release, wnid, name))) as source:
            source_short = min(source.size)
        assert min(int(row["width"]), int(row["height"])) == min(40, source_short)


def test_resize_none_writes_clean_jpegs_byte_for_byte(quirky_release, tmp_path):
    out = tmp_path / "out"
    wnid = "n01440764"
    run_build(quirky_release, out, resize="none", splits="train", classes=wnid)
    for name in quirky_release.train_files[wnid]:
        if name in quirky_release.quirk_files:
            continue
        assert (out / "train" / wnid / name).read_bytes() == train_member_bytes(quirky_release, wnid, name)


def test_subset_imagenette_builds_exactly_its_classes(quirky_release, tmp_path):
    out = tmp_path / "out"
    result = run_build(quirky_release, out, subset="imagenette")
    expected = sorted(classes.subset_wnids("imagenette"))
    assert (out / "labels.txt").read_text().split() == expected
    assert sorted(result.counts["train"]) == expected


def test_under_dog_builds_the_dogs_of_the_release(dog_release, tmp_path):
    out = tmp_path / "out"
    run_build(dog_release, out, under="dog.n.01")
    dogs = sorted(w for w in dog_release.wnids if 151 <= classes.by_wnid(w).index <= 268)
    assert len(dogs) == 4
    assert (out / "labels.txt").read_text().split() == dogs


def test_per_class_sampling_is_exact_and_seeded(dog_release, tmp_path):
    chosen = "n01440764,n02085620,n02123045"

    def files(out: Path, seed: int) -> dict[str, list[str]]:
        result = run_build(dog_release, out, classes=chosen, train_per_class=3, val_per_class=1, seed=seed)
        assert all(count == 3 for count in result.counts["train"].values())
        assert all(count == 1 for count in result.counts["val"].values())
        return {split: sorted(row["path"] for row in read_manifest(out, split)) for split in ("train", "val")}

    first = files(tmp_path / "a", seed=7)
    assert files(tmp_path / "b", seed=7) == first
    assert len(first["train"]) == 9 and len(first["val"]) == 3
    others = [files(tmp_path / f"s{seed}", seed=seed) for seed in (8, 9)]
    assert any(other["train"] != first["train"] for other in others)


def test_same_config_twice_gives_byte_identical_trees(dog_release, tmp_path):
    run_build(dog_release, tmp_path / "a", workers=2)
    run_build(dog_release, tmp_path / "b", workers=1)
    first = snapshot(tmp_path / "a")
    assert first == snapshot(tmp_path / "b")
    assert len(first) > 40


def test_rerun_resumes_and_different_config_is_refused(dog_release, tmp_path):
    out = tmp_path / "out"
    first = run_build(dog_release, out)
    again = run_build(dog_release, out)
    assert again.units_resumed == again.units_total == first.units_total
    done = cli(
        "build", "--source", str(dog_release.root), "--out", str(out), "--size", "32", "--workers", "1"
    )
    assert done.returncode == 2
    assert "different configuration" in done.stderr and "--overwrite" in done.stderr
    assert "Traceback" not in done.stderr
    replaced = cli(
        "build", "--source", str(dog_release.root), "--out", str(out), "--size", "32", "--workers", "1",
        "--overwrite", "--quiet",
    )  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert max(min(int(r["width"]), int(r["height"])) for r in read_manifest(out, "train")) == 32


def test_cli_build_and_check_round_trip(dog_release, tmp_path):
    out = tmp_path / "out"
    done = cli("build", "--source", str(dog_release.root), "--out", str(out), "--size", "40", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "Built" in done.stdout
    assert cli("check", str(out), "--decode").returncode == 0
    victim = out / read_manifest(out, "val")[0]["path"]
    victim.write_bytes(victim.read_bytes()[:100])
    checked = cli("check", str(out), "--decode")
    assert checked.returncode == 1
    assert victim.name in checked.stderr
    victim.unlink()
    assert "missing" in cli("check", str(out)).stderr


def test_config_file_with_cli_overrides(dog_release, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("subset: imagewoof\nresize: square\nsize: 24\nclasses: null\n")
    out = tmp_path / "out"
    # --classes on the command line is combined with the file's subset: that is a usage error.
    clash = cli("build", "--config", str(config), "--source", str(dog_release.root), "--out", str(out),
                "--classes", "n01440764")  # fmt: skip
    assert clash.returncode == 2 and "Choose one of" in clash.stderr
    config.write_text("classes: n01440764,n02085620\nresize: square\nsize: 24\n")
    done = cli("build", "--config", str(config), "--source", str(dog_release.root), "--out", str(out),
               "--size", "20", "-q")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = read_manifest(out, "train")
    assert {(r["width"], r["height"]) for r in rows} == {("20", "20")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--classes", "n0144076"], "not an ImageNet-1K class"),
        (["--classes", "tenchh"], "tench"),
        (["--subset", "imagenet"], "Known subsets"),
        (["--resize", "squash"], "center-crop"),
        (["--quality", "0"], "quality"),
        (["--classes", "n01443537"], "not in the source archives"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(dog_release, tmp_path, args, message):
    done = cli("build", "--source", str(dog_release.root), "--out", str(tmp_path / "o"), *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_missing_archive_names_the_file_and_the_fix(tmp_path):
    (tmp_path / "src").mkdir()
    done = cli("build", "--source", str(tmp_path / "src"), "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "ILSVRC2012_img_train.tar" in done.stderr and "imagenet-prep fetch" in done.stderr
    assert not (tmp_path / "o" / "train").exists()
