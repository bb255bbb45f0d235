"""Issue 15, decompression bombs under Pillow's pixel limit: a per-image decode budget (MAX_DECODE_PIXELS)
refuses, as a recorded skip, images whose decode would take hundreds of MB per worker, and no real-looking
image."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
from PIL import Image
from support.images import encode

from imagenet_prep.image import process as imaging
from imagenet_prep.image.process import ImageFailure, ImageOptions, ImageResult, process_image


def flat_png(width: int, height: int, channels: int = 3) -> bytes:
    """A valid, fully decodable PNG of one flat colour: tiny on disk, ``width x height`` once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    color_type = {1: 0, 3: 2, 4: 6}[channels]
    compressor = zlib.compressobj(1)
    row = b"\0" + b"\x80" * (width * channels)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def flat_jpeg(width: int, height: int, **kwargs) -> bytes:
    return encode(Image.new("L", (width, height), 128), **kwargs)


def test_budget_is_documented_and_fits_real_images():
    assert imaging.MAX_DECODE_PIXELS >= 7056 * 4488  # the largest real ImageNet photos decode in full
    assert "MAX_DECODE_PIXELS" in imaging.__doc__


def test_png_over_the_budget_is_a_recorded_skip():
    side = 6000  # 36 MP: under Pillow's limit (89 MP), over the decode budget
    data = flat_png(side, side, channels=1)
    assert len(data) < 200_000
    result = process_image(data, ImageOptions(), "n01440764_1.JPEG")
    assert isinstance(result, ImageFailure) and result.kind == "too-large"
    assert "6000x6000" in result.reason and "MAX_DECODE_PIXELS" in result.reason


def test_progressive_jpeg_over_the_budget_is_refused_even_with_draft():
    # libjpeg keeps every DCT coefficient of a progressive JPEG, whatever the draft scale.
    result = process_image(flat_jpeg(6000, 6000, progressive=True), ImageOptions())
    assert isinstance(result, ImageFailure) and result.kind == "too-large" and "progressive" in result.reason


def test_baseline_jpeg_over_the_budget_is_fine_when_draft_brings_it_under():
    result = process_image(flat_jpeg(6000, 6000), ImageOptions())
    assert isinstance(result, ImageResult) and (result.width, result.height) == (256, 256)


def test_baseline_jpeg_over_the_budget_is_refused_when_it_must_be_decoded_whole():
    result = process_image(flat_jpeg(6000, 6000), ImageOptions(resize="none", size=None, format="png"))
    assert isinstance(result, ImageFailure) and result.kind == "too-large"


@pytest.mark.parametrize(
    ("make", "options"),
    [
        (lambda: flat_jpeg(7056, 4488), ImageOptions(resize="none", size=None, format="png")),
        (lambda: flat_jpeg(4000, 4000, progressive=True), ImageOptions()),
        (lambda: flat_png(4000, 4000), ImageOptions()),
        (lambda: flat_png(4000, 4000, channels=4), ImageOptions(resize="none", size=None, format="jpeg")),
    ],
    ids=["31.7MP-jpeg-full-decode", "16MP-progressive", "16MP-png", "16MP-rgba-png"],
)
def test_real_looking_images_are_not_refused(make, options):
    assert isinstance(process_image(make(), options, "x.JPEG"), ImageResult)


def test_budget_can_be_changed_at_run_time(monkeypatch):
    monkeypatch.setattr(imaging, "MAX_DECODE_PIXELS", 100 * 100)
    result = process_image(flat_png(200, 200), ImageOptions())
    assert isinstance(result, ImageFailure) and result.kind == "too-large"
    monkeypatch.setattr(imaging, "MAX_DECODE_PIXELS", None)
    assert isinstance(process_image(flat_png(200, 200), ImageOptions()), ImageResult)


def test_a_worker_stays_small_on_a_png_just_under_pillows_limit(tmp_path: Path):
    """Peak RSS of a fresh process decoding a 9400x9400 PNG (88 MP, 260 KB on disk): ~360 MB without the
    budget."""
    path = tmp_path / "bomb.png"
    path.write_bytes(flat_png(9400, 9400))
    code = textwrap.dedent(
        """
        import resource, sys
        from imagenet_prep.image.process import ImageFailure, ImageOptions, process_image
        result = process_image(open(sys.argv[1], "rb").read(), ImageOptions(), "x.JPEG")
        assert isinstance(result, ImageFailure), result
        # VmHWM: this process's own peak. ru_maxrss is kept across exec, so it would report the peak of a big
        # pytest process that forked this one.
        try:
            status = open("/proc/self/status").read()
            print(int(status.split("VmHWM:")[1].split()[0]) // 1024)
        except (OSError, IndexError):
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 150, f"peak RSS {done.stdout.strip()} MB"
