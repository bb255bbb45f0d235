"""--output npz (Downsampled ImageNet, Chrabaszcz et al.) read back with numpy: shapes and dtypes, the planar
R/G/B order pixel by pixel against an ImageFolder build of the same images at the same size and mode, labels as
ILSVRC2012_IDs (map_clsloc.txt's order), the original 10-batch split, the mean equal to a recomputed mean, each
member's bytes equal to np.save's, fixed zip timestamps; check finds a wrong mean."""

from __future__ import annotations

import io
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image
from support import read_manifest, run_build

from imagenet_prep.errors import UsageError
from imagenet_prep.outputs import check_output
from imagenet_prep.outputs.npz import batch_bounds, write_npz
from imagenet_prep.taxonomy import classes

S = 12
OPTIONS = {"resize": "downsampled", "filter": "box", "size": S, "format": "png"}
TRAIN = [f"train_data_batch_{i}.npz" for i in range(1, 11)]


@pytest.fixture(scope="module")
def built(quirky_release, tmp_path_factory):
    root = tmp_path_factory.mktemp("npz")
    npz, folder = root / "npz", root / "folder"
    assert run_build(quirky_release, npz, output="npz", workers=2, **OPTIONS).ok
    assert run_build(quirky_release, folder, output="imagefolder", **OPTIONS).ok
    return npz, folder


def load(path):
    with np.load(path, allow_pickle=False) as batch:
        return {name: batch[name] for name in batch.files}


def test_map_clsloc_order_is_the_bundled_ilsvrc2012_id():
    # map_clsloc.txt's first lines (as Imagenet32_Scripts' utils.py quotes them): n02119789 1, n02100735 2, ...
    assert [classes.by_ilsvrc_id(i).wnid for i in (1, 2, 3)] == ["n02119789", "n02100735", "n02110185"]


def test_batches_hold_the_imagefolder_pixels_in_planar_order(built):
    npz, folder = built
    manifest = read_manifest(npz, "train")
    batches = {name: load(npz / name) for name in TRAIN}
    total = sum(len(batches[name]["data"]) for name in TRAIN)
    assert total == len(manifest) == len(read_manifest(folder, "train")) > 20
    # the original split: batches 1-9 hold total // 10 rows, batch 10 the rest
    assert [len(batches[name]["data"]) for name in TRAIN] == [
        end - start for start, end in batch_bounds(total)
    ]
    assert [len(batches[name]["data"]) for name in TRAIN][:9] == [total // 10] * 9
    previous = (0, "")
    for row in manifest:
        batch = batches[row["file"]]
        data, labels = batch["data"], batch["labels"]
        assert data.dtype == np.uint8 and data.shape[1] == 3 * S * S and labels.dtype == np.int64
        number = int(row["row"])
        wnid, key = row["source"].split("/")
        pixels = np.asarray(Image.open(folder / "train" / wnid / f"{key}.png"))
        flat = data[number]
        for channel in range(3):  # all R (rows top to bottom), then G, then B
            plane = flat[channel * S * S : (channel + 1) * S * S].reshape(S, S)
            assert np.array_equal(plane, pixels[:, :, channel]), (row, channel)
        assert labels[number] == classes.by_wnid(wnid).ilsvrc2012_id == int(row["label"])
        order = (int(row["label"]), key)  # file order: classes by ILSVRC2012_ID, then names
        assert order >= previous
        previous = order
    # the mean image of the whole train split, float64, the same in every batch
    everything = np.concatenate([batches[name]["data"] for name in TRAIN])
    for name in TRAIN:
        assert batches[name]["mean"].dtype == np.float64
        assert np.array_equal(batches[name]["mean"], np.mean(everything, axis=0))


def test_val_data(built):
    npz, folder = built
    val = load(npz / "val_data.npz")
    assert sorted(val) == ["data", "labels"]
    manifest = read_manifest(npz, "val")
    assert val["data"].shape == (len(manifest), 3 * S * S) and len(manifest) > 10
    keys = [row["source"].split("/")[1] for row in manifest]
    assert keys == sorted(keys)  # file order: by name
    for number, row in enumerate(manifest):
        wnid, key = row["source"].split("/")
        pixels = np.asarray(Image.open(folder / "val" / wnid / f"{key}.png"))
        assert np.array_equal(val["data"][number], pixels.transpose(2, 0, 1).reshape(-1))
        assert val["labels"][number] == classes.by_wnid(wnid).ilsvrc2012_id


def test_members_are_np_save_bytes_with_fixed_timestamps(built, tmp_path):
    npz, _ = built
    with zipfile.ZipFile(npz / TRAIN[0]) as archive:
        infos = archive.infolist()
        assert [info.filename for info in infos] == ["data.npy", "labels.npy", "mean.npy"]
        assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
        batch = load(npz / TRAIN[0])
        for info in infos:
            saved = io.BytesIO()
            np.save(saved, batch[info.filename[:-4]])
            assert archive.read(info) == saved.getvalue()
    # np.savez of the same arrays: the same members (only the timestamps differ)
    np.savez(tmp_path / "ref.npz", **batch)
    with zipfile.ZipFile(tmp_path / "ref.npz") as ref, zipfile.ZipFile(npz / TRAIN[0]) as ours:
        assert [ref.read(name) for name in ref.namelist()] == [ours.read(name) for name in ours.namelist()]
    write_npz(tmp_path / "again.npz", [(name, array, None) for name, array in batch.items()])
    assert (tmp_path / "again.npz").read_bytes() == (npz / TRAIN[0]).read_bytes()


def test_check_passes_then_finds_a_wrong_mean(built, tmp_path):
    npz, _ = built
    assert check_output(npz, decode=True).ok
    copy = tmp_path / "copy"
    shutil.copytree(npz, copy)
    batch = load(copy / TRAIN[3])
    batch["mean"] = batch["mean"] + 0.5
    write_npz(copy / TRAIN[3], [(name, array, None) for name, array in batch.items()])
    report = check_output(copy)
    assert not report.ok and any(TRAIN[3] in problem and "mean" in problem for problem in report.problems)


def test_npz_refuses_lossy_or_unequal_images(quirky_release, tmp_path):
    with pytest.raises(UsageError, match="--format png"):
        run_build(quirky_release, tmp_path / "a", output="npz", resize="downsampled", size=8)
    with pytest.raises(UsageError, match="one size"):
        run_build(quirky_release, tmp_path / "b", output="npz", format="png")
