"""--output mds read with a reader written here from MosaicML streaming's published MDS format (its
``MDSWriter.encode_joint_shard`` / ``encode_sample`` and ``index.json`` version 2; the real
``streaming.StreamingDataset`` pulls torch and conflicts with ``datasets``, so it runs in its own venv through
scripts/check_mds_streaming.py): every sample's label, image and position, the index entries, the columns of
the ImageNet conversion script (i int, x jpeg, y int); check finds a damaged shard and a wrong index."""

from __future__ import annotations

import io
import json
import shutil
import struct

import numpy as np
import pytest
from PIL import Image
from support import run_build
from support.build import read_manifest

from imagenet_prep.outputs import check_output


def read_mds(path):
    """(config, samples) of a joint MDS shard: u32 count, u32 offsets[count + 1], config JSON, samples; each
    sample = u32 sizes of the variable columns, then the columns in the config's order."""
    data = path.read_bytes()
    count = int(np.frombuffer(data, np.uint32, 1)[0])
    offsets = np.frombuffer(data, np.uint32, count + 1, 4)
    config = json.loads(data[4 * (count + 2) : offsets[0]])
    samples = []
    for start, end in zip(offsets[:-1], offsets[1:], strict=True):
        chunk = data[start:end]
        variable = [
            n for n, s in zip(config["column_names"], config["column_sizes"], strict=True) if s is None
        ]
        sizes = dict(zip(variable, np.frombuffer(chunk, np.uint32, len(variable)), strict=False))
        at, sample = 4 * len(variable), {}
        for name, encoding, size in zip(
            config["column_names"], config["column_encodings"], config["column_sizes"], strict=False
        ):
            size = int(sizes[name]) if size is None else size
            raw = chunk[at : at + size]
            sample[name] = int(np.frombuffer(raw, np.int64)[0]) if encoding == "int" else raw
            at += size
        assert at == len(chunk)
        samples.append(sample)
    assert offsets[-1] == len(data)
    return config, samples


@pytest.fixture(scope="module")
def built(quirky_release, tmp_path_factory):
    out = tmp_path_factory.mktemp("mds") / "out"
    assert run_build(quirky_release, out, output="mds", shard_size="7").ok
    return out


def test_every_sample_reads_back_with_the_conversion_scripts_columns(built):
    labels = built.joinpath("labels.txt").read_text().split()
    for split in ("train", "val"):
        rows = read_manifest(built, split)
        index = json.loads((built / split / "index.json").read_text())
        assert index["version"] == 2
        samples, positions = [], []
        for entry in index["shards"]:
            config, found = read_mds(built / split / entry["raw_data"]["basename"])
            assert config["column_names"] == ["i", "x", "y"]
            assert config["column_encodings"] == ["int", "jpeg", "int"]
            assert config["column_sizes"] == [8, None, 8]
            assert config["format"] == "mds" and config["version"] == 2 and config["compression"] is None
            assert entry["samples"] == len(found) and entry["format"] == "mds" and entry["zip_data"] is None
            assert (
                entry["raw_data"]["bytes"] == (built / split / entry["raw_data"]["basename"]).stat().st_size
            )
            samples += found
        assert len(samples) == len(rows)
        for sample, row in zip(samples, rows, strict=True):
            assert sample["y"] == int(row["label"]) == labels.index(row["wnid"])
            with Image.open(io.BytesIO(sample["x"])) as image:
                assert image.format == "JPEG" and image.size == (int(row["width"]), int(row["height"]))
            positions.append(sample["i"])
        assert len(set(positions)) == len(positions) and min(positions) == 0
    assert sorted(p.name for p in (built / "val").iterdir()) == sorted(
        [
            "index.json",
            *(
                f"shard.{i:05d}.mds"
                for i in range(len(json.loads((built / "val/index.json").read_text())["shards"]))
            ),
        ]
    )
    assert check_output(built).ok


def test_check_finds_a_damaged_shard_and_a_wrong_index(built, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(built, out)
    shard = out / "train" / "shard.00001.mds"
    data = bytearray(shard.read_bytes())
    struct.pack_into("<I", data, 8, 3)  # the second sample's offset now points into the header
    shard.write_bytes(bytes(data))
    index = json.loads((out / "val" / "index.json").read_text())
    index["shards"][0]["samples"] += 1
    (out / "val" / "index.json").write_text(json.dumps(index))
    report = check_output(out)
    assert not report.ok
    assert any("train/shard.00001.mds" in p for p in report.problems)
    assert any("val/shard.00000.mds" in p and "index.json" in p for p in report.problems)
