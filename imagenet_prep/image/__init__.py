"""The image stage: options, output geometry, and decode -> repair -> resize -> encode (bytes in, bytes out).

The processing names (``process.py``) load on first use: they import Pillow (~15 ms), which the options and
geometry (what a config and ``--help`` need) do not.
"""

from typing import TYPE_CHECKING, Any

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
from .results import ImageFailure, ImageResult

if TYPE_CHECKING:
    from .process import floor_process, output_extension, process_image

_PROCESS = ("floor_process", "output_extension", "process_image")


def __getattr__(name: str) -> Any:
    if name in _PROCESS:
        from . import process

        return getattr(process, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
