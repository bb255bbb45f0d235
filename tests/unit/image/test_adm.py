"""--resize adm (guided-diffusion's center_crop_arr) and --resize downsampled (Chrabaszcz et al.'s squash): the
pixels equal an independent implementation written here from the published description (array slicing for the
crop, PIL only for the two published filters), on generated images of many shapes and on the quirk files."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from PIL import Image
from support.images import encode

from imagenet_prep.errors import UsageError
from imagenet_prep.image import ImageOptions, ResizeMode, process_image, target_size
from imagenet_prep.image.reference import preprocessing_record


def published_center_crop(data: bytes, size: int) -> np.ndarray:
    """The published steps: full decode + convert("RGB"); BOX halvings to (w // 2, h // 2) while the shorter
    side is >= 2 x size; BICUBIC so the shorter side is size (the other round(x * scale)); crop the array at
    ((h - size) // 2, (w - size) // 2)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    image = image.convert("RGB")
    while min(image.size) >= 2 * size:
        image = image.resize((image.width // 2, image.height // 2), resample=Image.BOX)
    scale = size / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), resample=Image.BICUBIC)
    array = np.asarray(image)
    y, x = (array.shape[0] - size) // 2, (array.shape[1] - size) // 2
    return array[y : y + size, x : x + size]


def published_downsample(data: bytes, size: int) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    if image.mode != "RGB":
        image = image.convert(mode="RGB")
    return np.asarray(image.resize((size, size), Image.BOX))


def pixels(result) -> np.ndarray:
    assert not hasattr(result, "kind"), result
    with Image.open(io.BytesIO(result.data)) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        return np.asarray(image)


def noise(width: int, height: int, seed: int) -> Image.Image:
    """Smooth structure plus noise: every resampling difference shows in the pixels."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([(xs * 7 + ys * 3) % 256, (xs * ys) % 251, (xs + 2 * ys) % 256], axis=-1)
    return Image.fromarray(((base + rng.integers(0, 40, base.shape)) % 256).astype(np.uint8), "RGB")


SHAPES = [
    (500, 375),  # landscape, the ImageNet average
    (375, 500),  # portrait
    (512, 512),  # exactly 2x 256: one halving
    (1024, 700),  # several halvings
    (511, 513),  # odd sides just under 2x
    (257, 999),  # very tall, odd
    (256, 256),  # exactly the size
    (100, 60),  # smaller than the size: enlarged
    (1, 300),  # degenerate
    (2047, 1023),  # odd halvings
]


@pytest.mark.parametrize(("width", "height"), SHAPES)
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_adm_pixels_equal_the_published_center_crop(width, height, fmt):
    data = encode(noise(width, height, seed=width + height), fmt, quality=95)
    options = ImageOptions(resize="adm", size=256, format="png")
    assert np.array_equal(pixels(process_image(data, options)), published_center_crop(data, 256))


@pytest.mark.parametrize("size", [32, 64, 100, 512])
def test_adm_other_sizes(size):
    for seed, (width, height) in enumerate([(640, 480), (333, 1025), (size * 2, size * 2 + 1)]):
        data = encode(noise(width, height, seed), "JPEG", quality=90)
        result = process_image(data, ImageOptions(resize="adm", size=size, format="png"))
        assert np.array_equal(pixels(result), published_center_crop(data, size))


def _quirk_bytes(release) -> dict[str, bytes]:
    found = {}
    with tarfile.open(release.train_tar) as outer:
        for member in outer:
            inner_file = outer.extractfile(member)
            assert inner_file is not None
            with tarfile.open(fileobj=io.BytesIO(inner_file.read())) as inner:
                for image in inner:
                    if image.name in release.quirk_files:
                        handle = inner.extractfile(image)
                        assert handle is not None
                        found[image.name] = handle.read()
    return found


def test_adm_and_downsampled_on_the_quirk_files(quirky_release):
    quirks = _quirk_bytes(quirky_release)
    kinds = {quirky_release.quirk_files[name] for name in quirks}
    assert {"cmyk_jpeg", "png_disguised_as_jpeg", "grayscale_jpeg", "progressive_jpeg"} <= kinds
    for name, data in quirks.items():
        for size in (16, 64):
            adm = process_image(data, ImageOptions(resize="adm", size=size, format="png"), name)
            assert np.array_equal(pixels(adm), published_center_crop(data, size)), name
            small = process_image(
                data, ImageOptions(resize="downsampled", size=size, format="png", filter="box"), name
            )
            assert np.array_equal(pixels(small), published_downsample(data, size)), name


@pytest.mark.parametrize(("width", "height"), SHAPES)
def test_downsampled_box_equals_chrabaszcz_resize(width, height):
    data = encode(noise(width, height, seed=3), "JPEG", quality=95)
    for size in (32, 64):
        options = ImageOptions(resize="downsampled", size=size, format="png", filter="box", draft=True)
        assert np.array_equal(pixels(process_image(data, options)), published_downsample(data, size))


def test_square_box_is_not_the_published_resize():
    """Why a mode of its own: square's reduce pre-step (and draft decoding) change the pixels."""
    data = encode(noise(500, 375, seed=5), "JPEG", quality=95)
    square = ImageOptions(resize="square", size=32, format="png", filter="box", draft=False)
    assert not np.array_equal(pixels(process_image(data, square)), published_downsample(data, 32))


def test_aliases_geometry_and_refusals():
    assert ImageOptions(resize="center-crop-dhariwal", size=8).resize is ResizeMode.ADM
    assert ImageOptions(resize="Chrabaszcz", size=8).resize is ResizeMode.DOWNSAMPLED
    assert target_size(500, 375, ImageOptions(resize="adm", size=64)) == (64, 64)
    with pytest.raises(UsageError, match="drop --resizer fast"):
        ImageOptions(resize="adm", size=64, resizer="fast")
    with pytest.raises(UsageError, match="drop --filter"):
        ImageOptions(resize="adm", size=64, filter="lanczos")
    record = preprocessing_record(ImageOptions(resize="adm", size=256, format="png"))
    assert record["decode"] == "full" and "center_crop_arr" in record["convention"]
    assert record["filter"] == "box halvings, then bicubic" and record["pillow"] == Image.__version__


def test_boxes_map_through_the_adm_crop():
    from imagenet_prep.image import source_box

    # 1000x500 -> halved to 500x250 -> scale 256/250: 512x256 (round(512.0)) -> crop x at 128
    left, top, right, bottom = source_box(1000, 500, (256, 256), ImageOptions(resize="adm", size=256))
    assert (left, top, right, bottom) == pytest.approx((250.0, 0.0, 750.0, 500.0))
