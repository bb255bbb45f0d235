"""--output tfds read by tensorflow_datasets itself: ``builder_from_directory`` and ``tfds.load(name,
data_dir=OUT)`` give the split sizes, the label names and every label; the full set's name loads through TFDS's
registered imagenet2012 builder; features.json and the splits of dataset_info.json equal what TFDS's own
``write_metadata`` writes for the same features; a subset gets a name of its own; a bad name is refused."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
from support import run_build
from support.build import read_manifest

from imagenet_prep.errors import UsageError
from imagenet_prep.outputs import check_output, make_writer

if importlib.util.find_spec("tensorflow_datasets") is None:  # in the test extra; imported only by these tests
    pytest.skip("needs tensorflow-datasets (the test extra)", allow_module_level=True)


@pytest.fixture(scope="module")
def tfds():
    import tensorflow_datasets

    return tensorflow_datasets


@pytest.fixture(scope="module")
def built(quirky_release, tmp_path_factory):
    out = tmp_path_factory.mktemp("tfds") / "out"
    assert run_build(quirky_release, out, output="tfds", shard_size="7").ok
    return out


def _expect(out):
    return {split: read_manifest(out, csv) for split, csv in (("train", "train"), ("validation", "val"))}


def _check_dataset(tfds, datasets, out, names):
    expected = _expect(out)
    for split, rows in expected.items():
        got = [
            (example["file_name"].decode(), int(example["label"]), tuple(example["image"].shape))
            for example in tfds.as_numpy(datasets[split])
        ]
        want = [
            (f"{row['key']}.JPEG", int(row["label"]), (int(row["height"]), int(row["width"]), 3))
            for row in rows
        ]
        assert got == want
        assert all(names[label] == row["wnid"] for (_, label, _), row in zip(got, rows, strict=True))


def test_builder_from_directory_and_load_read_every_example(tfds, built):
    name = json.loads((built / ".imagenet-prep/tfds.json").read_text())["name"]
    assert name == "imagenet2012_subset_12c_108"  # a subset is never named imagenet2012
    builder = tfds.builder_from_directory(str(built / name / "5.1.0"))
    expected = _expect(built)
    assert {s: builder.info.splits[s].num_examples for s in expected} == {
        s: len(r) for s, r in expected.items()
    }
    names = builder.info.features["label"].names
    assert names == built.joinpath("labels.txt").read_text().split()
    _check_dataset(tfds, builder.as_dataset(shuffle_files=False), built, names)
    loaded = tfds.load(name, data_dir=str(built), shuffle_files=False, download=False)
    _check_dataset(tfds, loaded, built, names)
    image, label = next(iter(tfds.load(name, data_dir=str(built), split="train", as_supervised=True)))
    assert image.shape[-1] == 3 and label.dtype.name == "int64"
    assert check_output(built).ok


def test_metadata_equals_what_tfds_writes(tfds, built, tmp_path):
    name = json.loads((built / ".imagenet-prep/tfds.json").read_text())["name"]
    ours = built / name / "5.1.0"
    theirs = tmp_path / name / "5.1.0"
    theirs.mkdir(parents=True)
    for shard in ours.glob("*.tfrecord-*"):
        shutil.copy(shard, theirs / shard.name)
    names = built.joinpath("labels.txt").read_text().split()
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(names=names),
            "file_name": tfds.features.Text(),
        }
    )
    info = json.loads((ours / "dataset_info.json").read_text())
    split_infos = [
        tfds.core.SplitInfo(
            name=s["name"], shard_lengths=[int(n) for n in s["shardLengths"]], num_bytes=int(s["numBytes"])
        )
        for s in info["splits"]
    ]
    tfds.folder_dataset.write_metadata(
        data_dir=str(theirs), features=features, split_infos=split_infos, check_data=False
    )
    assert json.loads((ours / "features.json").read_text()) == json.loads(
        (theirs / "features.json").read_text()
    )
    reference = json.loads((theirs / "dataset_info.json").read_text())
    for key in ("name", "version", "fileFormat", "splits"):
        assert info[key] == reference[key], key
    assert (ours / "label.labels.txt").read_text() == (theirs / "label.labels.txt").read_text()


def test_the_imagenet2012_name_loads_through_the_registered_builder(tfds, quirky_release, tmp_path):
    out = tmp_path / "out"
    assert run_build(quirky_release, out, output="tfds", tfds_name="imagenet2012", splits="val").ok
    loaded = tfds.load(
        "imagenet2012", data_dir=str(out), split="validation", shuffle_files=False, download=False
    )
    rows = read_manifest(out, "val")
    labels = [int(example["label"]) for example in tfds.as_numpy(loaded)]
    assert labels == [int(row["label"]) for row in rows] and len(labels) == len(rows)


def test_a_name_tfds_cannot_hold_is_refused():
    with pytest.raises(UsageError, match="snake_case"):
        make_writer("tfds", tfds_name="ImageNet-2012")
