"""Output names from source keys (outputs/keys.py): one documented escaping, collision-free (injective), whose
results are safe as tar member names webdataset splits at the first dot, DALI index fields (space-separated
lines), CSV fields, Parquet paths and file names; never the temp prefix the cleaner deletes."""

from __future__ import annotations

import csv
import io
import re

from hypothesis import given
from hypothesis import strategies as st

from imagenet_prep.io.atomic import TMP_MARK
from imagenet_prep.outputs.keys import ShardKeys, file_key, shard_key

TRICKY = [
    "x.1",
    "x_1",
    "x%2E1",
    "x%1",
    "x 1",
    "x\r1",
    "x\n1",
    "x\x001",
    "x\u20281",
    "x\x851",
    ".tmp-x",
    "%2Etmp-x",
    "tmp-x",
    ".x",
    "x.",
    "a/b",
    "a\\b",
    "n01440764_10026",
    "ILSVRC2012_val_00000001",
    "é",
    "e\u0301",
    "x\udcff",
]


def test_plain_imagenet_keys_are_unchanged():
    for key in ("n01440764_10026", "ILSVRC2012_val_00000001", "n04399382_1234-a"):
        assert file_key(key) == shard_key(key) == key


def test_distinct_keys_stay_distinct():
    assert len({shard_key(k) for k in TRICKY}) == len(TRICKY)
    assert len({file_key(k) for k in TRICKY}) == len(TRICKY)
    assert shard_key("x.1") != shard_key("x_1")


def _safe_for_shards(name: str) -> None:
    assert "." not in name and " " not in name and "/" not in name and "\\" not in name
    assert name.isprintable() and len(name.splitlines()) == 1
    assert not name.startswith(TMP_MARK) and not name.startswith(".")


@given(st.text(min_size=1, max_size=30))
def test_shard_keys_are_safe_and_injective(key):
    name = shard_key(key)
    _safe_for_shards(name)
    assert shard_key(key + "x") != name
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([name, "1"])
    assert next(csv.reader(io.StringIO(buffer.getvalue()))) == [name, "1"]


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_no_two_keys_share_a_name(a, b):
    if a != b:
        assert shard_key(a) != shard_key(b) and file_key(a) != file_key(b)


@given(st.text(min_size=1, max_size=30))
def test_file_keys_are_single_printable_names_never_the_temp_prefix(key):
    name = file_key(key)
    assert "/" not in name and "\\" not in name and name.isprintable() and not name.startswith(".")


def test_one_stem_in_two_classes_gets_two_keys_in_one_shard():
    keys = ShardKeys()
    first, second = keys.key("x", "n01440764"), keys.key("x", "n01443537")
    assert first == "x" and second != first
    _safe_for_shards(second)
    assert keys.key("x", "n01443537") not in (first, second)  # even a third (same class): never a duplicate
    assert re.fullmatch(r"x%%n01443537", second)


@given(st.text(min_size=1, max_size=30))
def test_an_escaped_key_never_holds_the_class_separator(key):
    # a second sample of one key in a shard becomes <key>%%<wnid>: no escaped key can look like that
    assert "%%" not in shard_key(key) and "%%" not in file_key(key)
