"""The layouts a user may hold, beyond the contract every layout keeps (tests/contract/test_sources.py: detection,
index, the same tree as the official archives): streamed subsets, the CLI's messages, inspect, kill -9 + resume,
the face-blurred release's gaps, cached stream listings, a Kaggle CLS-LOC folder, a one-class read of the zip.

One generated release (12 classes: the Imagenette ten and the two quirk classes, with a CMYK JPEG, a PNG named
.JPEG, a grayscale and a progressive image) is written in every layout by ``imagenet_prep.sample.repack``
(real tars, zips, gzip streams and Parquet files).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import cli
from support.build import build_record as run_build
from support.kill_trial import kill_after_first_unit
from support.tree import tree_hashes as tree

from imagenet_prep.sample import SampleSpec
from imagenet_prep.sample.repack import EXTRA_LAYOUTS, LAYOUTS, write_layouts
from imagenet_prep.sources import SOURCES, detect_layouts

SPEC = SampleSpec(classes=12, train_per_class=4, val_per_class=2, quirks=True, seed=7)
FULL = {"resize": "square", "size": 32, "workers": 1}


@pytest.fixture(scope="session")
def layouts(tmp_path_factory: pytest.TempPathFactory):
    return write_layouts(tmp_path_factory.mktemp("layouts"), SPEC, LAYOUTS + EXTRA_LAYOUTS)


@pytest.fixture(scope="session")
def reference(layouts, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """The official-archive layout's tree: a full resized build."""
    base = tmp_path_factory.mktemp("reference")
    run_build(layouts["ilsvrc"].root, base / "full", **FULL)
    return {"full": tree(base / "full")}


def test_streamed_subset_warns_and_counts_the_shard_bytes(layouts, tmp_path):
    source = layouts["hf-tar"].root
    shards = sorted((source / "data").glob("*.tar.gz"))
    record = run_build(source, tmp_path / "o", subset="imagenette", workers=2)
    assert any("cannot seek" in warning for warning in record["warnings"])
    # Every shard holding a chosen image is read from its start; the bytes read are the compressed ones.
    assert 0 < record["bytes_read"]["images"] <= sum(p.stat().st_size for p in shards)
    assert record["units"]["total"] == 6  # one unit per shard: 5 train + 1 val


def test_summary_line_and_build_record_name_the_layout(layouts, tmp_path):
    done = cli(
        "build",
        "--source",
        str(layouts["kaggle"].root),
        "--out",
        str(tmp_path / "o"),
        "--workers",
        "1",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    assert "from the kaggle layout" in done.stdout
    assert json.loads((tmp_path / "o" / "build.json").read_text())["config"]["layout"] is None


@pytest.mark.parametrize("case", ["two-layouts", "empty"])
def test_unknown_or_ambiguous_folder_is_one_line_exit_2(layouts, tmp_path, case):
    src = tmp_path / "src"
    src.mkdir()
    if case == "two-layouts":
        shutil.copy(layouts["kaggle-zip"].root / "imagenet-object-localization-challenge.zip", src)
        shutil.copytree(layouts["hf-tar"].root / "data", src / "data")
    done = cli("build", "--source", str(src), "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "train").exists()
    if case == "two-layouts":
        assert "several layouts (kaggle-zip, hf-tar)" in done.stderr and "--layout" in done.stderr
        # --layout picks one of them.
        record = run_build(src, tmp_path / "o2", layout="hf-tar", workers=1)
        assert record["layout"] == "hf-tar" and record["config"]["layout"] == "hf-tar"
    else:
        for name, cls in SOURCES.items():
            assert f"{name}: {cls.needs}" in done.stderr


def test_a_random_folder_or_an_unknown_layout_name_is_an_input_error(tmp_path):
    from imagenet_prep.errors import ImagenetPrepError
    from imagenet_prep.sources import open_source

    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ImagenetPrepError) as caught:
        open_source(tmp_path)
    assert caught.value.exit_code == 2 and "holds no ImageNet layout" in str(caught.value)
    assert all(f"{name}: {cls.needs}" in str(caught.value) for name, cls in SOURCES.items())
    with pytest.raises(ImagenetPrepError, match="choose one of ilsvrc, kaggle, kaggle-zip") as caught:
        open_source(tmp_path, layout="foo")
    assert caught.value.exit_code == 2


def test_inspect_reports_layout_splits_counts_and_what_is_missing(layouts, tmp_path):
    done = cli("inspect", str(layouts["hf-parquet"].root), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["layout"] == "hf-parquet"
    assert report["splits"] == {
        "train": {"classes": 12, "images": 48, "refused": 0},
        "val": {"classes": 12, "images": 24, "refused": 0},
    }
    assert report["missing"] == []
    # A Kaggle folder without its val labels: the split and the file are reported missing, nothing is built.
    src = tmp_path / "kaggle"
    shutil.copytree(layouts["kaggle"].root, src)
    (src / "LOC_val_solution.csv").unlink()
    shutil.rmtree(src / "ILSVRC/Data/CLS-LOC/train")
    done = cli("inspect", str(src))
    assert "layout kaggle" in done.stdout
    assert (
        "ILSVRC/Data/CLS-LOC/train/ (train)" in done.stdout
        and "LOC_val_solution.csv (val labels)" in done.stdout
    )
    assert "problem: val: LOC_val_solution.csv is missing" in done.stdout
    assert done.returncode == 1
    assert not any(p.name == "build.json" for p in tmp_path.rglob("*"))


def test_sample_cli_writes_a_layout(tmp_path):
    done = cli(
        "sample",
        str(tmp_path / "s"),
        "--layout",
        "hf-tar",
        "--classes",
        "2",
        "--train-per-class",
        "1",
        "--val-per-class",
        "1",
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "s" / "data").iterdir()) == [
        *(f"train_images_{k}.tar.gz" for k in range(5)),
        "val_images.tar.gz",
    ]
    assert detect_layouts(tmp_path / "s") == ["hf-tar"]


def test_kill_9_mid_build_then_resume_gives_the_same_tree_for_a_streamed_source(layouts, reference, tmp_path):
    out = tmp_path / "o"
    argv = [
        sys.executable, "-m", "imagenet_prep", "build", "--source", str(layouts["hf-tar"].root), "--out", str(out),
        "--resize", "square", "--size", "32", "--workers", "2", "--quiet",
    ]  # fmt: skip
    # Kill as soon as the first unit is done (one shard finished, five to go).
    killed = kill_after_first_unit(argv, out, units=6)
    assert killed and not (out / "build.json").exists()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    resumed = re.search(r"resumed (\d+) of 6 units", done.stdout)
    assert resumed and 1 <= int(resumed.group(1)) < 6  # finished shards are not read again
    assert tree(out) == reference["full"]
    assert cli("check", str(out), "--decode").returncode == 0


# The CLI in a subprocess, with the streamed layouts' units of 7 samples (250 in a real build): the miniature's
# streams are then cut into several units each.
_SMALL_UNITS = (
    "import runpy, sys; from imagenet_prep.sources import streamed; streamed.StreamedSource.UNIT_SIZE = 7; "
    "sys.argv[0] = 'imagenet-prep'; runpy.run_module('imagenet_prep', run_name='__main__')"
)


def test_a_stream_cut_into_units_gives_the_same_units_and_tree_with_any_worker_count_and_resumes_after_kill_9(
    layouts, reference, tmp_path
):
    def argv(out: Path, workers: int) -> list[str]:
        return [
            sys.executable, "-c", _SMALL_UNITS, "build", "--source", str(layouts["blurred"].root), "--out",
            str(out), "--resize", "square", "--size", "32", "--workers", str(workers), "--json",
        ]  # fmt: skip

    units = {}
    for workers in (1, 2):
        done = subprocess.run(
            argv(tmp_path / f"w{workers}", workers), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        record = json.loads((tmp_path / f"w{workers}" / "build.json").read_text())
        units[workers] = record["units"]["total"]
        assert tree(tmp_path / f"w{workers}") == reference["full"]
    # 48 train images in one stream, 24 val in another: 7 + 4 units, whatever the worker count.
    assert units == {1: 11, 2: 11}
    out = tmp_path / "killed"
    killed = kill_after_first_unit(argv(out, 2), out, units=11)
    assert killed and not (out / "build.json").exists()
    done = subprocess.run(argv(out, 2), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert 1 <= summary["units"]["already_built"] < 11  # units finished before the kill are not read again
    assert tree(out) == reference["full"]


def test_blurred_release_lists_the_val_images_it_lacks(layouts, tmp_path, monkeypatch):
    import gzip
    import io
    import tarfile

    from imagenet_prep.sources import blurred

    src = tmp_path / "src"
    src.mkdir()
    with gzip.open(layouts["blurred"].root / "val_blurred.tar.gz") as handle:
        raw = handle.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as old, tarfile.open(fileobj=buf, mode="w") as new:
        members = [m for m in old if m.isfile()]
        dropped = members[0]
        for member in members[1:]:
            new.addfile(member, old.extractfile(member))
    (src / "val_blurred.tar.gz").write_bytes(gzip.compress(buf.getvalue()))
    # The comparison runs for a (nearly) full val archive: 23 images stand for the full release here.
    monkeypatch.setattr(blurred, "FULL_VAL", 23)
    source = blurred.BlurredSource(src, cache_dir=tmp_path / "cache")
    wnid = dropped.name.split("/")[1]
    index = source.index("val", source.classes("val"), None)
    [warning] = [w for w in index.warnings if "not in the face-blurred release" in w]
    # The bundled labels expect 50 val images of each class; the archive holds 2 per class minus the one dropped.
    assert warning.startswith(f"val: {12 * 50 - 23} validation images of the chosen classes are not in")
    # Only the dropped image's class: its 49 absent names, listed (the first 20) in name order.
    [warning] = [w for w in source.index("val", (wnid,), None).warnings if "not in the face-blurred" in w]
    assert warning.startswith("val: 49 validation images")
    assert warning.count("ILSVRC2012_val_") == 20 and warning.endswith(" ....")
    assert all(f.key != Path(dropped.name).stem for f in index.files[wnid])


def test_a_stream_is_listed_once_then_its_cached_listing_is_used_until_it_changes(layouts, tmp_path):
    from imagenet_prep.sources.streamed import StreamListing, list_streams

    shard = tmp_path / "train_images_0.tar.gz"
    shutil.copy(layouts["hf-tar"].root / "data" / "train_images_0.tar.gz", shard)
    first = StreamListing(shard)
    assert first.members is None
    assert list_streams([first]) > 0  # streamed once: compressed bytes read
    again = StreamListing(shard)
    assert again.members == first.members and list_streams([again]) == 0  # from the cache beside the shard
    assert again.cache_path == tmp_path / "train_images_0.tar.gz.index.json"
    os.utime(shard, ns=(0, 0))  # another mtime: the cache is stale and ignored
    assert StreamListing(shard).members is None


def test_a_kaggle_cls_loc_folder_reads_as_an_imagefolder_labelled_by_the_csv_above_it(
    layouts, reference, tmp_path
):
    root = layouts["kaggle"].root / "ILSVRC" / "Data" / "CLS-LOC"
    assert detect_layouts(root) == ["imagefolder"]
    record = run_build(root, tmp_path / "o", **FULL)
    assert tree(tmp_path / "o") == reference["full"]
    assert any(s["file"] == "LOC_val_solution.csv" for s in record["sources"])


def test_one_class_from_the_kaggle_zip_reads_about_its_share_of_the_zip(layouts, tmp_path):
    source = layouts["kaggle-zip"].root
    size = (source / "imagenet-object-localization-challenge.zip").stat().st_size
    wnid = layouts["kaggle-zip"].wnids[0]
    record = run_build(source, tmp_path / "o", classes=wnid, splits="train", workers=1)
    read = record["bytes_read"]
    assert 0 < read["index"] < size / 50  # the central directory and one local header per image of the class
    assert read["images"] < size / 12 * 1.5  # one class of twelve (images vary in size)
