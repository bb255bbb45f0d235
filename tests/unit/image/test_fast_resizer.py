"""The optional fast resizer (``ImageOptions(resizer="fast")``, package cykooz-resizer): same geometry as the
Pillow path, pixels within the stated PSNR, a clear error when the package is missing."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from imagenet_prep.errors import UsageError
from imagenet_prep.image import process as imaging
from imagenet_prep.image.process import (
    FAST_MIN_PSNR_DB,
    ImageOptions,
    ImageResult,
    ResampleFilter,
    Resizer,
    floor_process,
    process_image,
)


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colour fields, hard-edged shapes and grain: what makes resampling filters differ."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    base = np.stack(
        [128 + 100 * np.sin(7 * x), 128 + 90 * np.cos(5 * y + 3 * x), 128 + 80 * np.sin(4 * y)], -1
    )
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(30):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(2, width // 3 + 3)), y0 + int(rng.integers(2, height // 3 + 3))
        draw.rectangle((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    noisy = np.asarray(im).astype(float) + rng.normal(0, 10, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def jpeg(im: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=96, subsampling=0, **params)
    return buf.getvalue()


def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def test_missing_package_is_one_clear_usage_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cykooz_resizer", None)  # makes `import cykooz_resizer` fail
    assert imaging.fast_resizer_available() is False
    with pytest.raises(UsageError, match=r"cykooz-resizer.*imagenet-prep\[fast\]"):
        ImageOptions(resizer="fast")
    assert ImageOptions(resizer="pillow").resizer is Resizer.PILLOW  # the default needs nothing


def test_unknown_resizer_lists_the_valid_ones():
    with pytest.raises(UsageError, match="pillow, fast"):
        ImageOptions(resizer="simd")


# The extra is in the test dependencies (pyproject), so these run in CI; skipped only where it is absent.
needs_fast = pytest.mark.skipif(
    not imaging.fast_resizer_available(), reason="the optional fast resizer (cykooz-resizer) is not installed"
)


@needs_fast
@pytest.mark.parametrize(
    ("mode", "size", "source"),
    [
        ("shorter", 256, (500, 375)),
        ("shorter", 64, (375, 500)),
        ("longer", 160, (640, 427)),
        ("square", 64, (500, 333)),
        ("center-crop", 96, (500, 375)),
        ("center-crop", 128, (301, 457)),
    ],
)
def test_fast_path_keeps_geometry_and_stays_within_the_stated_psnr(mode, size, source):
    data = jpeg(photo(*source, seed=size))
    pillow = process_image(data, ImageOptions(resize=mode, size=size, quality=95), "x.JPEG")
    quick = process_image(data, ImageOptions(resize=mode, size=size, quality=95, resizer="fast"), "x.JPEG")
    assert isinstance(pillow, ImageResult) and isinstance(quick, ImageResult)
    assert (quick.width, quick.height, quick.extension) == (pillow.width, pillow.height, pillow.extension)
    assert decoded(quick.data).size == (quick.width, quick.height)
    # Before encoding: the resized pixels themselves.
    im_a = Image.open(io.BytesIO(data))
    im_b = Image.open(io.BytesIO(data))
    out = imaging.target_size(*im_a.size, ImageOptions(resize=mode, size=size))
    a = imaging._decode_resized(im_a, out, ImageOptions(resize=mode, size=size))
    b = imaging._decode_resized(im_b, out, ImageOptions(resize=mode, size=size, resizer="fast"))
    assert a.size == b.size == out
    assert psnr(a, b) >= FAST_MIN_PSNR_DB
    assert a.tobytes() != b.tobytes()  # it really is another implementation


@needs_fast
@pytest.mark.parametrize("filter_", ["bilinear", "lanczos", "box"])
def test_other_filters_match_their_pillow_definitions(filter_):
    data = jpeg(photo(480, 360, seed=3))
    opts = {"resize": "shorter", "size": 200, "filter": filter_, "draft": False}
    im = Image.open(io.BytesIO(data))
    out = imaging.target_size(*im.size, ImageOptions(**opts))
    a = imaging._decode_resized(Image.open(io.BytesIO(data)), out, ImageOptions(**opts))
    b = imaging._decode_resized(Image.open(io.BytesIO(data)), out, ImageOptions(**opts, resizer="fast"))
    assert psnr(a, b) >= FAST_MIN_PSNR_DB


@needs_fast
@pytest.mark.parametrize("filter_", [ResampleFilter.HAMMING, ResampleFilter.NEAREST])
def test_filters_without_a_fast_equivalent_fall_back_to_pillow(filter_):
    data = jpeg(photo(400, 300, seed=4))
    a = process_image(data, ImageOptions(size=128, filter=filter_))
    b = process_image(data, ImageOptions(size=128, filter=filter_, resizer="fast"))
    assert isinstance(a, ImageResult) and a.data == b.data


@needs_fast
def test_grayscale_and_floor_use_the_fast_path_too():
    gray = jpeg(photo(400, 300, seed=5).convert("L"))
    result = process_image(gray, ImageOptions(size=100, resizer="fast"))
    assert isinstance(result, ImageResult) and "grayscale-to-rgb" in result.repairs
    assert decoded(result.data).mode == "RGB" and (result.width, result.height) == (133, 100)
    reference = process_image(gray, ImageOptions(size=100))
    assert psnr(decoded(result.data), decoded(reference.data)) >= 40  # after JPEG encoding both
    floor = floor_process(gray, ImageOptions(size=100, resizer="fast"))
    assert floor == result.data  # the benchmark floor runs the same operations


# --resizer auto: resolved when the options are made, so nothing downstream (config, build.json, repair) holds it.
@needs_fast
def test_auto_is_fast_where_the_package_loads():
    options = ImageOptions(resizer="auto")
    assert options.resizer is Resizer.FAST
    data = jpeg(photo(500, 375, seed=6))
    assert process_image(data, options) == process_image(data, ImageOptions(resizer="fast"))


def test_auto_is_pillow_where_the_package_does_not_load(monkeypatch):
    monkeypatch.setitem(sys.modules, "cykooz_resizer", None)  # makes `import cykooz_resizer` fail
    assert ImageOptions(resizer="auto").resizer is Resizer.PILLOW  # no error: auto never needs the extra
    assert ImageOptions(resizer="AUTO", resize="square", size=64).resizer is Resizer.PILLOW


@pytest.mark.parametrize(
    "options",
    [
        {"resize": "adm", "size": 64},  # a published pipeline: Pillow's calls, pixel for pixel
        {"resize": "downsampled", "size": 32, "filter": "box"},
        {"resize": "none", "size": None},  # nothing is resized
        {"filter": "hamming"},  # no fast equivalent: Pillow's resize runs
        {"filter": "nearest"},
    ],
)
def test_auto_names_pillow_where_pillow_does_the_work(options):
    assert ImageOptions(**options, resizer="auto").resizer is Resizer.PILLOW


def test_auto_knows_the_filters_the_fast_path_has():
    from imagenet_prep.image.options import FAST_FILTERS

    assert set(imaging._FAST_FILTERS) == FAST_FILTERS


@needs_fast
def test_a_config_with_auto_records_the_concrete_engine(tmp_path):
    from imagenet_prep.config import build_config, command_words

    config = build_config({}, {"source": tmp_path, "out": tmp_path / "out", "resizer": "auto"})
    assert config.image.resizer is Resizer.FAST
    recorded = config.to_dict()
    assert recorded["resizer"] == "fast"
    words = command_words(recorded, tmp_path / "out")
    assert "auto" not in words and words[words.index("--resizer") + 1] == "fast"
