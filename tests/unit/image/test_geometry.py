"""Property tests (hypothesis) for resize geometry: every mode, sizes 1..4096, sources 1..8000 px.

Promises checked: NONE keeps the size; SHORTER/LONGER put exactly ``size`` on that side and keep the
aspect ratio (the derived side within 0.5 px of exact, or clamped to 1 px); SQUARE/CENTER-CROP are
fixed-shape modes: always exactly ``size x size``, whatever the source and ``upscale`` (a smaller source is
enlarged); for SHORTER/LONGER without ``upscale`` no output side exceeds its source side; ``None`` is
returned exactly when the output would equal the source. Then a few real tiny images go through
``process_image`` and must come out at exactly ``target_size`` as decodable 3-channel RGB.
"""

from __future__ import annotations

import io
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imagenet_prep.image.process import ImageOptions, ImageResult, ResizeMode, process_image, target_size

# SQUISH (MIIL's ImageNet-21K-P rule) enlarges the shorter side by design: its own properties are below.
modes = st.sampled_from([mode for mode in ResizeMode if mode is not ResizeMode.SQUISH])
# Fixed-shape modes: always exactly size x size (the reference modes adm and downsampled are two more).
FIXED = (ResizeMode.SQUARE, ResizeMode.CENTER_CROP, ResizeMode.ADM, ResizeMode.DOWNSAMPLED)
all_modes = st.sampled_from(list(ResizeMode))
sizes = st.integers(1, 4096)
sides = st.integers(1, 8000)


def _options(mode: ResizeMode, size: int, upscale: bool) -> ImageOptions:
    return ImageOptions(resize=mode, size=size, upscale=upscale)


@settings(max_examples=300, deadline=None)
@given(modes, sizes, sides, sides, st.booleans())
def test_target_size_keeps_its_promises(mode, size, width, height, upscale):
    out = target_size(width, height, _options(mode, size, upscale))
    if mode is ResizeMode.NONE:
        assert out is None
        return
    if out is None:
        out_w, out_h = width, height
    else:
        out_w, out_h = out
        assert (out_w, out_h) != (width, height)  # None is the only way to say "unchanged"
    assert out_w >= 1 and out_h >= 1
    if not upscale and mode in (ResizeMode.SHORTER, ResizeMode.LONGER):
        assert out_w <= width and out_h <= height

    short, long_ = min(width, height), max(width, height)
    if mode in (ResizeMode.SHORTER, ResizeMode.LONGER):
        ref = short if mode is ResizeMode.SHORTER else long_
        if ref > size or (ref < size and upscale):
            # exactly `size` on the promised side, orientation kept
            out_short, out_long = min(out_w, out_h), max(out_w, out_h)
            assert (out_short if mode is ResizeMode.SHORTER else out_long) == size
            assert (out_w <= out_h) == (width <= height) or width == height or out_w == out_h
            # the derived side is the exact aspect-preserving value, rounded (or clamped up to 1 px)
            exact = (
                Fraction(long_ * size, short) if mode is ResizeMode.SHORTER else Fraction(short * size, long_)
            )
            derived = out_long if mode is ResizeMode.SHORTER else out_short
            assert abs(derived - exact) <= Fraction(1, 2) or (derived == 1 and exact < 1)
        else:
            assert out is None  # already there, or smaller without --upscale
    else:  # FIXED: exactly size x size, enlarging a smaller source even without upscale
        assert (out_w, out_h) == (size, size)


@settings(max_examples=200, deadline=None)
@given(modes, sizes, sides, sides)
def test_aspect_ratio_is_kept_within_one_pixel(mode, size, width, height):
    for upscale in (False, True):
        out = target_size(width, height, _options(mode, size, upscale))
        if out is None or mode in FIXED:
            continue
        out_w, out_h = out
        # the side derived from the one set to `size` is within 1 px of the exact source ratio
        (set_out, set_src), (derived_out, derived_src) = sorted(
            [(out_w, width), (out_h, height)], key=lambda pair: pair[1], reverse=mode is ResizeMode.LONGER
        )
        if width == height:
            assert out_w == out_h
        else:
            assert abs(derived_out - Fraction(set_out * derived_src, set_src)) <= 1


@settings(max_examples=200, deadline=None)
@given(modes, sizes, sides, sides)
def test_upscale_only_matters_for_small_sources(mode, size, width, height):
    plain = target_size(width, height, _options(mode, size, False))
    grown = target_size(width, height, _options(mode, size, True))
    big_enough = {
        ResizeMode.NONE: True,
        ResizeMode.SHORTER: min(width, height) >= size,
        ResizeMode.LONGER: max(width, height) >= size,
        ResizeMode.SQUARE: True,  # fixed-shape modes ignore upscale: always size x size
        ResizeMode.CENTER_CROP: True,
        ResizeMode.ADM: True,
        ResizeMode.DOWNSAMPLED: True,
    }[mode]
    if big_enough:
        assert plain == grown
    else:
        assert grown is not None and max(grown) >= size  # --upscale reaches the size


@settings(max_examples=200, deadline=None)
@given(modes, sizes, sides, sides, st.booleans())
def test_swapping_width_and_height_swaps_the_output(mode, size, width, height, upscale):
    options = _options(mode, size, upscale)
    out = target_size(width, height, options)
    swapped = target_size(height, width, options)
    assert (out is None and swapped is None) or (out is not None and swapped == (out[1], out[0]))


def _tiny(width: int, height: int, fmt: str, mode: str) -> bytes:
    # a gradient, so resampling and cropping have something to work on
    im = Image.linear_gradient("L").resize((width, height)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


@settings(max_examples=200, deadline=None)
@given(sizes, sides, sides, st.booleans())
def test_squish_is_size_squared_unless_the_longer_side_is_smaller(size, width, height, upscale):
    out = target_size(width, height, _options(ResizeMode.SQUISH, size, upscale))
    if (width, height) == (size, size) or (max(width, height) < size and not upscale):
        assert out is None
    else:
        assert out == (size, size)


@settings(max_examples=60, deadline=None)
@given(
    all_modes,
    st.integers(1, 40),
    st.integers(1, 48),
    st.integers(1, 48),
    st.booleans(),
    st.sampled_from([("JPEG", "RGB"), ("JPEG", "L"), ("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "P")]),
    st.sampled_from(["jpeg", "png", "webp"]),
)
def test_real_tiny_images_come_out_at_target_size(mode, size, width, height, upscale, source, out_fmt):
    data = _tiny(width, height, *source)
    options = ImageOptions(resize=mode, size=size, upscale=upscale, format=out_fmt)
    result = process_image(data, options, "n00000000_1.JPEG")
    assert isinstance(result, ImageResult), result
    expected = target_size(width, height, options) or (width, height)
    out = Image.open(io.BytesIO(result.data))
    out.load()
    assert out.size == (result.width, result.height) == expected
    assert out.mode == "RGB" and out.format == {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[out_fmt]
    assert (result.source_width, result.source_height) == (width, height)
