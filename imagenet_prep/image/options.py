"""Image options: the enums and the frozen ImageOptions record every stage shares (validated once, here)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from PIL import Image


class ResizeMode(str, Enum):
    NONE = "none"
    SHORTER = "shorter"
    LONGER = "longer"
    SQUARE = "square"
    CENTER_CROP = "center-crop"
    # MIIL's ImageNet-21K-P resize: squash to size x size, an image with max(w, h) < size kept as it is
    # (with upscale: always size x size).
    SQUISH = "squish"
    # Published pipelines, pixel for pixel (image/reference.py): guided-diffusion's center_crop_arr, and
    # Chrabaszcz et al.'s Downsampled-ImageNet squash. Always a full decode.
    ADM = "adm"
    DOWNSAMPLED = "downsampled"

    @classmethod
    def _missing_(cls, value: object) -> ResizeMode | None:
        """Other names of a mode: EDM2's ``dataset_tool.py --transform`` name, the paper's first author."""
        return _RESIZE_ALIASES.get(str(value).lower())


_RESIZE_ALIASES = {"center-crop-dhariwal": ResizeMode.ADM, "chrabaszcz": ResizeMode.DOWNSAMPLED}


class OutputFormat(str, Enum):
    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    ORIGINAL = "original"  # the source's own format: JPEG, PNG or WEBP; GIF/BMP sources become (lossless) PNG


class ResampleFilter(str, Enum):
    """Resampling filter of the final resize. Default ``bicubic``: Pillow's own ``resize`` and
    ``thumbnail`` default, sharper than bilinear. ``bilinear`` (torchvision's default) makes that
    resize ~1.6x faster (~15% of a shorter-256 image's total time); ``box`` is Downsampled-ImageNet's
    choice; ``lanczos`` is the sharpest and slowest."""

    BICUBIC = "bicubic"
    BILINEAR = "bilinear"
    LANCZOS = "lanczos"
    BOX = "box"
    HAMMING = "hamming"
    NEAREST = "nearest"

    @property
    def pillow(self) -> Image.Resampling:
        from PIL import Image  # here: the options (a config, --help) import no Pillow

        return Image.Resampling[self.name]


class Resizer(str, Enum):
    """The implementation of the final resize. ``pillow`` (default): Pillow's ``resize``. ``fast``: the SIMD
    (AVX2/SSE4.1/NEON) convolution of the optional ``cykooz-resizer`` package (Rust ``fast_image_resize``):
    the same filter definitions as Pillow's (bicubic = Catmull-Rom, a = -0.5; the support widened when
    shrinking), ~8x faster than Pillow's resize at 500x375 -> 341x256, and within ``FAST_MIN_PSNR_DB`` of
    Pillow's pixels (rounding differences: ~54 dB measured). ``hamming`` and ``nearest`` have no equivalent
    there and use Pillow's. Install with ``pip install 'imagenet-prep[fast]'``. ``auto``: the fastest engine
    this machine has for these options (:func:`auto_resizer`); it is resolved when the options are made, so a
    config, build.json and a repair command only ever hold the concrete engine (output bytes depend on it)."""

    PILLOW = "pillow"
    FAST = "fast"
    AUTO = "auto"


_FAST_PACKAGE = "cykooz-resizer"
MAX_OUTPUT_SIDE = 65_500  # libjpeg's limit; WEBP's is 16,383 (checked separately)
WEBP_MAX_SIDE = 16_383


def fast_resizer_available() -> bool:
    """Whether the optional package behind ``Resizer.FAST`` is installed (and loads)."""
    try:
        import cykooz_resizer  # noqa: F401
    except ImportError:
        return False
    return True


#: The filters the fast resizer has an equivalent of (the others run Pillow's resize under ``fast``).
FAST_FILTERS = frozenset(
    {ResampleFilter.BICUBIC, ResampleFilter.BILINEAR, ResampleFilter.LANCZOS, ResampleFilter.BOX}
)


def auto_resizer(resize: ResizeMode, filter: ResampleFilter) -> Resizer:
    """The engine ``--resizer auto`` stands for: ``fast`` when its package loads and it would run (a resize
    with one of its filters), else ``pillow``. A published pipeline (adm, downsampled) and ``--resize none``
    resize nothing with it, so they resolve to ``pillow``: build.json then names the engine that ran."""
    if resize in (ResizeMode.NONE, ResizeMode.ADM, ResizeMode.DOWNSAMPLED) or filter not in FAST_FILTERS:
        return Resizer.PILLOW
    return Resizer.FAST if fast_resizer_available() else Resizer.PILLOW


def valid_values(enum: type[Enum]) -> str:
    return ", ".join(m.value for m in enum)


def coerce_enum(enum: type[Enum], value: object, field: str) -> Any:
    """``value`` as a member of ``enum`` (case-insensitive for strings); a UsageError lists the valid values."""
    if isinstance(value, enum):
        return value
    try:
        return enum(str(value).lower() if isinstance(value, str) else value)
    except ValueError:
        raise UsageError(f"Invalid {field} {value!r}: use one of {valid_values(enum)}.") from None


@dataclass(frozen=True)
class ImageOptions:
    """How every image of a build is processed. Strings are accepted for the enum fields (from YAML/CLI)."""

    resize: ResizeMode = ResizeMode.SHORTER
    size: int | None = 256
    quality: int = 90
    format: OutputFormat = OutputFormat.JPEG
    filter: ResampleFilter = ResampleFilter.BICUBIC
    upscale: bool = False
    draft: bool = True
    resizer: Resizer = Resizer.PILLOW
    # Pass-through images (original bytes kept) are fully entropy-decoded to prove they are not truncated;
    # False skips that decode (a fast repack of trusted archives: a truncated original would be written as is).
    verify: bool = True

    def __post_init__(self) -> None:
        # frozen: coerce through object.__setattr__ so "shorter" from a config file becomes ResizeMode.SHORTER
        object.__setattr__(self, "resize", coerce_enum(ResizeMode, self.resize, "resize mode"))
        object.__setattr__(self, "format", coerce_enum(OutputFormat, self.format, "output format"))
        object.__setattr__(self, "filter", coerce_enum(ResampleFilter, self.filter, "resample filter"))
        object.__setattr__(self, "resizer", coerce_enum(Resizer, self.resizer, "resizer"))
        if self.resizer is Resizer.AUTO:  # resolved here, once: every later stage sees the engine that runs
            object.__setattr__(self, "resizer", auto_resizer(self.resize, self.filter))
        if self.resize in (ResizeMode.ADM, ResizeMode.DOWNSAMPLED):
            if self.resizer is Resizer.FAST:
                raise UsageError(
                    f"--resize {self.resize.value} runs the published Pillow calls; --resizer fast would change "
                    "its pixels: drop --resizer fast."
                )
            if self.resize is ResizeMode.ADM and self.filter is not ResampleFilter.BICUBIC:
                raise UsageError(
                    "--resize adm uses the published filters (box halvings, then bicubic): drop --filter."
                )
        if self.resizer is Resizer.FAST and not fast_resizer_available():
            raise UsageError(
                f"The fast resizer needs the optional package {_FAST_PACKAGE}: run "
                "`pip install 'imagenet-prep[fast]'`, or use the default resizer (pillow)."
            )
        if self.resize is not ResizeMode.NONE:
            if self.size is None or isinstance(self.size, bool) or not isinstance(self.size, int):
                raise UsageError(
                    f"Resize mode {self.resize.value!r} needs an integer size (e.g. --size 256), got "
                    f"{self.size!r}; or use --resize none to keep the original size."
                )
            limit = WEBP_MAX_SIDE if self.format is OutputFormat.WEBP else MAX_OUTPUT_SIDE
            if not 1 <= self.size <= limit:
                raise UsageError(f"Invalid size {self.size}: it must be between 1 and {limit} pixels.")
        elif self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int)):
            raise UsageError(f"Invalid size {self.size!r}: give an integer number of pixels.")
        if (
            isinstance(self.quality, bool)
            or not isinstance(self.quality, int)
            or not 1 <= self.quality <= 100
        ):
            raise UsageError(f"Invalid quality {self.quality!r}: use an integer from 1 to 100 (default 90).")
        for field in ("upscale", "draft", "verify"):
            if not isinstance(getattr(self, field), bool):
                raise UsageError(f"Invalid {field} {getattr(self, field)!r}: use true or false.")
