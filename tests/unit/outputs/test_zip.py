"""--output zip read back the way EDM2's (and the StyleGAN family's) ImageFolderDataset reads a zip: sorted
namelist filtered by PIL's extensions, labels from dataset.json, one shape; images in dataset_tool's order of the
same build as an ImageFolder tree (sorted <wnid>/<file>), byte for byte; deterministic; check finds damage."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import run_build

from imagenet_prep.errors import UsageError
from imagenet_prep.outputs import check_output
from imagenet_prep.outputs.zip import entry_name

OPTIONS = {"resize": "adm", "size": 32, "format": "png"}


def edm2_load(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """ImageFolderDataset's zip reading: names = sorted image entries by PIL's extensions; labels looked up in
    dataset.json by name; each image np.array(PIL.Image.open(f)), HWC -> CHW; one raw shape for all."""
    Image.init()
    with zipfile.ZipFile(path) as archive:
        names = sorted(n for n in archive.namelist() if Path(n).suffix.lower() in Image.EXTENSION)
        labels = dict(json.loads(archive.read("dataset.json"))["labels"])
        images = []
        for name in names:
            with archive.open(name) as handle:
                images.append(np.array(Image.open(handle)).transpose(2, 0, 1))
    return np.stack(images), np.array([labels[name] for name in names], dtype=np.int64), names


@pytest.fixture(scope="module")
def built(quirky_release, tmp_path_factory):
    root = tmp_path_factory.mktemp("zip")
    zipped, folder = root / "zip", root / "folder"
    assert run_build(quirky_release, zipped, output="zip", workers=2, **OPTIONS).ok
    assert run_build(quirky_release, folder, output="imagefolder", **OPTIONS).ok
    return zipped, folder


@pytest.mark.parametrize("split", ["train", "val"])
def test_the_zip_loads_like_edm2_and_matches_dataset_tool_over_the_imagefolder(built, split):
    zipped, folder = built
    images, labels, names = edm2_load(zipped / f"{split}.zip")
    # dataset_tool convert --source OUT/<split>: sorted relative paths, label = index of the sorted top folder
    files = sorted(str(p.relative_to(folder / split)) for p in (folder / split).rglob("*.png"))
    folders = sorted({name.split("/")[0] for name in files})
    assert names == [entry_name(idx) for idx in range(len(files))] and len(files) > 10
    assert names[0] == "00000/img00000000.png"
    assert images.shape == (len(files), 3, 32, 32) and images.dtype == np.uint8
    wanted_labels = [folders.index(name.split("/")[0]) for name in files]
    # the build's label space here is the built classes, sorted: dataset_tool's labels
    assert labels.tolist() == wanted_labels
    with zipfile.ZipFile(zipped / f"{split}.zip") as archive:
        for idx, rel in enumerate(files):
            assert archive.read(entry_name(idx)) == (folder / split / rel).read_bytes()
        infos = archive.infolist()
        assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
        assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert infos[-1].filename == "dataset.json"


def test_a_second_build_gives_the_same_bytes(built, quirky_release, tmp_path):
    zipped, _ = built
    assert run_build(quirky_release, tmp_path / "again", output="zip", workers=1, **OPTIONS).ok
    for split in ("train", "val"):
        assert (tmp_path / "again" / f"{split}.zip").read_bytes() == (zipped / f"{split}.zip").read_bytes()


def test_check_passes_then_finds_a_corrupt_entry(built, tmp_path):
    zipped, _ = built
    assert check_output(zipped, decode=True).ok
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(zipped, copy)
    data = bytearray((copy / "val.zip").read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo(entry_name(1))
    start = info.header_offset + 30 + len(info.filename) + 40  # inside the stored PNG
    data[start] ^= 0xFF
    (copy / "val.zip").write_bytes(bytes(data))
    report = check_output(copy)
    assert not report.ok and any(entry_name(1) in problem for problem in report.problems)


def test_the_zip_needs_png_of_one_size(quirky_release, tmp_path):
    with pytest.raises(UsageError, match="--format png"):
        run_build(quirky_release, tmp_path / "a", output="zip", resize="adm", size=32)
    with pytest.raises(UsageError, match="one size"):
        run_build(quirky_release, tmp_path / "b", output="zip", format="png")
