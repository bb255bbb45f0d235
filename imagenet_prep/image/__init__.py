"""The image stage: options, output geometry, and decode -> repair -> resize -> encode (bytes in, bytes out)."""

from .geometry import source_box, target_size
from .options import (
    ImageOptions,
    OutputFormat,
    ResampleFilter,
    ResizeMode,
    Resizer,
    coerce_enum,
    fast_resizer_available,
)
from .process import ImageFailure, ImageResult, floor_process, output_extension, process_image

__all__ = [
    "ImageFailure",
    "ImageOptions",
    "ImageResult",
    "OutputFormat",
    "ResampleFilter",
    "ResizeMode",
    "Resizer",
    "coerce_enum",
    "fast_resizer_available",
    "floor_process",
    "output_extension",
    "process_image",
    "source_box",
    "target_size",
]
