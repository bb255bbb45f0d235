"""Image bytes made with Pillow, for the image-stage tests."""

from __future__ import annotations

import io

from PIL import Image


def encode(im: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    """``im`` saved as ``fmt`` (JPEG at quality 95 unless told)."""
    buf = io.BytesIO()
    if fmt == "JPEG":
        kwargs.setdefault("quality", 95)
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()
