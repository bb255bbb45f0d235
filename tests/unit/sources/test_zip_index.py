"""The Kaggle zip's central directory read in one streaming pass into columns (sources/zip_index.py): the same
members and values zipfile reads (ZIP64, comments, prepended bytes), a first parse that stays small, and a
binary cache whose header alone serves a listing and whose damaged sections are found and rebuilt."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
from pathlib import Path

from imagenet_prep.sources import kaggle
from imagenet_prep.sources.kaggle import ZIP_NAME, KaggleZipSource

WNIDS = ("n01440764", "n01443537", "n01484850")
TRAIN = "ILSVRC/Data/CLS-LOC/train"


def _rows(src: KaggleZipSource) -> dict[str, list[tuple]]:
    return {split: [e.row() for e in entries] for split, entries in src.members().items()}


def _zipfile_rows(path: Path) -> dict[str, list[tuple]]:
    """What zipfile reads of the members the Kaggle source keeps (no refusals in these zips)."""
    out: dict[str, list[tuple]] = {"train": [], "val": []}
    with zipfile.ZipFile(path) as archive:
        for i in archive.infolist():
            where = kaggle._classify(i.filename)
            if where and where[0] != "text" and not i.is_dir():
                row = (i.filename, i.header_offset, i.compress_size, i.file_size, i.compress_type, i.CRC)
                out[where[0]].append(row)
    return out


def _write(
    path: Path, per_class: int, *, prefix: bytes = b"", comment: bytes = b"", zip64: bool = False
) -> None:
    buffer = io.BytesIO()
    buffer.write(prefix)
    with zipfile.ZipFile(buffer, "a" if prefix else "w") as archive:
        archive.comment = comment
        archive.writestr(f"{TRAIN}/", b"")  # a folder entry: skipped
        archive.writestr("ILSVRC/Annotations/CLS-LOC/train/x.xml", b"<x/>")  # never read
        for wnid in WNIDS:
            for n in range(per_class):
                name = f"{TRAIN}/{wnid}/{wnid}_{n}.JPEG"
                method = zipfile.ZIP_DEFLATED if n % 2 else zipfile.ZIP_STORED
                if zip64 and n == 1:
                    with archive.open(zipfile.ZipInfo(name), "w", force_zip64=True) as member:
                        member.write(b"\xff\xd8" + bytes([n % 251]) * 40)
                else:
                    archive.writestr(name, b"\xff\xd8" + bytes([n % 251]) * 40, method)
        archive.writestr("ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG", b"\xff\xd8v")
        archive.writestr("LOC_synset_mapping.txt", "n01440764 tench\n")
    path.write_bytes(buffer.getvalue())


def test_the_directory_is_read_as_zipfile_reads_it(tmp_path):
    cases = {
        "plain": {},
        "zip64": {"zip64": True},
        "comment": {"comment": b"a comment after the end record"},
        "prepended": {"prefix": b"#!/bin/sh\nexit 0\n" * 10},  # a self-extracting zip: offsets shift
    }
    for case, options in cases.items():
        folder = tmp_path / case
        folder.mkdir()
        _write(folder / ZIP_NAME, 4, **options)  # type: ignore[arg-type]
        expected = _zipfile_rows(folder / ZIP_NAME)
        assert len(expected["train"]) == 12 and len(expected["val"]) == 1, case
        src = KaggleZipSource(folder, tmp_path / "cache")
        assert _rows(src) == expected, case
        assert src._text_member("LOC_synset_mapping.txt") is not None
        assert src._refused == []
        assert _rows(KaggleZipSource(folder, tmp_path / "cache")) == expected, case  # from the cache


def test_more_than_65535_entries_take_the_zip64_end_records(tmp_path):
    _write(tmp_path / ZIP_NAME, 22_000)  # 66,000+ entries: zipfile writes the ZIP64 end records
    with zipfile.ZipFile(tmp_path / ZIP_NAME) as archive:
        assert len(archive.infolist()) > 0xFFFF
    src = KaggleZipSource(tmp_path, tmp_path / "cache")
    assert _rows(src) == _zipfile_rows(tmp_path / ZIP_NAME)
    assert src.classes("train") == WNIDS


def test_the_first_parse_stays_small(tmp_path):
    """zipfile kept a ZipInfo (~500 bytes) per entry: ~2 GB for the real 2M-entry zip. The streaming read
    keeps the members in columns: well under 250 bytes an entry, the central directory read in chunks."""
    _write(tmp_path / ZIP_NAME, 40_000)  # 120,000 train images
    tracemalloc.start()
    try:
        src = KaggleZipSource(tmp_path, tmp_path / "cache")
        assert src.splits() == ("train", "val") and src.classes("train") == WNIDS
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 120_000 * 250, f"{peak / 1e6:.0f} MB for 120,000 entries"


def _sections(cache: Path) -> tuple[int, dict]:
    """Where the cache's sections start and its group table."""
    import json

    data = cache.read_bytes()
    _magic, _version, length = struct.unpack_from("<8sII", data)
    return 16 + length, json.loads(data[16 : 16 + length])["groups"]


def test_a_listing_reads_only_the_cache_header_and_a_damaged_section_is_rebuilt(tmp_path, monkeypatch):
    _write(tmp_path / ZIP_NAME, 5)
    cache = tmp_path / "cache"
    expected = _rows(KaggleZipSource(tmp_path, cache))
    (cached,) = cache.iterdir()
    body, groups = _sections(cached)
    data = bytearray(cached.read_bytes())
    for start, length, _count, _crc in groups.values():  # every section's bytes damaged
        data[body + start : body + start + length] = b"\x00" * length
    cached.write_bytes(bytes(data))

    parses = []
    real = kaggle.zip_index.read_central_directory

    def counting(*args, **kwargs):
        parses.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(kaggle.zip_index, "read_central_directory", counting)
    src = KaggleZipSource(tmp_path, cache)
    assert src.splits() == ("train", "val") and src.classes("train") == WNIDS and src.missing()
    assert parses == []  # the header alone listed the zip
    index = src.index("train", WNIDS[:1], None)  # reads a section: damaged, so the zip is parsed again
    assert len(parses) == 1
    assert [f.name for f in index.files[WNIDS[0]]] == [f"{WNIDS[0]}_{n}.JPEG" for n in range(5)]
    assert _rows(src) == expected
    assert _rows(KaggleZipSource(tmp_path, cache)) == expected and len(parses) == 1  # the cache was rewritten


def test_a_cache_section_moved_to_another_class_is_refused(tmp_path, monkeypatch):
    """A tampered header pointing one class's group at another class's section must not relabel images."""
    import json

    _write(tmp_path / ZIP_NAME, 3)
    cache = tmp_path / "cache"
    expected = _rows(KaggleZipSource(tmp_path, cache))
    (cached,) = cache.iterdir()
    data = cached.read_bytes()
    _magic, _version, length = struct.unpack_from("<8sII", data)
    doc = json.loads(data[16 : 16 + length])
    groups = doc["groups"]
    groups[f"train/{WNIDS[0]}"] = groups[f"train/{WNIDS[1]}"]
    head = json.dumps(doc).encode()
    cached.write_bytes(struct.pack("<8sII", b"IPZIPDIR", 1, len(head)) + head + data[16 + length :])
    src = KaggleZipSource(tmp_path, cache)
    index = src.index("train", WNIDS[:1], None)
    assert [f.name for f in index.files[WNIDS[0]]] == [f"{WNIDS[0]}_{n}.JPEG" for n in range(3)]
    assert _rows(src) == expected
