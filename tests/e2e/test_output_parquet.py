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
from imagenet_prep.errors import UsageError
from imagenet_prep.outputs import check_output

SHARD = 25  # samples per shard: 72 train -> 3 shards, 36 val -> 2 (published as the split "validation")


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
    assert sorted(loaded) == ["train", "validation"]  # the Hub's and TFDS's name of val
    names = class_names(parquet_out)
    assert len(names) == 12 and len(set(names)) == 12
    for split in ("train", "validation"):
        data = loaded[split]
        assert isinstance(data.features["image"], datasets.Image)
        assert isinstance(data.features["label"], datasets.ClassLabel)
        assert data.features["label"].names == names
        rows = read_rows(parquet_out, split)
        assert data.num_rows == len(rows) == {"train": 72, "validation": 36}[split]
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
        "validation-00000-of-00002.parquet",
        "validation-00001-of-00002.parquet",
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
    (copy / "data" / "validation-00001-of-00002.parquet").unlink()
    report = check_output(copy)
    assert not report.ok and any("validation-00001-of-00002.parquet" in p for p in report.problems)


def test_code_written_for_the_hub_asks_for_split_validation(parquet_out, hf_env):
    """`load_dataset(OUT, split="validation")`, as for the Hub's ILSVRC/imagenet-1k; the manifest says the same."""
    import datasets

    val = datasets.load_dataset(str(parquet_out), split="validation")
    rows = read_rows(parquet_out, "validation")
    assert val.num_rows == len(rows) == 36 and not (parquet_out / "val.csv").exists()
    assert {row["shard"] for row in rows} == {
        "data/validation-00000-of-00002.parquet",
        "data/validation-00001-of-00002.parquet",
    }
    assert val["label"] == [int(row["label"]) for row in rows]
    card = (parquet_out / "README.md").read_text()
    assert "split: validation" in card and "name: validation" in card and "name: val\n" not in card


def test_a_parquet_out_built_with_split_val_says_what_to_do(quirky_release, tmp_path):
    """An OUT from before the rename (data/val-*.parquet) is refused with one line; --overwrite rebuilds it."""
    out = tmp_path / "out"
    values = {"source": quirky_release.root, "out": out, "size": 40, "workers": 2, "output": "parquet"}
    build(build_config({}, {**values, "classes": "n01440764", "shard_size": "4"}))
    for path in (out / "data").glob("validation-*.parquet"):  # as the earlier version named them
        path.rename(path.with_name("val" + path.name[len("validation") :]))
    state = out / ".imagenet-prep" / "state.json"  # whose unit ids, hence fingerprint, said val too
    state.write_text(json.dumps({**json.loads(state.read_text()), "fingerprint": "0123456789abcdef"}))
    with pytest.raises(UsageError, match="--overwrite") as refused:
        build(build_config({}, {**values, "classes": "n01440764", "shard_size": "4"}))
    assert "named val" in str(refused.value) and "\n" not in str(refused.value)
    assert any((out / "data").glob("val-*.parquet"))  # nothing removed
    build(build_config({}, {**values, "classes": "n01440764", "shard_size": "4", "overwrite": True}))
    assert not any((out / "data").glob("val-*.parquet")) and any((out / "data").glob("validation-*.parquet"))
    assert check_output(out).ok
