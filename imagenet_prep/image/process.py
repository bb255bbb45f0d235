"""The image stage of a build: bytes in, bytes out (no file I/O, no printing).

``process_image(data, options, name)`` decodes one archive member with Pillow, repairs it, resizes
it and encodes it, and returns an :class:`ImageResult` or, for a bad image, an :class:`ImageFailure`
(it never raises for bad bytes: a bad image is data, not an exception).

Conventions (what a model trained on the output sees):

* **Repair by content, never by name.** The format is sniffed from the bytes (the one ILSVRC2012 PNG
  named ``.JPEG`` is decoded as PNG); CMYK and YCCK JPEGs, grayscale, bilevel, palette, alpha and
  16-bit images all become 8-bit, 3-channel RGB. Each fix is named in ``ImageResult.repairs`` (see
  ``REPAIR_LABELS``) and sets ``status == "repaired"``. ``name`` only words a label: non-JPEG bytes
  under a ``.JPEG``/``.jpg`` name (or no name: every ImageNet member is ``.JPEG``) get
  ``"<format>-bytes-as-jpeg"``.
* **EXIF orientation is not applied**, like torchvision's, Keras' and TF's ImageNet loaders: pixels
  stay in stored order. **ICC profiles are neither applied nor copied** (the same as
  ``Image.open(...).convert("RGB")``); CMYK/YCCK go through Pillow's plain ``convert("RGB")``.
  Alpha is dropped, not composited (again what ``convert("RGB")`` in an ImageFolder loader does).
  No metadata (EXIF, ICC, XMP, comments) is written; passed-through original bytes are untouched.
* **Pass-through.** When the geometry does not change (``resize none``, or a source already within
  the target without ``upscale``), no pixel repair is needed and the output format is the source's
  (``jpeg``/``original`` for a JPEG source, ``original`` for PNG/WEBP), the original bytes are
  returned unchanged, after a full entropy decode (at the cheapest DCT scale for JPEG) proved that
  they are not truncated (``options.verify``, the default; ``verify=False`` skips that decode).
* **Geometry** (``target_size``): ``shorter``/``longer`` set that side to ``size`` keeping the
  aspect ratio (the other side rounded half up, at least 1 px); ``square`` squashes to
  ``size x size``; ``center-crop`` scales the shorter side to ``size`` and cuts the central
  ``size x size`` square (a float crop box, so the crop is exactly centred). ``square`` and
  ``center-crop`` are fixed-shape modes: the output is always exactly ``size x size``, so a source
  smaller than ``size`` on either side is enlarged whatever ``upscale`` says
  (``ImageResult.enlarged``; build.json counts them). Without ``upscale``, ``shorter``/``longer``
  keep a source whose side is already <= ``size`` (no output side exceeds its source side).
* **Speed.** For JPEG sources much larger than the target, Pillow's ``draft`` makes libjpeg decode
  at 1/2, 1/4 or 1/8 scale (DCT scaling) such that the decoded region is still >= ``DRAFT_GAP``
  times the output (2x, the gap Pillow's own ``thumbnail`` uses). Measured against a full decode +
  bicubic resize the result stays above ``DRAFT_MIN_PSNR_DB`` (see tests); a 1x gap made square-64
  ~15% faster but fell to ~28 dB against a fair (full-resolution Lanczos) resize, where 2x keeps
  34-38 dB. The remaining resize is one antialiased Pillow ``resize`` with
  ``reducing_gap=RESIZE_REDUCING_GAP`` (a near-exact box pre-reduction for very large non-JPEGs).
  ``floor_process`` runs the same Pillow operations without any checks: the benchmark's floor.
* **Encoding.** JPEG: ``quality`` from the options, ``optimize=False``, baseline (not progressive),
  Pillow's default chroma subsampling 4:2:0 (4:4:4 measured 1.7x slower to encode and 34% larger at
  341x256 q90). PNG: ``compress_level=PNG_COMPRESS_LEVEL`` (1: half the time of level 6 for ~5%
  larger files; OpenCV's default too). WEBP: lossy, ``quality`` from the options,
  ``method=WEBP_METHOD`` (2: half the time of libwebp's default 4 for ~1% larger files, same PSNR).
* **Limits.** Only JPEG (incl. MPO), PNG, WEBP, GIF and BMP are opened (no plugin with a large
  attack surface or an external helper, such as EPS). An image over ``PIL.Image.MAX_IMAGE_PIXELS``
  (read at call time; Pillow's ``DecompressionBombWarning`` is treated as an error) is refused
  before any pixel is decoded. Truncation is detected through Pillow's default
  ``ImageFile.LOAD_TRUNCATED_IMAGES = False``; do not turn that on in a worker.
* **Decode budget.** Under Pillow's limit (89 MP) a small file can still cost a worker 350-900 MB (a flat
  PNG, a progressive JPEG). ``MAX_DECODE_PIXELS`` (32 MP, read at call time; None turns it off) caps the pixels
  actually decoded: a JPEG counts at its draft scale, a progressive JPEG at full size (libjpeg buffers all of
  its DCT coefficients whatever the scale), anything else at full size. Over it, the image is a recorded
  ``ImageFailure`` of kind ``too-large``, decided before any pixel is decoded. 32 MP is twice a 16 MP photo
  and more than the largest ImageNet photos (~7056x4488), and keeps a worker's peak under ~300 MB in the
  worst measured case (~8 bytes per pixel: a full JPEG decode re-encoded as PNG, an RGBA PNG). It is a module
  constant, not an ``ImageOptions`` field: it decides whether an image is built, not the bytes written, so it
  stays out of the output fingerprint.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import replace
from math import ceil

from PIL import Image, WebPImagePlugin  # noqa: F401  (WEBP is not among the plugins Pillow preloads)

from .geometry import enlarges, source_box, target_size
from .options import (
    MAX_OUTPUT_SIDE,
    WEBP_MAX_SIDE,
    ImageOptions,
    OutputFormat,
    ResampleFilter,
    ResizeMode,
    Resizer,
    fast_resizer_available,
)
from .reference import REFERENCE_MODES, reference_resize
from .results import ImageFailure, ImageResult

__all__ = [
    "DRAFT_GAP",
    "DRAFT_MIN_PSNR_DB",
    "FAST_MIN_PSNR_DB",
    "MAX_DECODE_PIXELS",
    "ImageFailure",
    "ImageOptions",
    "ImageResult",
    "OutputFormat",
    "REPAIR_LABELS",
    "ResampleFilter",
    "Resizer",
    "fast_resizer_available",
    "ResizeMode",
    "floor_process",
    "output_extension",
    "process_image",
    "target_size",
]

FAST_MIN_PSNR_DB = 45.0  # stated bound: fast vs Pillow resize of the same decoded pixels (tests check it)
DRAFT_GAP = 2.0  # JPEG draft decodes to >= this many times the output size (Pillow's thumbnail default gap)
DRAFT_MIN_PSNR_DB = (
    33.0  # stated bound: draft vs full-decode output (tests/unit/image/test_process.py checks it)
)
RESIZE_REDUCING_GAP = 3.0  # Pillow: >= 3 is "indistinguishable from fair resampling" in most cases
PNG_COMPRESS_LEVEL = 1
WEBP_METHOD = 2
MAX_DECODE_PIXELS: int | None = 32_000_000  # see "Decode budget" in the module doc; read at call time

REPAIR_LABELS = (
    "png-bytes-as-jpeg",  # also "<gif|bmp|webp>-bytes-as-jpeg"
    "cmyk-to-rgb",
    "ycck-to-rgb",
    "grayscale-to-rgb",
    "bilevel-to-rgb",
    "palette-to-rgb",
    "alpha-dropped",
    "16-bit-to-8-bit",
    "first-frame-only",
)

_EXTENSIONS = {"jpeg": ".JPEG", "png": ".png", "webp": ".webp"}  # ".JPEG": ImageNet's own upper-case spelling
_PIL_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
_SOURCE_FORMAT = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
_ORIGINAL_TARGET = {"jpeg": "jpeg", "png": "png", "webp": "webp", "gif": "png", "bmp": "png"}


def output_extension(fmt: OutputFormat | str, source_format: str = "jpeg") -> str:
    """File extension for an output format (``original`` resolves against the sniffed source format)."""
    return _EXTENSIONS[_resolve_format(OutputFormat(fmt), source_format)]


def _resolve_format(fmt: OutputFormat, source_format: str) -> str:
    return _ORIGINAL_TARGET[source_format] if fmt is OutputFormat.ORIGINAL else fmt.value


# --------------------------------------------------------------------------------------------- sniffing


def _sniff(data: bytes) -> str | None:
    """The image format by its signature, independent of any file name."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return None


def _describe_non_image(data: bytes) -> str:
    """Its type and size only: never its bytes (a link to a credentials file must not put them in build.json)."""
    head = data[:512]
    size = f"{len(data)} bytes"
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<?xml", b"<")):
        return f"not an image: HTML/XML text, {size} (an error page saved as an image?)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c.isspace() for c in text):
        return f"not an image: text, {size}"
    return f"not an image: unknown signature, {size} (JPEG, PNG, WEBP, GIF and BMP are read)"


# --------------------------------------------------------------------------------------------- repairs


def _pixel_repairs(im: Image.Image, data: bytes, sniffed: str) -> list[str]:
    """Labels of the fixes needed to make 8-bit RGB (decided from the header, before decoding)."""
    mode = im.mode
    labels: list[str] = []
    if (
        sniffed == "png" and len(data) > 24 and data[24] == 16
    ):  # IHDR bit depth: Pillow keeps only the high byte
        labels.append("16-bit-to-8-bit")
    if mode == "RGB":
        pass
    elif mode == "CMYK":
        # Adobe APP14 transform 2 = YCCK (libjpeg turns it into CMYK for us); 0/absent = plain CMYK.
        labels.append("ycck-to-rgb" if im.info.get("adobe_transform") == 2 else "cmyk-to-rgb")
    elif mode in ("L", "LA", "La") or mode.startswith("I"):
        labels.append("grayscale-to-rgb")
        if mode.startswith("I") and "16-bit-to-8-bit" not in labels:
            labels.append("16-bit-to-8-bit")
    elif mode == "1":
        labels.append("bilevel-to-rgb")
    elif mode in ("P", "PA"):
        labels.append("palette-to-rgb")
    elif mode not in ("RGBA", "RGBa"):  # RGBA only loses its alpha (labelled below)
        labels.append(f"{mode.lower().replace(';', '-')}-to-rgb")
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in im.info):
        labels.append("alpha-dropped")
    if sniffed != "jpeg" and getattr(im, "is_animated", False):
        labels.append("first-frame-only")
    return labels


def _to_rgb_or_l(im: Image.Image) -> Image.Image:
    """Decode and convert to RGB, or to L for grayscale (resized in L, then expanded: 3x less resize work)."""
    mode = im.mode
    if mode in ("RGB", "L"):
        return im
    if mode.startswith("I"):
        # 16-bit gray (PNG): keep the high byte, as a 16->8-bit conversion should (convert("L") would clip).
        import numpy as np  # only for this rare case

        # In strips of rows: a whole-image int64 copy cost ~33 bytes per pixel at peak.
        width, height = im.size
        out = np.empty((height, width), np.uint8)
        step = max(1, (1 << 22) // max(1, width))
        for top in range(0, height, step):
            strip = np.asarray(im.crop((0, top, width, min(height, top + step))))
            out[top : top + step] = np.clip(strip, 0, 65535) >> 8
        return Image.fromarray(out, "L")
    if mode in ("LA", "La"):
        return im.convert("L")
    if mode == "PA":
        return im.convert("RGBA").convert("RGB")
    return im.convert("RGB")


# --------------------------------------------------------------------------------------------- pipeline


class _OverBudget(Exception):
    """The decode would exceed MAX_DECODE_PIXELS (becomes an ImageFailure in process_image)."""


def _check_decode_budget(im: Image.Image, width: int, height: int) -> None:
    """Refuse before decoding when the pixels to decode exceed MAX_DECODE_PIXELS. ``im.size`` is the size
    after any draft; ``width x height`` the source's."""
    budget = MAX_DECODE_PIXELS
    if budget is None:
        return
    progressive = im.format in ("JPEG", "MPO") and bool(
        im.info.get("progressive") or im.info.get("progression")
    )
    decoded = width * height if progressive else im.size[0] * im.size[1]
    if decoded > budget:
        kind = f"progressive {im.format}" if progressive else im.format or "image"
        scaled = (
            ""
            if progressive or im.size == (width, height)
            else f" (at draft scale {im.size[0]}x{im.size[1]})"
        )
        raise _OverBudget(
            f"too large to decode safely: {width}x{height} {kind}{scaled} needs {decoded / 1e6:.1f} MP decoded, "
            f"more than the budget of {budget / 1e6:.0f} MP (imagenet_prep.imaging.MAX_DECODE_PIXELS)"
        )


def _decode_resized(im: Image.Image, out: tuple[int, int] | None, options: ImageOptions) -> Image.Image:
    """Decode ``im`` (draft-scaled when allowed) and bring it to ``out``; returns an RGB image."""
    width, height = im.size
    if options.resize in REFERENCE_MODES:
        # A published pipeline: full decode, convert("RGB") first, then its own Pillow calls (image/reference.py).
        _check_decode_budget(im, width, height)
        rgb = _to_rgb_or_l(im)
        rgb = rgb if rgb.mode == "RGB" else rgb.convert("RGB")
        return rgb if out is None else reference_resize(rgb, options)
    box: tuple[float, float, float, float] | None = None
    if out is not None:
        box = source_box(width, height, out, options)
        region_w, region_h = box[2] - box[0], box[3] - box[1]
        factor = max(out[0] / region_w, out[1] / region_h)  # < 1 when shrinking
        if options.draft and im.format in ("JPEG", "MPO") and factor * DRAFT_GAP * 2 <= 1:
            request = (ceil(width * factor * DRAFT_GAP), ceil(height * factor * DRAFT_GAP))
            drafted = im.draft(im.mode, request)
            if drafted is not None:
                scale = width / drafted[1][2]  # libjpeg's exact 1/2, 1/4 or 1/8
                box = (box[0] / scale, box[1] / scale, box[2] / scale, box[3] / scale)
    _check_decode_budget(im, width, height)
    im = _to_rgb_or_l(im)
    if out is not None:
        assert box is not None
        if out == (box[2] - box[0], box[3] - box[1]) and all(float(v).is_integer() for v in box):
            im = im.crop((int(box[0]), int(box[1]), int(box[2]), int(box[3])))
        else:
            im = _resize(im, out, box, options)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return im


def _resize(
    im: Image.Image, out: tuple[int, int], box: tuple[float, float, float, float], options: ImageOptions
) -> Image.Image:
    if options.resizer is Resizer.FAST and options.filter in _FAST_FILTERS:
        return _fast_resize(im, out, box, options.filter)
    return im.resize(out, options.filter.pillow, box=box, reducing_gap=RESIZE_REDUCING_GAP)


# Pillow's filter -> fast_image_resize's filter of the same definition (by name: imported on first use).
_FAST_FILTERS = {
    ResampleFilter.BICUBIC: "catmull_rom",
    ResampleFilter.BILINEAR: "bilinear",
    ResampleFilter.LANCZOS: "lanczos3",
    ResampleFilter.BOX: "box",
}
_fast_state: dict[str, object] = {}  # this process's resizer, made on first use


def _fast_resize(
    im: Image.Image, out: tuple[int, int], box: tuple[float, ...], filter: ResampleFilter
) -> Image.Image:
    """``im.resize(out, filter, box=box)`` through fast_image_resize (RGB or L in, same mode out)."""
    import cykooz_resizer as fir

    if not _fast_state:
        _fast_state["resizer"] = fir.Resizer()
    options = fir.ResizeOptions(
        resize_alg=fir.ResizeAlg.convolution(fir.FilterType[_FAST_FILTERS[filter]]),
        crop_box=fir.CropBox(box[0], box[1], box[2] - box[0], box[3] - box[1]),
    )
    dst = Image.new(im.mode, out)
    _fast_state["resizer"].resize_pil(im, dst, options)  # type: ignore[attr-defined]
    return dst


def _encode(im: Image.Image, fmt: str, options: ImageOptions) -> bytes:
    im.info = {}  # never carry ICC/EXIF/transparency from the source (PNG's save would copy im.info's ICC)
    buf = io.BytesIO()
    if fmt == "jpeg":
        im.save(buf, "JPEG", quality=options.quality, optimize=False, progressive=False)
    elif fmt == "png":
        im.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        im.save(buf, "WEBP", quality=options.quality, method=WEBP_METHOD)
    return buf.getvalue()


def _verify_decodes(im: Image.Image) -> None:
    """Decode every byte of the image data (entropy-decode all of a JPEG at its cheapest 1/8 DCT scale)."""
    width, height = im.size
    if im.format in ("JPEG", "MPO"):
        im.draft(im.mode, (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
    _check_decode_budget(im, width, height)
    im.load()


def floor_process(data: bytes, options: ImageOptions) -> bytes:
    """The benchmark floor: the same Pillow decode (incl. draft), convert, resize and encode operations as
    ``process_image``, with no sniffing, checks, repairs bookkeeping or pass-through. Raises on bad input."""
    im = Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
    out = target_size(im.size[0], im.size[1], options)
    fmt = _resolve_format(options.format, _SOURCE_FORMAT.get(im.format or "", "jpeg"))
    return _encode(_decode_resized(im, out, options), fmt, options)


def process_image(data: bytes, options: ImageOptions, name: str = "") -> ImageResult | ImageFailure:
    """Decode, repair, resize and encode one image; an ImageFailure (never an exception) for a bad image."""
    if not data:
        return ImageFailure("empty file (0 bytes)", "empty")
    sniffed = _sniff(data)
    if sniffed is None:
        return ImageFailure(_describe_non_image(data), "not-image")
    try:
        with warnings.catch_warnings():
            # Library code must not print: silence Pillow's warnings (corrupt EXIF, palette transparency, ...)
            # but turn the decompression-bomb warning into an error so such an image is refused.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _process(data, sniffed, options, name)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return ImageFailure(f"decompression bomb refused: {exc}", "bomb")
    except _OverBudget as exc:
        return ImageFailure(str(exc), "too-large")
    except Image.UnidentifiedImageError:
        return ImageFailure(f"corrupt image: {sniffed.upper()} signature but an unreadable header", "corrupt")
    except OSError as exc:
        message = str(exc)
        if "truncated" in message.lower():
            return ImageFailure(f"truncated image: {message}", "truncated")
        return ImageFailure(f"corrupt image: {message}", "corrupt")
    except MemoryError:
        return ImageFailure("corrupt image: decoding it ran out of memory", "too-large")
    except (
        Exception
    ) as exc:  # hostile bytes can raise anything inside a decoder; it is still just a bad image
        return ImageFailure(f"corrupt image: {type(exc).__name__}: {exc}", "corrupt")


def _process(data: bytes, sniffed: str, options: ImageOptions, name: str) -> ImageResult | ImageFailure:
    im = Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
    width, height = im.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:  # Pillow only warns between 1x and 2x the limit
        return ImageFailure(
            f"decompression bomb refused: {width}x{height} = {width * height} pixels exceeds "
            f"PIL.Image.MAX_IMAGE_PIXELS ({limit})",
            "bomb",
        )
    source_format = _SOURCE_FORMAT.get(im.format or "", sniffed)
    repairs: list[str] = []
    if source_format != "jpeg" and (not name or name.lower().endswith((".jpeg", ".jpg"))):
        repairs.append(f"{source_format}-bytes-as-jpeg")
    pixel_repairs = _pixel_repairs(im, data, sniffed)
    repairs.extend(pixel_repairs)
    fmt = _resolve_format(options.format, source_format)
    out = target_size(width, height, options)

    if out is None and not pixel_repairs and fmt == source_format:
        if options.verify:
            _verify_decodes(im)
        return _result(data, width, height, repairs, source_format, width, height, fmt, passthrough=True)

    if out is not None:
        pixels = out[0] * out[1]
        side_limit = WEBP_MAX_SIDE if fmt == "webp" else MAX_OUTPUT_SIDE
        if max(out) > side_limit or (limit is not None and pixels > limit):
            return ImageFailure(
                f"output too large: {width}x{height} -> {out[0]}x{out[1]} exceeds the {fmt.upper()} "
                f"side limit ({side_limit}) or PIL.Image.MAX_IMAGE_PIXELS; lower --size or drop --upscale",
                "too-large",
            )
    rgb = _decode_resized(im, out, options)
    encoded = _encode(rgb, fmt, options)
    result = _result(encoded, rgb.size[0], rgb.size[1], repairs, source_format, width, height, fmt)
    if enlarges(width, height, out):
        result = replace(result, enlarged=True)
    return result


def _result(
    data: bytes,
    width: int,
    height: int,
    repairs: list[str],
    source_format: str,
    source_width: int,
    source_height: int,
    fmt: str,
    passthrough: bool = False,
) -> ImageResult:
    return ImageResult(
        data=data,
        width=width,
        height=height,
        status="repaired" if repairs else "ok",
        repairs=tuple(repairs),
        source_format=source_format,
        source_width=source_width,
        source_height=source_height,
        extension=_EXTENSIONS[fmt],
        passthrough=passthrough,
    )
