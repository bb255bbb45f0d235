"""Output geometry of every resize mode: the output size and the source region that maps onto it.

Shared by the image stage (what to decode and resize) and by anything that maps coordinates through a resize
(bounding boxes). The conventions are documented in :mod:`imagenet_prep.image.process`.
"""

from __future__ import annotations

from .options import ImageOptions, ResizeMode


def _round_half_up(num: int, den: int) -> int:
    """round(num / den) with halves rounded up, in exact integer arithmetic (no float error at 8000 px)."""
    return (2 * num + den) // (2 * den)


def target_size(width: int, height: int, options: ImageOptions) -> tuple[int, int] | None:
    """The output (width, height) for a ``width x height`` source, or None when the size stays as it is."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    mode, size = options.resize, options.size
    if mode is ResizeMode.NONE:
        return None
    assert size is not None  # validated by ImageOptions
    if mode is ResizeMode.SQUISH:
        if max(width, height) < size and not options.upscale:
            return None
        return None if (width, height) == (size, size) else (size, size)
    if mode is ResizeMode.SHORTER or mode is ResizeMode.LONGER:
        short, long_ = min(width, height), max(width, height)
        ref = short if mode is ResizeMode.SHORTER else long_
        if ref == size or (ref < size and not options.upscale):
            return None
        if mode is ResizeMode.SHORTER:
            new_short, new_long = size, max(1, _round_half_up(long_ * size, short))
        else:
            new_short, new_long = max(1, _round_half_up(short * size, long_)), size
        out = (new_short, new_long) if width <= height else (new_long, new_short)
    else:  # SQUARE, CENTER_CROP: fixed-shape modes are always exactly size x size (a smaller source is
        # enlarged whatever ``upscale`` says: a "32x32" dataset must hold only 32x32 arrays)
        out = (size, size)
    return None if out == (width, height) else out


def enlarges(width: int, height: int, out: tuple[int, int] | None) -> bool:
    """True when the output ``out`` is larger than the source on either side (an enlarged image)."""
    return out is not None and (out[0] > width or out[1] > height)


def source_box(
    width: int, height: int, out: tuple[int, int], options: ImageOptions
) -> tuple[float, float, float, float]:
    """The source region (left, top, right, bottom) that maps onto the output."""
    if (
        options.resize is ResizeMode.ADM
    ):  # guided-diffusion's halvings + resize + integer crop, in source pixels
        assert options.size is not None
        size, (w, h) = options.size, (width, height)
        while min(w, h) >= 2 * size:
            w, h = w // 2, h // 2
        scale = size / min(w, h)
        scaled_w, scaled_h = round(w * scale), round(h * scale)
        left, top = (scaled_w - size) // 2, (scaled_h - size) // 2
        sx, sy = width / scaled_w, height / scaled_h
        return (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    if options.resize is not ResizeMode.CENTER_CROP:
        return (0, 0, width, height)
    side = min(width, height)
    if out[0] == side:  # a crop without scaling: keep it on whole pixels so no resampling blurs it
        left, top = (width - side) // 2, (height - side) // 2
        return (left, top, left + side, top + side)
    fleft, ftop = (width - side) / 2, (height - side) / 2
    return (fleft, ftop, fleft + side, ftop + side)
