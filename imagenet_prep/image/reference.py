"""Published resize pipelines, reproduced pixel for pixel (the generative-model benchmarks' preprocessing).

A FID or NLL number depends on the exact preprocessing, so these modes run the published Pillow calls as they
are, on the fully decoded image (no JPEG draft decoding, no reduce pre-step: both change the pixels):

* ``adm`` (alias ``center-crop-dhariwal``, EDM2's ``dataset_tool.py --transform`` name): guided-diffusion's
  ``center_crop_arr`` (openai/guided-diffusion ``image_datasets.py``; also DiT's and EDM2's): ``convert("RGB")``;
  while the shorter side is >= 2 x size, halve with ``Image.BOX`` to ``(w // 2, h // 2)``; resize with
  ``Image.BICUBIC`` so the shorter side is exactly ``size`` (the other side ``round(x * scale)``, Python's
  round: halves to even); crop ``size x size`` at ``((h - size) // 2, (w - size) // 2)``.
* ``downsampled`` (alias ``chrabaszcz``): the resizer of Chrabaszcz et al.'s Downsampled ImageNet
  (PatrykChrabaszcz/Imagenet32_Scripts ``image_resizer_imagent.py``): ``convert("RGB")`` unless already RGB,
  then one ``resize((size, size), filter)``; their published Imagenet32/64 used the box filter.

The only departure from the published code: a 16-bit grayscale image keeps its high byte (the image stage's
documented repair) where ``convert("RGB")`` would clip it; ImageNet holds none.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from .options import ImageOptions, ResampleFilter, ResizeMode

#: The resize modes that run a published pipeline (always a full decode; the fast resizer does not apply).
REFERENCE_MODES = (ResizeMode.ADM, ResizeMode.DOWNSAMPLED)

#: Where each reference mode comes from (build.json records it).
CONVENTIONS = {
    ResizeMode.ADM: "guided-diffusion image_datasets.py center_crop_arr (ADM, DiT, EDM2 center-crop-dhariwal)",
    ResizeMode.DOWNSAMPLED: "Chrabaszcz et al. 2017 Imagenet32_Scripts image_resizer_imagent.py",
}


def center_crop_arr(im: Image.Image, size: int) -> Image.Image:
    """guided-diffusion's ``center_crop_arr`` on an RGB image, returned as an image (not an array)."""
    while min(im.size) >= 2 * size:
        im = im.resize((im.width // 2, im.height // 2), resample=Image.Resampling.BOX)
    scale = size / min(im.size)
    im = im.resize((round(im.width * scale), round(im.height * scale)), resample=Image.Resampling.BICUBIC)
    top, left = (im.size[1] - size) // 2, (im.size[0] - size) // 2
    return im.crop((left, top, left + size, top + size))


def downsample(im: Image.Image, size: int, filter: ResampleFilter) -> Image.Image:
    """Chrabaszcz et al.'s resize of an RGB image: one squash to ``size x size`` (no reduce pre-step)."""
    return im.resize((size, size), filter.pillow)


def reference_resize(rgb: Image.Image, options: ImageOptions) -> Image.Image:
    """The published pipeline of ``options.resize`` on a fully decoded RGB image."""
    assert options.size is not None  # validated by ImageOptions
    if options.resize is ResizeMode.ADM:
        return center_crop_arr(rgb, options.size)
    return downsample(rgb, options.size, options.filter)


def preprocessing_record(options: ImageOptions) -> dict[str, Any]:
    """What build.json says about the image pipeline, so a metric computed on the output traces back to it."""
    from .. import image

    mode = options.resize
    reference = mode in REFERENCE_MODES
    if mode is ResizeMode.ADM:
        filters = "box halvings, then bicubic"
    elif mode is ResizeMode.NONE:
        filters = None
    else:
        filters = options.filter.value
    return {
        "resize": mode.value,
        "size": options.size,
        "filter": filters,
        "format": options.format.value,
        "decode": "full"
        if reference or not options.draft
        else "jpeg draft (DCT scaling) when >= 2x the output",
        "resizer": "pillow" if reference else options.resizer.value,
        "convention": CONVENTIONS.get(mode),
        "pillow": Image.__version__,
        "png_compress_level": image.process.PNG_COMPRESS_LEVEL,
    }
