"""The hf-parquet source layout (sources/hf_parquet.py) on Parquet shards without the Hub's ``_<wnid>`` path
suffix: ours and Hub-style re-uploads, written here by the real ``datasets`` and ``pyarrow``. Labels come from
labels.txt, the schema's ClassLabel names, the dataset card's, or the 1K sorted order; disagreements are refused;
a class subset reads only its row groups; the reader keeps to the member-size cap."""

from __future__ import annotations

import io

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from support.build import build_record

from imagenet_prep.errors import InputError, MemberError
from imagenet_prep.records import Sample, WorkUnit
from imagenet_prep.sources import detect_layouts, open_source
from imagenet_prep.sources.hf_parquet import ParquetReader
from imagenet_prep.taxonomy import classes

SORTED = sorted(classes.all_classes(), key=lambda c: c.wnid)
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 12), (seed * 41 % 256, 30, 90)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _hub_style(root, split: str, paths: list[str], labels: list[int], names: list[str] | None) -> None:
    """A shard written by datasets itself (Image + ClassLabel features: the huggingface schema metadata)."""
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=names) if names else datasets.Value("int64"),
        }
    )
    images = [{"bytes": _jpeg(i), "path": p} for i, p in enumerate(paths)]
    ds = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    (root / "data").mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))


def _files(root, split="train"):
    source = open_source(root)
    try:
        index = source.index(split, source.classes(split), None)
        return {w: sorted(f.key for f in fs) for w, fs in index.files.items()}, dict(index.refused)
    finally:
        source.close()


def test_the_hubs_thousand_word_names_give_the_sorted_1k_order(tmp_path):
    # The Hub's names: the words strings ("tench, Tinca tinca", ...), the second "crane" renamed "crane2"
    # (ClassLabel refuses a repeated name): not every name maps to one class, so the order decides.
    names = [c.words for c in SORTED]
    names[names.index("crane", names.index("crane") + 1)] = "crane2"
    _hub_style(tmp_path, "validation", ["ILSVRC2012_val_00000001.JPEG", "x_2.JPEG"], [65, 999], names)
    assert detect_layouts(tmp_path) == ["hf-parquet"]
    files, refused = _files(tmp_path, "val")
    assert files == {SORTED[65].wnid: ["ILSVRC2012_val_00000001"], SORTED[999].wnid: ["x_2"]} and not refused


def test_a_reupload_with_its_own_class_names_is_labelled_by_those_names(tmp_path):
    # two classes, named out of sorted order: label 0 is goldfish, label 1 tench
    _hub_style(tmp_path, "train", ["a.jpg", "b.jpg", "n01440764_7.jpg"], [0, 1, 1], ["goldfish", "tench"])
    files, refused = _files(tmp_path)
    assert files == {"n01443537": ["a"], "n01440764": ["b", "n01440764_7"]} and not refused


def test_names_from_the_dataset_card_when_the_schema_has_none(tmp_path):
    (tmp_path / "data").mkdir()
    table = pa.table({"image": pa.array([{"bytes": _jpeg(0), "path": "q.JPEG"}], IMAGE), "label": [0]})
    pq.write_table(table, tmp_path / "data" / "train-00000-of-00001.parquet")
    card = "---\ndataset_info:\n  features:\n  - name: image\n    dtype: image\n  - name: label\n"
    card += "    dtype:\n      class_label:\n        names:\n          '0': n09999999\n---\n# card\n"
    (tmp_path / "README.md").write_text(card)
    assert _files(tmp_path)[0] == {"n09999999": ["q"]}
    (tmp_path / "README.md").unlink()  # no names at all: the 1K sorted order
    assert _files(tmp_path)[0] == {SORTED[0].wnid: ["q"]}


def test_labels_txt_beside_data_wins_and_val_shards_are_read(tmp_path):
    _hub_style(tmp_path, "val", ["ILSVRC2012_val_00000003.JPEG"], [1], ["tench", "goldfish"])
    (tmp_path / "labels.txt").write_text("n01440764\nn02102040\n")
    assert _files(tmp_path, "val")[0] == {"n02102040": ["ILSVRC2012_val_00000003"]}


def test_a_row_whose_name_and_label_disagree_is_refused(tmp_path):
    _hub_style(tmp_path, "train", ["n01443537_1.JPEG", "n01440764_2.JPEG"], [0, 0], None)
    files, refused = _files(tmp_path)
    assert files == {"n01440764": ["n01440764_2"]}
    assert refused == {
        "train/train-00000-of-00001.parquet/n01443537_1.JPEG": (
            "its label 0 is n01440764, not the class n01443537 its name says"
        )
    }


def test_unknown_class_names_are_a_one_line_error(tmp_path):
    _hub_style(tmp_path, "train", ["a.jpg"], [0], ["cat", "dog"])
    with pytest.raises(InputError, match="labels.txt beside data/"):
        _files(tmp_path)


def test_a_class_subset_reads_only_its_row_groups(tmp_path):
    (tmp_path / "data").mkdir()
    wnids = [SORTED[i].wnid for i in range(3)]
    rows = [(f"{w}_{k}.JPEG", _jpeg(i * 10 + k), i) for i, w in enumerate(wnids) for k in range(4)]
    table = pa.table(
        {
            "image": pa.array([{"bytes": d, "path": p} for p, d, _l in rows], IMAGE),
            "label": pa.array([label for *_x, label in rows], pa.int64()),
        }
    )
    path = tmp_path / "data" / "train-00000-of-00001.parquet"
    pq.write_table(table, path, row_group_size=4)  # one class per row group
    record = build_record(
        tmp_path, tmp_path / "out", classes=wnids[1], splits="train", resize="none", workers=1
    )
    meta = pq.ParquetFile(path).metadata
    column = [meta.row_group(1).column(c) for c in range(meta.num_columns)]
    (image_bytes,) = [c.total_compressed_size for c in column if c.path_in_schema == "image.bytes"]
    assert record["bytes_read"]["images"] == image_bytes
    assert record["counts"]["train"]["images"] == 4


def test_the_reader_refuses_an_image_above_the_member_size_cap(tmp_path):
    _hub_style(tmp_path, "train", ["n01440764_1.JPEG"], [0], None)
    source = open_source(tmp_path)
    (file,) = source.index("train", ("n01440764",), None).files["n01440764"]
    sample = Sample("train", file.key, "n01440764", 0, file.name, file.location)
    reader = ParquetReader(WorkUnit("train", "u", "hf-parquet", (sample,), max_member_size=100))
    # Refused as data (a recorded skip, MemberError), never read into the worker, never a failed unit.
    [(got, refused)] = list(reader)
    reader.close()
    assert got == sample and isinstance(refused, MemberError)
    assert "above the member-size cap of 100 bytes" in str(refused)
