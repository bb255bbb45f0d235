"""The image stage on real image bytes made with Pillow: geometry, repairs, pass-through, failures."""

from __future__ import annotations

import dataclasses
import io
import pickle
import struct
import time
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from support.images import encode

from imagenet_prep.errors import UsageError
from imagenet_prep.image import process as imaging
from imagenet_prep.image.process import (
    DRAFT_MIN_PSNR_DB,
    ImageFailure,
    ImageOptions,
    ImageResult,
    OutputFormat,
    ResampleFilter,
    ResizeMode,
    floor_process,
    output_extension,
    process_image,
    target_size,
)

# ----------------------------------------------------------------------------------------------- helpers


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: smooth gradients, sharp shapes and lines, sensor-like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    base = np.stack(
        [128 + 100 * np.sin(6 * x + 1), 128 + 90 * np.cos(5 * y + 2 * x), 128 + 80 * np.sin(4 * (x + y))], -1
    )
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    side = max(width, height)
    for _ in range(40):
        cx, cy, r = (
            int(rng.integers(0, width)),
            int(rng.integers(0, height)),
            int(rng.integers(3, side // 5 + 4)),
        )
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    for _ in range(60):
        points = [tuple(int(v) for v in rng.integers(0, side, 2)) for _ in range(2)]
        draw.line(points, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=int(rng.integers(1, 4)))
    noisy = np.asarray(im).astype(float) + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mse = float((diff**2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, rows: bytes | None) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit RGB, and a bomb header must not allocate pixels)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(rows if rows is not None else b"")
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def ok(result: ImageResult | ImageFailure) -> ImageResult:
    assert isinstance(result, ImageResult), result
    return result


def fail(result: ImageResult | ImageFailure) -> ImageFailure:
    assert isinstance(result, ImageFailure), result
    return result


@pytest.fixture(scope="module")
def jpeg_500x375() -> bytes:
    return encode(
        photo(500, 375), quality=96, subsampling=0
    )  # like an ImageNet JPEG: q96, no chroma subsampling


# ----------------------------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    ("size_in", "mode", "size", "upscale", "expected"),
    [
        ((500, 375), "shorter", 256, False, (341, 256)),
        ((375, 500), "shorter", 256, False, (256, 341)),
        ((300, 300), "shorter", 256, False, (256, 256)),
        ((200, 100), "shorter", 256, False, None),  # no upscaling
        ((200, 100), "shorter", 256, True, (512, 256)),
        ((400, 256), "shorter", 256, False, None),  # already there
        ((3, 2), "shorter", 1, False, (2, 1)),  # 1.5 rounds half up
        ((500, 375), "longer", 100, False, (100, 75)),
        ((375, 500), "longer", 100, False, (75, 100)),
        ((80, 60), "longer", 100, False, None),
        ((80, 60), "longer", 100, True, (100, 75)),
        ((8000, 1), "longer", 100, False, (100, 1)),  # the short side never rounds to 0
        ((500, 375), "square", 64, False, (64, 64)),
        ((50, 300), "square", 64, False, (64, 64)),  # fixed shape: enlarged even without upscale
        ((50, 300), "square", 64, True, (64, 64)),
        ((64, 64), "square", 64, False, None),
        ((500, 375), "center-crop", 224, False, (224, 224)),
        ((300, 200), "center-crop", 256, False, (256, 256)),  # fixed shape: enlarged, then cropped
        ((200, 200), "center-crop", 256, False, (256, 256)),
        ((256, 256), "center-crop", 256, False, None),
        ((100, 50), "center-crop", 256, True, (256, 256)),
        ((500, 375), "none", 256, False, None),
        ((10, 10), "none", 256, True, None),
    ],
)
def test_target_size(size_in, mode, size, upscale, expected):
    assert target_size(*size_in, ImageOptions(resize=mode, size=size, upscale=upscale)) == expected


def test_target_size_rejects_empty_images():
    with pytest.raises(ValueError, match="positive"):
        target_size(0, 10, ImageOptions())


@pytest.mark.parametrize("mode", [m for m in ResizeMode if m is not ResizeMode.NONE])
@pytest.mark.parametrize("size_in", [(500, 375), (375, 500), (120, 90)])
def test_process_image_output_has_the_target_size(jpeg_500x375, mode, size_in):
    data = jpeg_500x375 if size_in == (500, 375) else encode(photo(*size_in, seed=2))
    options = ImageOptions(resize=mode, size=100)
    result = ok(process_image(data, options, "n01440764_1.JPEG"))
    expected = target_size(*size_in, options) or size_in
    out = decode(result.data)
    assert (result.width, result.height) == out.size == expected
    assert (result.source_width, result.source_height) == size_in
    assert out.mode == "RGB" and out.format == "JPEG"
    assert result.status == "ok" and result.repairs == ()


def test_center_crop_keeps_the_centre_and_shorter_keeps_orientation():
    # red | green | blue thirds; a centre crop of the 300x100 image must be all green
    arr = np.zeros((100, 300, 3), np.uint8)
    arr[:, :100, 0] = arr[:, 100:200, 1] = arr[:, 200:, 2] = 255
    data = encode(Image.fromarray(arr), "PNG")
    crop = np.asarray(
        decode(ok(process_image(data, ImageOptions(resize="center-crop", size=50), "a.png")).data)
    )
    assert crop.shape == (50, 50, 3)
    assert crop[:, :, 1].min() > 200 and crop[:, :, 0].max() < 60 and crop[:, :, 2].max() < 60
    small = np.asarray(decode(ok(process_image(data, ImageOptions(resize="shorter", size=20), "a.png")).data))
    assert small.shape == (20, 60, 3)
    assert small[10, 5, 0] > 200 and small[10, 30, 1] > 200 and small[10, 55, 2] > 200  # red left, blue right


def test_center_crop_stays_centred_on_the_draft_path():
    arr = np.zeros((400, 1200, 3), np.uint8)
    arr[:, :400, 0] = arr[:, 400:800, 1] = arr[:, 800:, 2] = 255
    data = encode(Image.fromarray(arr))  # a JPEG 6x larger than the crop: decoded at 1/2 scale
    for draft in (True, False):
        options = ImageOptions(resize="center-crop", size=64, format="png", draft=draft)
        crop = np.asarray(decode(ok(process_image(data, options)).data))
        assert crop.shape == (64, 64, 3)
        assert crop[:, :, 1].min() > 200 and crop[:, :, 0].max() < 60 and crop[:, :, 2].max() < 60


def test_center_crop_at_the_source_side_is_an_exact_pixel_crop():
    src = photo(30, 20, seed=5)
    result = ok(
        process_image(encode(src, "PNG"), ImageOptions(resize="center-crop", size=20, format="png"), "a.png")
    )
    assert (result.width, result.height) == (20, 20)
    assert np.array_equal(np.asarray(decode(result.data)), np.asarray(src)[:, 5:25])


@pytest.mark.parametrize("mode", ["square", "center-crop"])
@pytest.mark.parametrize("source", [(62, 29), (29, 62), (10, 10), (31, 200), (200, 31)])
def test_fixed_shape_modes_are_exact_for_smaller_sources(mode, source):
    """square/center-crop give exactly size x size when the source is smaller on either side (enlarged)."""
    for upscale in (False, True):
        options = ImageOptions(resize=mode, size=32, upscale=upscale, format="png")
        result = ok(process_image(encode(photo(*source, seed=2)), options))
        assert (result.width, result.height) == (32, 32) == decode(result.data).size


def test_no_upscale_passes_a_small_jpeg_through_and_upscale_enlarges_it():
    data = encode(photo(100, 80, seed=3))
    kept = ok(process_image(data, ImageOptions(resize="shorter", size=256)))
    assert kept.data == data and kept.passthrough and (kept.width, kept.height) == (100, 80)
    grown = ok(process_image(data, ImageOptions(resize="shorter", size=256, upscale=True)))
    assert decode(grown.data).size == (320, 256) and not grown.passthrough


@pytest.mark.parametrize("flt", list(ResampleFilter))
def test_every_filter_resizes(jpeg_500x375, flt):
    result = ok(process_image(jpeg_500x375, ImageOptions(resize="shorter", size=64, filter=flt)))
    assert decode(result.data).size == (85, 64)


# ----------------------------------------------------------------------------------------------- pass-through


@pytest.mark.parametrize("fmt", ["jpeg", "original"])
def test_resize_none_returns_a_clean_jpeg_byte_identical(jpeg_500x375, fmt):
    result = ok(process_image(jpeg_500x375, ImageOptions(resize="none", format=fmt), "n01440764_1.JPEG"))
    assert result.data == jpeg_500x375 and result.passthrough
    assert (result.width, result.height, result.status, result.extension) == (500, 375, "ok", ".JPEG")
    assert result.source_format == "jpeg"


def test_passthrough_keeps_metadata_and_progressive_jpegs_pass_too():
    exif = Image.Exif()
    exif[0x010E] = "a description"
    data = encode(photo(64, 48), progressive=True, exif=exif.tobytes())
    result = ok(process_image(data, ImageOptions(resize="none")))
    assert result.data == data


def test_progressive_jpeg_decodes_and_resizes():
    data = encode(photo(400, 300), progressive=True)
    assert decode(data).info.get("progressive")
    result = ok(process_image(data, ImageOptions(resize="square", size=64)))
    assert decode(result.data).size == (64, 64) and decode(result.data).mode == "RGB"


def test_resize_none_to_png_is_lossless(jpeg_500x375):
    result = ok(process_image(jpeg_500x375, ImageOptions(resize="none", format="png")))
    assert result.extension == ".png" and result.data.startswith(b"\x89PNG") and not result.passthrough
    assert np.array_equal(np.asarray(decode(result.data)), np.asarray(decode(jpeg_500x375)))


# ----------------------------------------------------------------------------------------------- repairs


def test_cmyk_jpeg_becomes_rgb():
    src = photo(120, 90, seed=7)
    cmyk = src.convert("CMYK")
    data = encode(cmyk)
    assert (
        decode(data).mode == "CMYK" and decode(data).info.get("adobe_transform") == 0
    )  # a real Adobe CMYK JPEG
    for options in (ImageOptions(resize="none"), ImageOptions(resize="shorter", size=60)):
        result = ok(process_image(data, options, "n01739381_1309.JPEG"))
        out = decode(result.data)
        assert result.status == "repaired" and result.repairs == ("cmyk-to-rgb",)
        assert out.mode == "RGB" and out.format == "JPEG" and result.data != data
    out = decode(ok(process_image(data, ImageOptions(resize="none", format="png"))).data)
    assert np.array_equal(
        np.asarray(out), np.asarray(decode(data).convert("RGB"))
    )  # Pillow's plain conversion
    assert psnr(out, src) > 25  # and the colours survive the CMYK round trip


def test_ycck_jpeg_is_recognised():
    cmyk = encode(photo(64, 48, seed=8).convert("CMYK"))
    at = cmyk.index(b"Adobe")
    ycck = cmyk[: at + 11] + b"\x02" + cmyk[at + 12 :]  # APP14 transform byte: 2 = YCCK
    assert decode(ycck).info["adobe_transform"] == 2 and decode(ycck).mode == "CMYK"
    result = ok(process_image(ycck, ImageOptions(resize="none")))
    assert result.repairs == ("ycck-to-rgb",) and decode(result.data).mode == "RGB"


def test_png_bytes_under_a_jpeg_name_are_detected_by_content():
    src = photo(90, 60, seed=9)
    data = encode(src, "PNG")
    for name in ("n02105855_2933.JPEG", ""):
        result = ok(process_image(data, ImageOptions(resize="none"), name))
        assert result.repairs == ("png-bytes-as-jpeg",) and result.status == "repaired"
        assert result.source_format == "png" and result.extension == ".JPEG"
        assert decode(result.data).format == "JPEG" and decode(result.data).mode == "RGB"
    plain = ok(process_image(data, ImageOptions(resize="none"), "picture.png"))
    assert plain.repairs == () and plain.status == "ok" and decode(plain.data).format == "JPEG"
    original = ok(process_image(data, ImageOptions(resize="none", format="original"), "n02105855_2933.JPEG"))
    assert original.extension == ".png" and original.data == data and original.status == "repaired"
    # the decoder follows the bytes, never the name: a JPEG called .png is still a clean JPEG
    jpeg = encode(src)
    assert ok(process_image(jpeg, ImageOptions(resize="none"), "wrong.png")).data == jpeg


def _with_alpha(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    rgba.putalpha(128)  # a real alpha channel (an opaque one would be dropped by the WEBP encoder)
    return rgba


@pytest.mark.parametrize(
    ("make", "labels"),
    [
        (lambda im: encode(im.convert("L")), ("grayscale-to-rgb",)),
        (lambda im: encode(im.convert("L"), "PNG"), ("grayscale-to-rgb",)),
        (lambda im: encode(im.convert("LA"), "PNG"), ("grayscale-to-rgb", "alpha-dropped")),
        (lambda im: encode(im.convert("P"), "PNG"), ("palette-to-rgb",)),
        (lambda im: encode(im.convert("P"), "PNG", transparency=0), ("palette-to-rgb", "alpha-dropped")),
        (lambda im: encode(im.convert("RGBA"), "PNG"), ("alpha-dropped",)),
        (lambda im: encode(im.convert("1"), "PNG"), ("bilevel-to-rgb",)),
        (lambda im: encode(im.convert("P"), "GIF"), ("palette-to-rgb",)),
        (lambda im: encode(_with_alpha(im), "WEBP", lossless=True), ("alpha-dropped",)),
    ],
    ids=[
        "gray-jpeg",
        "gray-png",
        "la-png",
        "palette-png",
        "palette-transparent",
        "rgba-png",
        "bilevel",
        "gif",
        "webp",
    ],
)
def test_modes_become_rgb_with_labels(make, labels):
    data = make(photo(80, 60, seed=11))
    for options in (ImageOptions(resize="none"), ImageOptions(resize="longer", size=40, format="png")):
        result = ok(process_image(data, options, "x.img"))
        out = decode(result.data)
        assert result.repairs == labels and result.status == "repaired"
        assert out.mode == "RGB" and out.size == ((80, 60) if options.resize is ResizeMode.NONE else (40, 30))


def test_grayscale_output_is_gray():
    out = np.asarray(
        decode(ok(process_image(encode(photo(80, 60).convert("L"), "PNG"), ImageOptions())).data)
    )
    assert (
        out.shape == (60, 80, 3)
        and np.array_equal(out[..., 0], out[..., 1])
        and np.array_equal(out[..., 1], out[..., 2])
    )


def test_16_bit_grayscale_png_keeps_the_high_byte():
    arr = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 21).astype(np.uint16)
    data = encode(Image.fromarray(arr), "PNG")
    assert data[24] == 16
    result = ok(process_image(data, ImageOptions(resize="none", format="png"), "a.png"))
    assert result.repairs == ("16-bit-to-8-bit", "grayscale-to-rgb")
    out = np.asarray(decode(result.data))
    assert out.shape == (48, 64, 3) and np.array_equal(out[..., 0], (arr >> 8).astype(np.uint8))


def test_16_bit_rgb_png_is_reduced_and_never_passed_through():
    rng = np.random.default_rng(4)
    arr = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    rows = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(20))
    data = png_bytes(30, 20, 16, 2, rows)
    result = ok(process_image(data, ImageOptions(resize="none", format="original"), "a.png"))
    assert result.repairs == ("16-bit-to-8-bit",) and not result.passthrough and result.data != data
    out = np.asarray(decode(result.data))
    assert np.array_equal(out, (arr >> 8).astype(np.uint8))


def test_animated_gif_keeps_the_first_frame():
    frames = [Image.new("RGB", (20, 10), colour) for colour in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert decode(buf.getvalue()).n_frames == 2
    result = ok(process_image(buf.getvalue(), ImageOptions(resize="none", format="original"), "a.gif"))
    assert result.repairs == ("palette-to-rgb", "first-frame-only") and result.extension == ".png"
    first = decode(buf.getvalue()).convert("RGB")
    assert np.array_equal(np.asarray(decode(result.data)), np.asarray(first))


def test_exif_orientation_is_not_applied_and_no_metadata_is_written():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    icc = b"fake icc profile bytes"
    data = encode(photo(200, 100), exif=exif.tobytes(), icc_profile=icc)
    for fmt in ("jpeg", "png", "webp"):
        result = ok(process_image(data, ImageOptions(resize="shorter", size=50, format=fmt)))
        out = decode(result.data)
        assert out.size == (100, 50)  # stored orientation, like ImageNet loaders
        assert not out.info.get("icc_profile") and not out.info.get("exif") and not out.getexif()
    png_src = encode(photo(200, 100), "PNG", icc_profile=icc)
    out = decode(
        ok(process_image(png_src, ImageOptions(resize="shorter", size=50, format="png"), "a.png")).data
    )
    assert "icc_profile" not in out.info


# ----------------------------------------------------------------------------------------------- failures


def test_empty_text_html_and_random_bytes_fail_with_reasons():
    assert fail(process_image(b"", ImageOptions())).kind == "empty"
    text = fail(process_image(b"just some words\n", ImageOptions()))
    assert text.kind == "not-image" and "text" in text.reason
    html = fail(process_image(b"<!DOCTYPE html><html>403 Forbidden</html>", ImageOptions()))
    assert html.kind == "not-image" and "HTML" in html.reason
    binary = fail(process_image(bytes(range(7, 200)), ImageOptions()))
    assert binary.kind == "not-image" and "signature" in binary.reason


@pytest.mark.parametrize("resize", ["none", "shorter"])
@pytest.mark.parametrize("cut", ["half", "no-eoi", "header-only"])
def test_truncated_jpeg_fails_also_in_passthrough(jpeg_500x375, resize, cut):
    data = {"half": jpeg_500x375[: len(jpeg_500x375) // 2], "no-eoi": jpeg_500x375[:-2]}.get(
        cut, jpeg_500x375[:700]
    )
    failure = fail(process_image(data, ImageOptions(resize=resize)))
    assert failure.kind == "truncated" and "truncated" in failure.reason


def test_corrupt_images_fail():
    png = encode(photo(40, 30), "PNG")
    idat = png.index(b"IDAT")
    flipped_data = png[: idat + 24] + bytes([png[idat + 24] ^ 0xFF]) + png[idat + 25 :]
    flipped_header_crc = png[:29] + bytes([png[29] ^ 0xFF]) + png[30:]
    jpeg_garbage = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
    for data in (flipped_data, flipped_header_crc):
        for options in (ImageOptions(), ImageOptions(resize="none", format="original")):
            failure = fail(process_image(data, options, "a.png"))
            assert failure.kind == "corrupt" and failure.reason.startswith("corrupt image")
    assert fail(process_image(jpeg_garbage, ImageOptions())).kind in ("corrupt", "truncated")
    half_png = png[: len(png) // 2]
    assert fail(process_image(half_png, ImageOptions(resize="none", format="original"), "a.png")).kind in (
        "truncated",
        "corrupt",
    )


def test_decompression_bomb_png_header_fails_fast():
    data = png_bytes(100_000, 100_000, 8, 2, None)  # claims 10^10 pixels; nothing is allocated
    start = time.perf_counter()
    failure = fail(process_image(data, ImageOptions()))
    assert time.perf_counter() - start < 1.0
    assert failure.kind == "bomb" and "decompression bomb" in failure.reason


def test_decompression_bomb_jpeg_header_fails_fast(jpeg_500x375):
    # Rewrite the SOF0 frame header to claim 65000 x 65000 (JPEG's 16-bit maximum is 65535).
    sof = jpeg_500x375.index(b"\xff\xc0")
    data = jpeg_500x375[: sof + 5] + struct.pack(">HH", 65000, 65000) + jpeg_500x375[sof + 9 :]
    start = time.perf_counter()
    failure = fail(process_image(data, ImageOptions(resize="none")))
    assert time.perf_counter() - start < 1.0 and failure.kind == "bomb"


def test_bomb_between_the_limit_and_twice_the_limit_fails_without_warning(monkeypatch, jpeg_500x375):
    # Pillow only *warns* between 1x and 2x MAX_IMAGE_PIXELS; that must count as a refusal, silently.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500 * 375 * 3 // 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        failure = fail(process_image(jpeg_500x375, ImageOptions()))
    assert failure.kind == "bomb" and "decompression bomb" in failure.reason
    assert caught == []


def test_library_never_warns_on_odd_images():
    pal = photo(40, 30).convert("P")
    data = encode(pal, "PNG", transparency=b"\x00" * 10)  # bytes transparency makes Pillow warn on convert
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok(process_image(data, ImageOptions(), "a.png"))
    assert caught == []


def test_output_too_large_is_a_failure_not_an_exception():
    data = encode(photo(40, 2))
    failure = fail(
        process_image(data, ImageOptions(resize="shorter", size=4000, upscale=True, format="webp"))
    )
    assert failure.kind == "too-large" and "80000" in failure.reason


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_process_image_never_raises_on_mutated_bytes(data):
    seed_images = _fuzz_seeds()
    src = bytearray(data.draw(st.sampled_from(seed_images)))
    for _ in range(data.draw(st.integers(0, 6))):
        pos = data.draw(st.integers(0, len(src) - 1))
        src[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(src)))
    options = data.draw(st.sampled_from([ImageOptions(), ImageOptions(resize="none", format="original")]))
    result = process_image(bytes(src[:cut]), options)
    if isinstance(result, ImageResult):
        assert decode(result.data).mode == "RGB"
    else:
        assert result.reason and result.kind


_SEEDS: list[bytes] = []


def _fuzz_seeds() -> list[bytes]:
    if not _SEEDS:
        im = photo(24, 16, seed=1)
        _SEEDS.extend(
            [encode(im), encode(im, progressive=True), encode(im, "PNG"), encode(im.convert("CMYK"))]
        )
    return _SEEDS


# ------------------------------------------------------------------------------------------- draft + floor


@pytest.mark.parametrize(
    ("mode", "size"), [("square", 64), ("shorter", 128), ("center-crop", 96), ("longer", 100)]
)
def test_draft_output_is_close_to_full_decode(mode, size):
    data = encode(photo(1200, 900, seed=6), quality=95)
    drafted = decode(ok(process_image(data, ImageOptions(resize=mode, size=size, format="png"))).data)
    full = decode(
        ok(process_image(data, ImageOptions(resize=mode, size=size, format="png", draft=False))).data
    )
    assert drafted.size == full.size
    value = psnr(drafted, full)
    assert DRAFT_MIN_PSNR_DB <= value < float("inf")  # close, and different: the draft path was really taken


def test_floor_runs_the_same_operations(jpeg_500x375):
    for options in (
        ImageOptions(),
        ImageOptions(resize="square", size=64),
        ImageOptions(format="webp", size=100),
    ):
        assert floor_process(jpeg_500x375, options) == ok(process_image(jpeg_500x375, options)).data
    with pytest.raises(OSError):
        floor_process(jpeg_500x375[:1000], ImageOptions())


# ----------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("fmt", "signature", "extension"),
    [("jpeg", b"\xff\xd8\xff", ".JPEG"), ("png", b"\x89PNG", ".png"), ("webp", b"RIFF", ".webp")],
)
def test_output_formats(jpeg_500x375, fmt, signature, extension):
    result = ok(process_image(jpeg_500x375, ImageOptions(size=64, format=fmt)))
    assert result.data.startswith(signature) and result.extension == extension == output_extension(fmt)
    assert decode(result.data).mode == "RGB" and decode(result.data).size == (85, 64)


def test_quality_changes_the_jpeg(jpeg_500x375):
    low = ok(process_image(jpeg_500x375, ImageOptions(quality=30))).data
    high = ok(process_image(jpeg_500x375, ImageOptions(quality=95))).data
    assert len(low) < len(high)
    assert (
        output_extension("original", "bmp") == ".png" and output_extension(OutputFormat.ORIGINAL) == ".JPEG"
    )


def test_results_and_options_pickle():
    options = ImageOptions(resize="square", size=64, filter="box")
    assert pickle.loads(pickle.dumps(options)) == options
    result = process_image(encode(photo(20, 20)), options)
    assert pickle.loads(pickle.dumps(result)) == result
    failure = process_image(b"", options)
    assert pickle.loads(pickle.dumps(failure)) == failure


# ----------------------------------------------------------------------------------------------- options


def test_options_accept_strings_and_are_frozen():
    options = ImageOptions(resize="center-crop", size=224, format="PNG", filter="lanczos")
    assert options.resize is ResizeMode.CENTER_CROP and options.format is OutputFormat.PNG
    assert options.filter is ResampleFilter.LANCZOS
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.size = 10  # type: ignore[misc]
    assert ImageOptions(resize="none", size=None).size is None
    assert ImageOptions().filter is ResampleFilter.BICUBIC and ImageOptions().draft is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resize": "fit"}, "shorter, longer, square, center-crop"),
        ({"format": "gif"}, "jpeg, png, webp, original"),
        ({"filter": "cubic"}, "bicubic, bilinear"),
        ({"size": 0}, "between 1 and"),
        ({"size": None}, "needs an integer size"),
        ({"size": 256.0}, "needs an integer size"),
        ({"size": 20000, "format": "webp"}, "16383"),
        ({"quality": 0}, "1 to 100"),
        ({"quality": 101}, "1 to 100"),
        ({"quality": True}, "1 to 100"),
        ({"upscale": "yes"}, "true or false"),
        ({"resize": "none", "size": "big"}, "integer"),
    ],
)
def test_bad_options_raise_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        ImageOptions(**kwargs)


def test_module_documents_its_conventions():
    doc = imaging.__doc__ or ""
    assert "EXIF orientation is not applied" in doc and "ICC" in doc


@pytest.mark.parametrize(
    "data",
    [
        b"alice:ghp_secretTOKEN0123456789@example\n",  # a credentials file behind a link
        b"\x01\x02secret-binary-bytes\xfe\xff" * 4,
        b"<html>secret-page</html>",
    ],
)
def test_a_non_images_reason_says_its_type_and_size_never_its_bytes(data):
    failure = fail(process_image(data, ImageOptions()))
    assert failure.kind == "not-image"
    assert "secret" not in failure.reason and "ghp_" not in failure.reason and "alice" not in failure.reason
    assert data[:2].hex() not in failure.reason.replace(" ", "")
    assert f"{len(data)} bytes" in failure.reason
