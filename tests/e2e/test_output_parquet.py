"""The Parquet output read back by the real `datasets` and `pyarrow` packages (issue 11): load_dataset(OUT) and
load_dataset("parquet", data_files=one shard) give Image + ClassLabel with the label maps' names and every
row's label; exact column types; check."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from imagenet_prep.build import build
from imagenet_prep.config import build_config
from imagenet_prep.outputs import check_output

SHARD = 25  # samples per shard: 72 train -> 3 shards, 36 val -> 2


def read_rows(out: Path, split: str) -> list[dict[str, str]]:
    with (out / f"{split}.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def hf_env(tmp_path_factory):
    """datasets' cache in a folder of this test, and no network."""
    mp = pytest.MonkeyPatch()
    cache = tmp_path_factory.mktemp("hf-cache")
    mp.setenv("HF_DATASETS_CACHE", str(cache))
    mp.setenv("HF_HOME", str(cache / "home"))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    yield cache
    mp.undo()


@pytest.fixture(scope="module")
def parquet_out(quirky_release, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("parquet") / "out"
    values = {"source": quirky_release.root, "out": out, "size": 40, "workers": 2}
    result = build(build_config({}, {**values, "output": "parquet", "shard_size": str(SHARD)}))
    assert result.images_written == quirky_release.num_images and not result.skipped
    return out


def class_names(out: Path) -> list[str]:
    index = json.loads((out / "class_index.json").read_text())
    return [index[str(i)][1] for i in range(len(index))]


def test_load_dataset_gives_splits_class_names_and_every_label(parquet_out, hf_env):
    import datasets

    loaded = datasets.load_dataset(str(parquet_out))
    assert sorted(loaded) == ["train", "val"]
    names = class_names(parquet_out)
    assert len(names) == 12 and len(set(names)) == 12
    for split in ("train", "val"):
        data = loaded[split]
        assert isinstance(data.features["image"], datasets.Image)
        assert isinstance(data.features["label"], datasets.ClassLabel)
        assert data.features["label"].names == names
        rows = read_rows(parquet_out, split)
        assert data.num_rows == len(rows) == {"train": 72, "val": 36}[split]
        wnids = (parquet_out / "labels.txt").read_text().split()
        assert (
            data["label"] == [int(row["label"]) for row in rows] == [wnids.index(row["wnid"]) for row in rows]
        )
        for i in (0, len(rows) // 2, len(rows) - 1):
            image = data[i]["image"]
            assert image.mode == "RGB" and image.size == (int(rows[i]["width"]), int(rows[i]["height"]))


def test_load_dataset_parquet_on_one_shard(parquet_out, hf_env):
    import datasets

    shard = "data/train-00001-of-00003.parquet"
    loaded = datasets.load_dataset("parquet", data_files=str(parquet_out / shard))["train"]
    assert loaded.features["label"].names == class_names(parquet_out)
    rows = [row for row in read_rows(parquet_out, "train") if row["shard"] == shard]
    assert len(rows) == SHARD
    assert loaded["label"] == [int(row["label"]) for row in rows]
    assert [
        Path(item["path"]).stem for item in loaded.cast_column("image", datasets.Image(decode=False))["image"]
    ] == [row["key"] for row in rows]


def test_exact_arrow_types_metadata_and_row_groups(parquet_out):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((parquet_out / "data").glob("*.parquet"))
    assert [f.name for f in files] == [
        "train-00000-of-00003.parquet",
        "train-00001-of-00003.parquet",
        "train-00002-of-00003.parquet",
        "val-00000-of-00002.parquet",
        "val-00001-of-00002.parquet",
    ]
    for path in files:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        assert schema.field("image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        assert schema.field("label").type == pa.int64()
        meta = json.loads(schema.metadata[b"huggingface"])
        assert meta["info"]["features"] == {
            "image": {"_type": "Image"},
            "label": {"names": class_names(parquet_out), "_type": "ClassLabel"},
        }
        assert all(parquet.metadata.row_group(i).num_rows <= 100 for i in range(parquet.num_row_groups))
    card = (parquet_out / "README.md").read_text()
    assert "num_examples: 72" in card and "path: data/train-*" in card


def test_check_passes_and_finds_a_missing_shard(parquet_out, tmp_path):
    report = check_output(parquet_out, decode=True)
    assert report.ok, report.problems
    assert report.checked == 108
    copy = tmp_path / "copy"
    shutil.copytree(parquet_out, copy)
    (copy / "data" / "val-00001-of-00002.parquet").unlink()
    report = check_output(copy)
    assert not report.ok and any("val-00001-of-00002.parquet" in p for p in report.problems)
