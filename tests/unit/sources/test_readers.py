"""The unit readers (sources/base.py LocationReader, sources/common.py FileReader): a member that cannot be read
(a FIFO or device swapped in after planning, a CRC-32 mismatch, a damaged deflate stream)
is yielded as a MemberError, recorded as a skip by the worker, and the unit goes on; nothing blocks."""

from __future__ import annotations

import os
import signal
import zlib
from pathlib import Path

import pytest

from imagenet_prep.errors import ArchiveError, MemberError
from imagenet_prep.records import ByteLocation, Sample, WorkUnit
from imagenet_prep.sources.base import LocationReader
from imagenet_prep.sources.common import FileReader

JPEGISH = b"\xff\xd8" + bytes(range(256)) * 4 + b"\xff\xd9"


def _unit(locations: list[ByteLocation], cap: int = 64 << 20) -> WorkUnit:
    samples = tuple(
        Sample("train", f"n01440764_{i}", "n01440764", 0, f"n01440764_{i}.JPEG", loc)
        for i, loc in enumerate(locations)
    )
    return WorkUnit("train", "train-n01440764", "imagefolder", samples, cap)


@pytest.fixture
def alarm():
    """Fail (instead of hanging the session) if a read blocks."""
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("a read blocked"))
    signal.alarm(10)
    yield
    signal.alarm(0)


def test_a_fifo_or_device_swapped_in_after_planning_is_a_recorded_skip_not_a_hang(tmp_path: Path, alarm):
    good = tmp_path / "good.JPEG"
    good.write_bytes(JPEGISH)
    fifo = tmp_path / "fifo.JPEG"
    os.mkfifo(fifo)  # planned as a regular file of 1000 bytes, then swapped
    locations = [
        ByteLocation(str(fifo), 0, 1000),
        ByteLocation("/dev/zero", 0, 1000),
        ByteLocation(str(good), 0, len(JPEGISH)),
    ]
    got = list(FileReader(_unit(locations)))
    assert isinstance(got[0][1], MemberError) and "not a regular file" in str(got[0][1])
    assert isinstance(got[1][1], MemberError) and "not a regular file" in str(got[1][1])
    assert got[2][1] == JPEGISH


def test_a_crc32_mismatch_or_a_damaged_deflate_stream_is_a_recorded_skip(tmp_path: Path):
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    packed = deflater.compress(JPEGISH) + deflater.flush()
    path = tmp_path / "a.zip"
    path.write_bytes(JPEGISH + packed + b"\xff" * 64)
    crc = zlib.crc32(JPEGISH)
    n = len(JPEGISH)
    unit = _unit(
        [
            ByteLocation(str(path), 0, n, crc32=crc ^ 1),  # stored, wrong CRC
            ByteLocation(str(path), n, len(packed), "deflate", raw_size=n, crc32=crc ^ 1),  # deflated, wrong
            ByteLocation(str(path), n + len(packed), 64, "deflate", raw_size=n),  # not a deflate stream
            ByteLocation(str(path), 0, n, crc32=crc),
            ByteLocation(str(path), n, len(packed), "deflate", raw_size=n, crc32=crc),
        ]
    )
    got = list(LocationReader(unit))
    assert [type(d) for _s, d in got[:3]] == [MemberError] * 3
    assert "CRC-32" in str(got[0][1]) and "CRC-32" in str(got[1][1]) and "damaged" in str(got[2][1])
    assert got[3][1] == JPEGISH and got[4][1] == JPEGISH


def test_a_truncated_archive_still_fails_the_unit(tmp_path: Path):
    path = tmp_path / "a.bin"
    path.write_bytes(JPEGISH)
    with pytest.raises(ArchiveError, match="truncated"):
        list(LocationReader(_unit([ByteLocation(str(path), 0, 2 * len(JPEGISH))])))


def test_a_streamed_member_larger_than_the_cap_is_never_read_whatever_the_listing_says(tmp_path: Path):
    """A tampered listing (cache) says 100 bytes; the stream's member is 8 MiB: refused from its tar header."""
    import gzip
    import io
    import tarfile

    from imagenet_prep.sources.streamed import STREAM, StreamReader

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("big_n01440764.JPEG", b"\0" * (8 << 20)), ("ok_n01440764.JPEG", JPEGISH)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "train_images_0.tar.gz"
    path.write_bytes(gzip.compress(buf.getvalue()))
    with tarfile.open(path, "r:gz") as tar:
        offsets = [m.offset_data for m in tar.getmembers()]
    unit = _unit(
        [
            ByteLocation(str(path), offsets[0], 100, STREAM),
            ByteLocation(str(path), offsets[1], len(JPEGISH), STREAM),
        ],
        1 << 20,
    )
    got = list(StreamReader(unit))
    assert isinstance(got[0][1], MemberError) and "member-size cap" in str(got[0][1])
    assert got[1][1] == JPEGISH


def test_a_parquet_shard_swapped_for_a_fifo_is_refused_not_waited_on(tmp_path: Path, alarm):
    from imagenet_prep.sources.hf_parquet import PARQUET, ParquetReader, list_shard

    fifo = tmp_path / "train-00000-of-00001.parquet"
    os.mkfifo(fifo)
    with pytest.raises(ArchiveError, match="not a regular file"):
        list_shard(str(fifo))
    got = list(
        ParquetReader(_unit([ByteLocation(str(fifo), 0, 0, PARQUET), ByteLocation(str(fifo), 1, 0, PARQUET)]))
    )
    assert [type(d) for _s, d in got] == [MemberError, MemberError]
    assert "not a regular file" in str(got[0][1])
