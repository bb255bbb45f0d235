"""The release catalog built from the bundled checksums.tsv, and MD5SUMS parsing."""

from __future__ import annotations

import dataclasses

import pytest

from imagenet_prep.errors import InputError, UsageError
from imagenet_prep.fetch import catalog
from imagenet_prep.fetch.catalog import (
    DEFAULT_BASE_URL,
    ArchiveInfo,
    by_filename,
    by_key,
    expected_for,
    known_filenames,
    parse_md5sums,
    resolve,
)

REQUIRED = ("train", "val", "devkit", "test", "bbox_train", "bbox_val", "devkit_t3", "train_t3")


def test_required_keys_and_file_names():
    assert set(REQUIRED) <= set(catalog.keys())
    names = {key: by_key(key).filename for key in REQUIRED}
    assert names == {
        "train": "ILSVRC2012_img_train.tar",
        "val": "ILSVRC2012_img_val.tar",
        "devkit": "ILSVRC2012_devkit_t12.tar.gz",
        "test": "ILSVRC2012_img_test_v10102019.tar",
        "bbox_train": "ILSVRC2012_bbox_train_v2.tar.gz",
        "bbox_val": "ILSVRC2012_bbox_val_v3.tgz",
        "devkit_t3": "ILSVRC2012_devkit_t3.tar.gz",
        "train_t3": "ILSVRC2012_img_train_t3.tar",
    }


def test_facts_of_the_real_release():
    # Values from design.md (independent of the TSV parser).
    train, val, devkit = by_key("train"), by_key("val"), by_key("devkit")
    assert (train.size, train.md5, train.images) == (
        147_897_477_120,
        "1d675b47d978889d74fa0da5fadfb00e",
        1_281_167,
    )
    assert (val.size, val.md5, val.images) == (6_744_924_160, "29b22e2961454d5413ddabcf34fc5622", 50_000)
    assert devkit.md5 == "fa75699e90414af021442c21a62c3abf"


def test_approximate_sizes_and_missing_md5_are_unknown():
    assert by_key("devkit").size is None  # "~2.5MB" is a label, not a byte count
    assert by_key("test").size is None and by_key("test").md5 == "e1b8681fff3d63731c599df9b4b6fc02"
    assert by_key("devkit_t3").md5 is None  # "-" in the TSV


def test_records_are_frozen_and_url_paths_relative():
    info = by_key("val")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.size = 1  # type: ignore[misc]
    for info in catalog.all_archives():
        assert isinstance(info, ArchiveInfo) and info.description
        assert info.url_path == info.filename and "/" not in info.url_path
        assert DEFAULT_BASE_URL + info.url_path == f"https://image-net.org/data/ILSVRC/2012/{info.filename}"


def test_lookup_by_filename_and_unknown_key():
    assert by_filename("ILSVRC2012_img_val.tar") == by_key("val")
    assert by_filename("nope.tar") is None
    with pytest.raises(UsageError, match="known archives: train, val, devkit, test"):
        by_key("validation")


def test_parse_md5sums_formats(tmp_path):
    path = tmp_path / "MD5SUMS"
    path.write_text(
        "# made by md5sum\n"
        "\n"
        "0123456789abcdef0123456789ABCDEF  ILSVRC2012_img_val.tar\n"
        "fedcba9876543210fedcba9876543210 *ILSVRC2012_devkit_t12.tar.gz\n"
        "11111111111111111111111111111111  ./with space.tar\n"
        "MD5 (bsd.tar) = 22222222222222222222222222222222\n"
    )
    assert parse_md5sums(path) == {
        "ILSVRC2012_img_val.tar": "0123456789abcdef0123456789abcdef",
        "ILSVRC2012_devkit_t12.tar.gz": "fedcba9876543210fedcba9876543210",
        "with space.tar": "11111111111111111111111111111111",
        "bsd.tar": "22222222222222222222222222222222",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0123  short.tar\n", "MD5SUMS:1: not an MD5SUMS line"),
        ("# only a comment\n", "lists no checksums"),
        ("0123456789abcdef0123456789abcdef  ../evil.tar\n", "not a plain file name"),
        ("0123456789abcdef0123456789abcdef  /abs/evil.tar\n", "not a plain file name"),
        ("0123456789abcdef0123456789abcdef  ok.tar\nxyz\n", "MD5SUMS:2:"),
    ],
)
def test_parse_md5sums_rejects_bad_lines(tmp_path, text, message):
    path = tmp_path / "MD5SUMS"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        parse_md5sums(path)


def test_parse_md5sums_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read checksums file"):
        parse_md5sums(tmp_path / "absent")


def test_override_keeps_size_only_for_the_same_bytes():
    val = by_key("val")
    same = expected_for(val.filename, {val.filename: val.md5.upper()})
    assert (same.size, same.md5) == (val.size, val.md5)
    other = expected_for(val.filename, {val.filename: "0" * 32})
    assert (other.size, other.md5) == (None, "0" * 32)  # a mirror with other bytes has another size too
    extra = expected_for("mine.tar", {"mine.tar": "1" * 32})
    assert (extra.size, extra.md5, extra.url_path) == (None, "1" * 32, "mine.tar")
    assert known_filenames({"mine.tar": "1" * 32})[-1] == "mine.tar"


def test_resolve_names():
    assert [e.filename for e in resolve(None)] == [by_key(k).filename for k in ("train", "val", "devkit")]
    assert [e.filename for e in resolve(["val", "ILSVRC2012_img_val.tar", " devkit "])] == [
        "ILSVRC2012_img_val.tar",
        "ILSVRC2012_devkit_t12.tar.gz",
    ]
    assert resolve(["mine.tar"], {"mine.tar": "1" * 32})[0].md5 == "1" * 32
    with pytest.raises(UsageError, match="or a file listed in the checksums file"):
        resolve(["other.tar"], {"mine.tar": "1" * 32})
