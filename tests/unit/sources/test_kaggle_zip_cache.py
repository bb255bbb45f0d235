"""The Kaggle zip's central directory is parsed once and cached like the tar index (keyed by size + mtime_ns,
checked when loaded): a no-op re-run of a 2M-entry zip does not parse it again."""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

import pytest

from imagenet_prep.sources import kaggle
from imagenet_prep.sources.kaggle import ZIP_NAME, KaggleZipSource

WNIDS = ("n01440764", "n01443537")


def _zip(folder: Path) -> Path:
    path = folder / ZIP_NAME
    with zipfile.ZipFile(path, "w") as archive:
        for wnid in WNIDS:
            for i in range(3):
                archive.writestr(
                    f"ILSVRC/Data/CLS-LOC/train/{wnid}/{wnid}_{i}.JPEG", b"\xff\xd8" + bytes([i]) * 50
                )
        archive.writestr("ILSVRC/Data/CLS-LOC/train/../escape.JPEG", b"x")
        archive.writestr("LOC_val_solution.csv", "ImageId,PredictionString\n", zipfile.ZIP_DEFLATED)
    return path


def _listing(src: KaggleZipSource) -> tuple:
    rows = {
        split: [
            (i.filename, i.header_offset, i.compress_size, i.file_size, i.compress_type, i.CRC) for i in infos
        ]
        for split, infos in src.members().items()
    }
    return rows, sorted(src._refused), src._read_text("LOC_val_solution.csv")


def _cache_header(cached: Path) -> tuple[dict, bytes]:
    """The cache's JSON header and its sections (zip_index: magic, version, header length, header, sections)."""
    data = cached.read_bytes()
    magic, version, length = struct.unpack_from("<8sII", data)
    assert magic == b"IPZIPDIR" and version == 1
    return json.loads(data[16 : 16 + length]), data[16 + length :]


def _write_cache(cached: Path, doc: dict, sections: bytes) -> None:
    head = json.dumps(doc).encode()
    cached.write_bytes(struct.pack("<8sII", b"IPZIPDIR", 1, len(head)) + head + sections)


def _no_parsing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the central directory was parsed again")

    monkeypatch.setattr(kaggle.zip_index, "read_central_directory", refuse)


def test_the_central_directory_is_parsed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    _zip(tmp_path)
    cache = tmp_path / "cache"
    first = _listing(KaggleZipSource(tmp_path, cache))
    assert len(first[0]["train"]) == 6 and len(first[1]) == 1
    assert list(cache.iterdir())
    with monkeypatch.context() as patch:
        _no_parsing(patch)
        assert _listing(KaggleZipSource(tmp_path, cache)) == first


def test_a_changed_zip_or_a_tampered_cache_is_parsed_again(tmp_path, monkeypatch):
    path = _zip(tmp_path)
    cache = tmp_path / "cache"
    first = _listing(KaggleZipSource(tmp_path, cache))
    (cached,) = cache.iterdir()
    os.utime(path, ns=(1, 1))  # another mtime: the cache is stale
    with monkeypatch.context() as patch:
        _no_parsing(patch)
        with pytest.raises(AssertionError, match="parsed again"):
            KaggleZipSource(tmp_path, cache).members()
    assert _listing(KaggleZipSource(tmp_path, cache)) == first  # and written again
    doc, rest = _cache_header(cached)
    doc["groups"]["train/n01440764"][0] = -5  # a malformed section start
    _write_cache(cached, doc, rest)
    with monkeypatch.context() as patch:
        _no_parsing(patch)
        with pytest.raises(AssertionError, match="parsed again"):
            KaggleZipSource(tmp_path, cache).members()
    assert _listing(KaggleZipSource(tmp_path, cache)) == first
