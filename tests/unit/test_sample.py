"""The miniature ILSVRC2012 release: real layout, real names and labels, real image bytes, reproducible."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from PIL import Image, JpegImagePlugin
from support.reference import val_labels
from typer.testing import CliRunner

from imagenet_prep import classes
from imagenet_prep.cli import app
from imagenet_prep.errors import UnknownClassError, UsageError
from imagenet_prep.sample import (
    DEVKIT_TAR,
    MD5SUMS,
    TRAIN_TAR,
    VAL_TAR,
    SampleSpec,
    choose_wnids,
    write_sample,
)

DOG_INDICES = range(151, 269)  # ImageNet-1K's dogs, Chihuahua .. Mexican hairless


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _read_release(root: Path) -> tuple[dict[str, dict[str, bytes]], dict[str, bytes]]:
    train: dict[str, dict[str, bytes]] = {}
    with tarfile.open(root / TRAIN_TAR) as outer:
        for cls in outer:
            assert cls.isreg()
            with tarfile.open(fileobj=outer.extractfile(cls)) as inner:
                train[cls.name] = {m.name: inner.extractfile(m).read() for m in inner}
    with tarfile.open(root / VAL_TAR) as tar:
        val = {m.name: tar.extractfile(m).read() for m in tar}
    return train, val


@pytest.fixture(scope="module")
def default_release(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="module")
def quirk_release(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(
        tmp_path_factory.mktemp("quirks"), SampleSpec(classes=14, train_per_class=4, quirks=True)
    )


# ------------------------------------------------------------------------------------------------ layout
def test_default_release_has_the_real_layout(default_release):
    root = default_release.root
    assert sorted(p.name for p in root.iterdir()) == sorted([TRAIN_TAR, VAL_TAR, DEVKIT_TAR, MD5SUMS])
    train, val = _read_release(root)
    wnids = default_release.wnids
    assert wnids == classes.subset_wnids("imagenette")  # 10 classes = the Imagenette ten
    assert list(train) == [f"{w}.tar" for w in wnids]
    numbers = []
    for wnid in wnids:
        names = list(train[f"{wnid}.tar"])
        assert tuple(names) == default_release.train_files[wnid] and len(names) == 10
        for name in names:
            match = re.fullmatch(rf"{wnid}_([1-9]\d*)\.JPEG", name)
            assert match, name
            numbers.append(match.group(1))
    assert len({len(n) for n in numbers}) > 1  # not fixed width, like the real names
    # Val: flat, real names of the chosen classes, their real labels, in name order.
    real = {name: wnid for name, wnid, _ in val_labels()}  # the published labels
    assert list(val) == sorted(val) == list(default_release.val_files)
    assert len(val) == 50 and all(real[name] == wnid for name, wnid in default_release.val_files.items())
    assert {w: list(default_release.val_files.values()).count(w) for w in wnids} == {w: 5 for w in wnids}
    # MD5SUMS in md5sum format, matching the bytes.
    lines = (root / MD5SUMS).read_text().splitlines()
    assert lines == [f"{_md5(root / name)}  {name}" for name in sorted([DEVKIT_TAR, TRAIN_TAR, VAL_TAR])]


def test_md5sums_checks_with_the_md5sum_tool(default_release):
    if not Path("/usr/bin/md5sum").exists():
        pytest.skip("md5sum is not installed")
    result = subprocess.run(
        ["md5sum", "-c", MD5SUMS], cwd=default_release.root, capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.count(": OK") == 3


def test_images_are_real_jpegs_with_imagenet_settings(default_release):
    train, val = _read_release(default_release.root)
    reference = io.BytesIO()
    Image.new("RGB", (16, 16)).save(reference, "JPEG", quality=96, subsampling=0)
    q96 = Image.open(reference).quantization
    for data in [*val.values(), *(d for images in train.values() for d in images.values())]:
        img = Image.open(io.BytesIO(data))
        assert img.format == "JPEG" and img.mode == "RGB"
        assert 40 <= img.width <= 120 and 40 <= img.height <= 120
        assert JpegImagePlugin.get_sampling(img) == 0  # 4:4:4, no chroma subsampling
        assert img.quantization == q96
        img.load()


def test_tar_headers_are_fixed(default_release):
    with tarfile.open(default_release.train_tar) as tar:
        infos = tar.getmembers()
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname) for i in infos} == {(1336003200, 0, 0, "", "")}
    assert (default_release.devkit.read_bytes()[4:8]) == b"\x00\x00\x00\x00"  # gzip mtime 0


# ------------------------------------------------------------------------------------------ reproducible
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    spec = SampleSpec(classes=4, train_per_class=3, val_per_class=2, quirks=True, seed=7)
    a = write_sample(tmp_path / "a", spec, workers=1)
    b = write_sample(tmp_path / "b", spec, workers=2)  # thread count must not matter
    c = write_sample(
        tmp_path / "c", SampleSpec(classes=4, train_per_class=3, val_per_class=2, quirks=True, seed=8)
    )
    for name in (TRAIN_TAR, VAL_TAR, DEVKIT_TAR, MD5SUMS):
        assert _md5(a.root / name) == _md5(b.root / name), name
    assert (a.root / MD5SUMS).read_text() == (b.root / MD5SUMS).read_text()
    assert _md5(a.root / TRAIN_TAR) != _md5(c.root / TRAIN_TAR)
    assert _md5(a.root / VAL_TAR) != _md5(c.root / VAL_TAR)
    assert a.train_files != c.train_files


# ----------------------------------------------------------------------------------------------- classes
def test_class_choice():
    hundred = choose_wnids(SampleSpec(classes=100))
    assert len(hundred) == 100 and set(classes.subset_wnids("imagenette")) <= set(hundred)
    sorted_index = {c.wnid: c.index for c in classes.all_classes()}
    dogs = [w for w in hundred if sorted_index[w] in DOG_INDICES]
    assert 15 <= len(dogs) <= 40  # about a quarter of the 90 picks
    assert choose_wnids(SampleSpec(classes=100, seed=1)) != hundred
    assert any(sorted_index[w] in DOG_INDICES for w in choose_wnids(SampleSpec(classes=11)))
    small = choose_wnids(SampleSpec(classes=4, seed=3))
    assert len(small) == 4 and set(small) <= set(classes.subset_wnids("imagenette"))
    with_quirks = choose_wnids(SampleSpec(classes=10, quirks=True))
    assert len(with_quirks) == 12 and {"n02105855", "n01739381"} <= set(with_quirks)
    assert set(classes.subset_wnids("imagenette")) <= set(with_quirks)
    assert choose_wnids(SampleSpec(wnids=("n04592741", "n01440764"))) == ("n01440764", "n04592741")
    with pytest.raises(UnknownClassError, match="n99999999"):
        SampleSpec(wnids=("n99999999",))
    for bad in (dict(classes=0), dict(train_per_class=0), dict(val_per_class=51)):
        with pytest.raises(UsageError):
            SampleSpec(**bad)


# ------------------------------------------------------------------------------------------------ quirks
def test_quirk_files_really_are_odd(quirk_release):
    train, _ = _read_release(quirk_release.root)
    quirks = quirk_release.quirk_files
    assert sorted(quirks.values()) == sorted(
        ["cmyk_jpeg", "png_disguised_as_jpeg", "grayscale_jpeg", "progressive_jpeg"]
    )
    by_kind = {kind: name for name, kind in quirks.items()}
    assert by_kind["cmyk_jpeg"] == "n01739381_1309.JPEG"
    assert by_kind["png_disguised_as_jpeg"] == "n02105855_2933.JPEG"

    def open_member(name: str) -> tuple[Image.Image, bytes]:
        data = train[f"{name.split('_')[0]}.tar"][name]
        img = Image.open(io.BytesIO(data))
        img.load()
        return img, data

    cmyk, _ = open_member(by_kind["cmyk_jpeg"])
    assert cmyk.format == "JPEG" and cmyk.mode == "CMYK"
    png, data = open_member(by_kind["png_disguised_as_jpeg"])
    assert png.format == "PNG" and data.startswith(b"\x89PNG\r\n\x1a\n")
    gray, _ = open_member(by_kind["grayscale_jpeg"])
    assert gray.format == "JPEG" and gray.mode == "L"
    progressive, _ = open_member(by_kind["progressive_jpeg"])
    assert progressive.format == "JPEG" and progressive.mode == "RGB" and progressive.info.get("progressive")
    # Everything else is a baseline RGB JPEG.
    for images in train.values():
        for name, data in images.items():
            if name not in quirks:
                img = Image.open(io.BytesIO(data))
                assert (img.format, img.mode, bool(img.info.get("progressive"))) == ("JPEG", "RGB", False)


# ---------------------------------------------------------------------------------------------- realistic
@pytest.mark.slow
def test_realistic_800_images_are_imagenet_like_and_fast(tmp_path):
    spec = SampleSpec(classes=20, train_per_class=30, val_per_class=10, realistic=True, seed=11)
    start = time.perf_counter()
    release = write_sample(tmp_path, spec)
    elapsed = time.perf_counter() - start
    assert release.num_images == 800
    assert elapsed < 30, f"{elapsed:.1f} s"
    train, val = _read_release(release.root)
    images = [*val.values(), *(d for imgs in train.values() for d in imgs.values())]
    sizes = [Image.open(io.BytesIO(d)).size for d in images]
    mean_w = sum(w for w, _ in sizes) / len(sizes)
    mean_h = sum(h for _, h in sizes) / len(sizes)
    mean_kb = sum(len(d) for d in images) / len(images) / 1000
    assert 350 <= mean_w <= 550 and 300 <= mean_h <= 450, (mean_w, mean_h)
    assert 60 <= mean_kb <= 160, mean_kb
    assert len({w / h for w, h in sizes}) > 5  # varied aspect ratios
    assert any(max(s) > 1000 for s in sizes) and any(h > w for w, h in sizes)


# ------------------------------------------------------------------------------------- safety and progress
def test_refuses_a_folder_with_archives_unless_overwrite(tmp_path):
    spec = SampleSpec(classes=2, train_per_class=1, val_per_class=1)
    first = write_sample(tmp_path / "rel", spec)
    before = _md5(first.train_tar)
    with pytest.raises(UsageError, match="--overwrite"):
        write_sample(tmp_path / "rel", SampleSpec(classes=2, train_per_class=1, val_per_class=1, seed=1))
    assert _md5(first.train_tar) == before
    again = write_sample(
        tmp_path / "rel", SampleSpec(classes=2, train_per_class=1, val_per_class=1, seed=1), overwrite=True
    )
    assert _md5(again.train_tar) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel"]  # nothing written beside the destination
    assert sorted(p.name for p in (tmp_path / "rel").iterdir()) == sorted(
        [TRAIN_TAR, VAL_TAR, DEVKIT_TAR, MD5SUMS]
    )


def test_progress_counts_every_image(tmp_path):
    seen: list[int] = []
    release = write_sample(
        tmp_path, SampleSpec(classes=3, train_per_class=4, val_per_class=2), progress=seen.append
    )
    assert sum(seen) == release.num_images == 3 * 4 + 3 * 2


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_sample_writes_and_summarises(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "sample",
            str(tmp_path / "mini"),
            "--classes",
            "3",
            "--train-per-class",
            "2",
            "--val-per-class",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and "3 classes, 6 train + 3 val images" in lines[0]
    assert (tmp_path / "mini" / MD5SUMS).is_file()


@pytest.mark.slow  # three CLI processes writing releases
def test_cli_sample_refusal_and_options_end_to_end(tmp_path):
    dest = tmp_path / "mini"
    cmd = [
        sys.executable,
        "-m",
        "imagenet_prep",
        "sample",
        str(dest),
        "--classes",
        "2",
        "--train-per-class",
        "2",
    ]
    first = subprocess.run([*cmd, "--quirks", "--seed", "3"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "4 quirk files" in first.stdout
    refused = subprocess.run(cmd, capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.startswith("imagenet-prep: error:") and "--overwrite" in refused.stderr
    assert "Traceback" not in refused.stderr
    replaced = subprocess.run([*cmd, "--overwrite", "--realistic"], capture_output=True, text=True)
    assert replaced.returncode == 0, replaced.stderr
    _, val = _read_release(dest)
    assert len(val) == 2 * 5
