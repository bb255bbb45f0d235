"""What the image stage returns for one image: the processed bytes (ImageResult) or why it could not be
processed (ImageFailure). Plain records, free of Pillow, so a writer or a registry can name them without the
image library loading (Pillow loads only where an image is processed: ``image/process.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageResult:
    data: bytes
    width: int
    height: int
    status: str  # "ok" | "repaired"
    repairs: tuple[str, ...]
    source_format: str  # sniffed from the bytes: "jpeg" (also MPO), "png", "webp", "gif", "bmp"
    source_width: int
    source_height: int
    extension: str  # ".JPEG", ".png" or ".webp"
    passthrough: bool = False  # True when ``data`` is the source's bytes, unchanged
    enlarged: bool = False  # True when the output is larger than the source on a side (fixed-shape modes)


@dataclass(frozen=True)
class ImageFailure:
    reason: str
    # One of: "empty", "not-image", "bomb", "truncated", "corrupt", "unsupported", "too-large", "unreadable"
    # (a member the reader could not read: MemberError). For summaries.
    kind: str = "corrupt"
