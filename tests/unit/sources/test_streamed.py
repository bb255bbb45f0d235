"""sources/streamed.py: a stream's samples cut into units in stream order (independent of the worker count), read
through a forward cursor that checks each member's tar header against the listing, and listings that record
the header offsets (an older listing without them is listed again). With zlib-ng's gzip reader (the fast extra) and
with the stdlib's: the same bytes, and a damaged stream fails with the same one-line message."""

from __future__ import annotations

import gzip
import io
import json
import random
import struct
import tarfile
import zlib
from pathlib import Path

import pytest

from imagenet_prep.errors import ArchiveError, MemberError
from imagenet_prep.records import ByteLocation, Sample, WorkUnit
from imagenet_prep.sources import streamed
from imagenet_prep.sources.streamed import (
    STREAM,
    CursorReader,
    StreamListing,
    close_cursors,
    group_in_stream_chunks,
    list_stream,
    list_streams,
)

WNID = "n01440764"


@pytest.fixture(params=["zlib-ng", "stdlib"])
def inflater(request, monkeypatch):
    """The process's gzip reader chosen afresh: zlib-ng's (skipped where it is not installed; the test extra
    installs it), or the stdlib's, as in an environment where importing zlib-ng fails."""
    monkeypatch.setattr(streamed, "_chosen", [])
    if request.param == "stdlib":

        def not_installed():
            raise ImportError("hidden by the test")

        monkeypatch.setattr(streamed, "_fast_inflater", not_installed)
    else:
        pytest.importorskip("zlib_ng")
    close_cursors()  # no cursor opened with the other reader
    yield request.param
    close_cursors()


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    path.write_bytes(gzip.compress(_tar_bytes(members), compresslevel=1, mtime=0))
    return path


def _members(n: int, long_names: bool = False) -> dict[str, bytes]:
    rng = random.Random(3)
    stem = (
        "x" * 120 + "_" if long_names else ""
    )  # > 100 bytes: a GNU long-name header chain before each member
    return {
        f"train_blurred/{WNID}/{stem}{WNID}_{i}.jpg": rng.randbytes(rng.randrange(1, 90_000))
        for i in range(n)
    }


def _samples(locator: str, listed, headers) -> list[Sample]:
    return [
        Sample("train", Path(name).stem, WNID, 0, name, ByteLocation(locator, offset, size, STREAM, header))
        for (name, offset, size), header in zip(listed, headers, strict=True)
    ]


def _listed(tmp_path: Path, members: dict[str, bytes]) -> tuple[Path, list, list[int], list[Sample]]:
    """A train_blurred.tar.gz of ``members``, its listing, header offsets and samples."""
    path = _tar_gz(tmp_path / "train_blurred.tar.gz", members)
    listed, refused, _nbytes, headers = list_stream(str(path))
    assert not refused and [m[0] for m in listed] == list(members)
    return path, listed, headers, _samples(str(path), listed, headers)


def _sample(locator: str, offset: int) -> Sample:
    return Sample(
        "train", f"k{offset}", WNID, 0, f"k{offset}.jpg", ByteLocation(locator, offset, 10, STREAM, None)
    )


def test_a_stream_is_cut_in_stream_order_into_units_of_the_same_size_the_short_one_first():
    a = [_sample("/d/train_images_0.tar.gz", 1024 * k) for k in range(12)]
    b = [_sample("/d/train_images_1.tar.gz", 1024 * k) for k in range(3)]
    mixed = a + b
    random.Random(1).shuffle(mixed)
    units = group_in_stream_chunks("train", mixed, 5)
    assert [(uid, [s.location.offset // 1024 for s in chosen]) for uid, chosen in units] == [
        ("train-train_images_0-00000", [0, 1]),
        ("train-train_images_0-00001", [2, 3, 4, 5, 6]),
        ("train-train_images_0-00002", [7, 8, 9, 10, 11]),
        ("train-train_images_1", [0, 1, 2]),  # a stream of one unit keeps the stream's own id
    ]
    # The cut depends on the samples only: the same units whatever order the plan gave them in.
    assert group_in_stream_chunks("train", a + b, 5) == units


@pytest.mark.parametrize("long_names", [False, True])
def test_the_cursor_reader_reads_any_order_and_later_units_continue_the_same_cursor(
    tmp_path, long_names, inflater
):
    members = _members(40, long_names)
    path, _listed_, _headers, samples = _listed(tmp_path, members)
    try:
        units = group_in_stream_chunks("train", samples, 16)
        assert [len(chosen) for _, chosen in units] == [8, 16, 16]
        first_unit = list(units[0][1])
        random.Random(2).shuffle(first_unit)  # a shard writer's order: held until their turn
        got = []
        read = 0
        for chosen in (first_unit, units[1][1], units[2][1]):
            reader = CursorReader(WorkUnit("train", "u", "blurred", tuple(chosen), 1 << 20))
            got += [(s.name, data) for s, data in reader]
            reader.close()
            read += reader.bytes_read  # compressed bytes from disk (a later unit may find them buffered)
        assert dict(got) == members and len(got) == len(members)
        assert 0 < read <= path.stat().st_size
        # The three units went through ONE cursor: no restart, the stream read about once.
        [cursor] = streamed._cursors().values()
        assert cursor.restarts == 0 and cursor.bytes_read <= path.stat().st_size
    finally:
        close_cursors()


def test_a_listing_that_does_not_match_the_stream_fails_the_unit_in_one_line(tmp_path):
    path, listed, headers, _samples_ = _listed(tmp_path, _members(6))
    name, offset, size = listed[3]
    try:
        for lie in (
            Sample(
                "train", "k", WNID, 0, name, ByteLocation(str(path), offset, size + 1, STREAM, headers[3])
            ),
            Sample(
                "train", "k", WNID, 0, "other.jpg", ByteLocation(str(path), offset, size, STREAM, headers[3])
            ),
            Sample(
                "train",
                "k",
                WNID,
                0,
                name,
                ByteLocation(str(path), offset + 512, size, STREAM, headers[3] + 512),
            ),
        ):
            with pytest.raises(ArchiveError, match="does not match the index") as caught:
                list(CursorReader(WorkUnit("train", "u", "blurred", (lie,), 1 << 20)))
            assert "\n" not in str(caught.value) and ".index.json" in str(caught.value)
    finally:
        close_cursors()


def test_a_member_above_the_cap_is_a_recorded_skip_and_is_never_read(tmp_path):
    members = _members(5)
    _path, listed, _headers, samples = _listed(tmp_path, members)
    big = max(range(5), key=lambda i: listed[i][2])
    cap = listed[big][2] - 1
    try:
        reader = CursorReader(WorkUnit("train", "u", "blurred", (samples[big],), cap))
        [(_sample_, data)] = list(reader)
        assert isinstance(data, MemberError) and "member-size cap" in str(data)
        assert reader.bytes_read == 0  # not even its stream was opened
        others = [s for i, s in enumerate(samples) if i != big]
        got = dict(
            (s.name, d) for s, d in CursorReader(WorkUnit("train", "u", "blurred", tuple(others), cap))
        )
        assert got == {s.name: members[s.name] for s in others}
    finally:
        close_cursors()


def test_a_cut_stream_fails_the_unit_in_one_line(tmp_path, inflater):
    path, _listed_, _headers, samples = _listed(tmp_path, _members(30))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    try:
        with pytest.raises(ArchiveError) as caught:
            list(CursorReader(WorkUnit("train", "u", "blurred", tuple(samples), 1 << 20)))
        assert "\n" not in str(caught.value) and "re-download" in str(caught.value)
    finally:
        close_cursors()


def test_a_listing_cached_without_header_offsets_is_listed_again(tmp_path):
    path = _tar_gz(tmp_path / "val_blurred.tar.gz", _members(4))
    first = StreamListing(path)
    assert list_streams([first]) > 0 and len(first.headers) == 4
    again = StreamListing(path)
    assert again.members == first.members and again.headers == first.headers
    document = json.loads(first.cache_path.read_text())  # one JSON document
    document.pop("headers")  # as an older version wrote it
    first.cache_path.write_text(json.dumps(document))
    assert StreamListing(path).members is None


def test_the_inflater_in_use_is_named_with_its_version_and_opens_the_streams(tmp_path, inflater):
    name, version = streamed.inflater().split(" ")
    assert name == ("zlib-ng" if inflater == "zlib-ng" else "zlib") and version[0].isdigit()
    path = _tar_gz(tmp_path / "val_blurred.tar.gz", _members(3))
    opened, source = streamed.open_stream(str(path))
    try:
        assert (type(opened) is gzip.GzipFile) == (inflater == "stdlib")
    finally:
        opened.close()
        source.close()


def _damaged(kind: str, tar: bytes) -> tuple[bytes, str, str]:
    """A gzip of ``tar`` damaged as ``kind``, and what the stdlib's reader has always said of it: listed (read
    through tarfile, which words a ``zlib.error`` met in a header its own way) and drained."""
    gz = gzip.compress(tar, compresslevel=1, mtime=0)
    crc = zlib.crc32(tar)
    if kind == "cut":
        return gz[: len(gz) // 2], "is truncated", "is truncated"
    if kind == "missing trailer":
        return gz[:-8], "is truncated", "is truncated"
    if kind == "wrong crc":
        says = f"is damaged (CRC check failed {crc ^ 1:#x} != {crc:#x})"
        return gz[:-8] + struct.pack("<I", crc ^ 1) + gz[-4:], says, says
    if kind == "wrong length":
        says = "is damaged (Incorrect length of data produced)"
        return gz[:-4] + struct.pack("<I", len(tar) + 1), says, says
    assert kind == "damaged deflate data"  # the first block's type set to 3, which deflate reserves
    says = "Error -3 while decompressing data: invalid block type"
    return (
        gz[:10] + bytes([gz[10] | 0b110]) + gz[11:],
        f"is damaged (zlib error: {says})",
        f"is damaged ({says})",
    )


@pytest.mark.parametrize(
    "kind", ["cut", "missing trailer", "wrong crc", "wrong length", "damaged deflate data"]
)
def test_a_damaged_stream_is_the_same_one_line_error_with_either_inflater(tmp_path, inflater, kind):
    """Listing it and draining a cursor on it fail with the message the stdlib's reader has always given
    (zlib-ng's errors are raised as the stdlib's)."""
    blob, listing_says, drain_says = _damaged(kind, _tar_bytes(_members(40)))
    path = tmp_path / "train_blurred.tar.gz"
    path.write_bytes(blob)
    fix = "re-download it; a gzip stream cut short cannot be read past the cut."
    with pytest.raises(ArchiveError) as listed:
        list_stream(str(path))
    assert str(listed.value) == f"The stream {path} {listing_says}; {fix}"
    cursor = streamed.StreamCursor(str(path))
    try:
        with pytest.raises(ArchiveError) as drained:
            cursor.drain()
        assert str(drained.value) == f"The stream {path} {drain_says}; {fix}"
    finally:
        cursor.close()


def test_a_multi_member_gzip_reads_as_one_stream_with_either_inflater(tmp_path, inflater):
    """A tar.gz written as two gzip members (as a parallel compressor writes it) is one tar: the listing of the
    single-member file, and the same member bytes through a cursor."""
    members = _members(40)
    single = _tar_gz(tmp_path / "val_blurred.tar.gz", members)
    tar = _tar_bytes(members)
    two = tmp_path / "train_blurred.tar.gz"
    two.write_bytes(
        gzip.compress(tar[: len(tar) // 3], mtime=0) + gzip.compress(tar[len(tar) // 3 :], mtime=0)
    )
    listed, refused, _nbytes, headers = list_stream(str(two))
    assert not refused and (listed, headers) == (list_stream(str(single))[0], list_stream(str(single))[3])
    samples = _samples(str(two), listed, headers)
    got = {s.name: d for s, d in CursorReader(WorkUnit("train", "u", "blurred", tuple(samples), 1 << 20))}
    assert got == {s.name: members[s.name] for s in samples}
