"""Label maps (labels.txt, class_index.json, classes.csv): they agree with each other and with classes.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from imagenet_prep import classes, labels
from imagenet_prep.errors import UnknownClassError


def read_maps(folder: Path) -> tuple[list[str], dict[str, list[str]], list[dict[str, str]]]:
    lines = (folder / "labels.txt").read_text(encoding="utf-8").splitlines()
    index = json.loads((folder / "class_index.json").read_text(encoding="utf-8"))
    with (folder / "classes.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return lines, index, rows


def check_agreement(folder: Path, wnids: list[str]) -> list[dict[str, str]]:
    lines, index, rows = read_maps(folder)
    expected = sorted(set(wnids))
    assert lines == expected
    assert list(index) == [str(i) for i in range(len(expected))]
    assert len(rows) == len(expected)
    for i, (wnid, row) in enumerate(zip(expected, rows, strict=True)):
        info = classes.by_wnid(wnid)
        assert index[str(i)] == [wnid, info.name]
        assert int(row["index"]) == i and row["wnid"] == wnid
        assert int(row["imagenet1k_index"]) == info.index
        assert int(row["ilsvrc2012_id"]) == info.ilsvrc2012_id
        assert int(row["tf_index"]) == info.index + 1 == info.tf_index
        assert row["name"] == info.name
        assert row["lemmas"] == ", ".join(lemma.replace("_", " ") for lemma in info.lemmas)
        assert row["gloss"] == info.gloss
    return rows


def test_all_1000(tmp_path: Path) -> None:
    every = [info.wnid for info in classes.all_classes()]
    paths = labels.write_label_maps(tmp_path, reversed(every))
    assert [p.name for p in paths] == list(labels.LABEL_FILES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(labels.LABEL_FILES)  # no temp files left
    rows = check_agreement(tmp_path, every)
    assert len(rows) == 1000
    assert list(rows[0]) == list(labels.CLASSES_CSV_FIELDS)
    assert len({row["name"] for row in rows}) == 1000
    assert all(row["index"] == row["imagenet1k_index"] for row in rows)  # all 1000: the two indices coincide
    assert sorted(int(row["tf_index"]) for row in rows) == list(range(1, 1001))
    assert rows[0]["wnid"] == "n01440764" and rows[0]["name"] == "tench"
    crane = {row["wnid"]: row["name"] for row in rows if row["name"].startswith("crane")}
    assert set(crane) == {"n02012849", "n03126707"} and len(set(crane.values())) == 2


def test_a_subset_gets_its_own_indices(tmp_path: Path) -> None:
    wnids = list(classes.subset_wnids("imagewoof"))
    labels.write_label_maps(tmp_path, [*wnids, wnids[0]])  # duplicates collapse
    rows = check_agreement(tmp_path, wnids)
    assert [int(row["index"]) for row in rows] == list(range(10))
    assert [int(row["imagenet1k_index"]) for row in rows] == sorted(classes.by_wnid(w).index for w in wnids)
    assert rows[0]["index"] != rows[0]["imagenet1k_index"]  # subset index, not the 1K one


def test_text_functions_match_the_files(tmp_path: Path) -> None:
    wnids = ["n03126707", "n01440764", "n02012849"]
    labels.write_label_maps(tmp_path, wnids)
    assert (
        (tmp_path / "labels.txt").read_text()
        == labels.labels_txt(wnids)
        == "n01440764\nn02012849\nn03126707\n"
    )
    assert (tmp_path / "class_index.json").read_text() == labels.class_index_json(wnids)
    assert (tmp_path / "classes.csv").read_text() == labels.classes_csv(wnids)
    check_agreement(tmp_path, wnids)


def test_gloss_with_commas_and_quotes_survives_csv(tmp_path: Path) -> None:
    tricky = [c.wnid for c in classes.all_classes() if "," in c.gloss or '"' in c.gloss][:20]
    assert tricky
    labels.write_label_maps(tmp_path, tricky)
    check_agreement(tmp_path, tricky)


def test_unknown_wnid_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(UnknownClassError, match="n01440764"):
        labels.write_label_maps(tmp_path, ["n01443537", "n01440765"])
    assert list(tmp_path.iterdir()) == []
