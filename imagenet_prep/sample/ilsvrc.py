"""The miniature ILSVRC2012 release (the ``ilsvrc`` layout), and the image generation every miniature shares.

``write_sample`` writes into a folder:

- ``ILSVRC2012_img_train.tar``: one ``<wnid>.tar`` member per class, each holding ``<wnid>_<n>.JPEG`` images;
- ``ILSVRC2012_img_val.tar``: flat, with REAL validation file names of the chosen classes (so the real labels
  apply to them);
- ``ILSVRC2012_devkit_t12.tar.gz``: ``data/meta.mat`` (scipy-written struct array ``synsets`` with the real
  fields and one row per leaf class: real IDs, wnids, words, glosses; the official file's 860 internal WordNet
  synsets are not reproduced) and ``data/ILSVRC2012_validation_ground_truth.txt`` (the real 50,000 lines);
- ``MD5SUMS`` (md5sum format) for the three archives, written last.

Images are drawn with numpy + Pillow (smooth colour fields, shapes and grain, so JPEG sizes behave like
photos); nothing is downloaded and no photos are bundled. The same spec gives the same bytes: every random
choice is seeded, tar headers carry fixed times and owners, and the gzip and MAT headers carry no timestamp.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import tarfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..fetch.catalog import DEVKIT_DIR, DEVKIT_TAR, GROUND_TRUTH_PATH, MD5SUMS, META_PATH, TRAIN_TAR, VAL_TAR
from ..io.atomic import atomic_file
from ..taxonomy import classes
from .common import add, gzip_bytes, tarinfo

if TYPE_CHECKING:
    import numpy as np

# numpy, Pillow and sources/ are imported where they are used: the CLI imports this package for the `sample
# --layout` help (the layout registry), and its start-up stays free of them.

__all__ = [
    "DEVKIT_TAR",
    "MD5SUMS",
    "QUIRK_CLASSES",
    "TRAIN_TAR",
    "VAL_TAR",
    "SampleRelease",
    "SampleSpec",
    "choose_wnids",
    "render_image",
    "write_sample",
]

RELEASE_FILES = (TRAIN_TAR, VAL_TAR, DEVKIT_TAR, MD5SUMS)

# Real odd files of ILSVRC2012 (data/quirks.txt), reproduced under their real names.
CMYK_NAME = "n01739381_1309.JPEG"
PNG_NAME = "n02105855_2933.JPEG"
QUIRK_CLASSES = ("n01739381", "n02105855")
# Kinds recorded in SampleRelease.quirk_files (the first two match data/quirks.txt's categories).
CMYK, PNG, GRAYSCALE, PROGRESSIVE = "cmyk_jpeg", "png_disguised_as_jpeg", "grayscale_jpeg", "progressive_jpeg"

_MAX_TRAIN_NUMBER = 30000  # real names run n01440764_18 .. n04264628_27969: unpadded, sparse
# ImageNet-1K's dog classes (Chihuahua .. Mexican hairless, all under dog.n.01) are sorted indices 151..268.
_DOG_INDICES = range(151, 269)
_JPEG = {"quality": 96, "subsampling": 0}  # what most ILSVRC2012 JPEGs use: q96, no chroma subsampling


@dataclass(frozen=True)
class SampleSpec:
    """What to generate. ``classes`` counts classes; with ``quirks`` the two quirk classes are added when they
    do not fit among them (so the Imagenette ten stay complete). ``wnids`` overrides the class choice."""

    classes: int = 10
    train_per_class: int = 10
    val_per_class: int = 5
    realistic: bool = False
    quirks: bool = False
    seed: int = 0
    wnids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.classes <= classes.NUM_CLASSES:
            raise UsageError(f"--classes must be 1..{classes.NUM_CLASSES}, not {self.classes}.")
        if self.train_per_class < 1:
            raise UsageError(f"--train-per-class must be at least 1, not {self.train_per_class}.")
        if not 0 <= self.val_per_class <= 50:
            raise UsageError(
                f"--val-per-class must be 0..50 (ILSVRC2012 has 50 per class), not {self.val_per_class}."
            )
        if self.wnids is not None:
            object.__setattr__(self, "wnids", tuple(self.wnids))  # accept any sequence, keep it hashable
            if not self.wnids:
                raise UsageError("The class list for the sample is empty.")
            for wnid in self.wnids:
                classes.by_wnid(wnid)  # raises UnknownClassError with close matches


@dataclass(frozen=True)
class SampleRelease:
    """Where the sample went and what it holds (member names as in the archives)."""

    root: Path
    train_tar: Path
    val_tar: Path
    devkit: Path
    md5sums: Path
    wnids: tuple[str, ...]
    train_files: dict[str, tuple[str, ...]] = field(hash=False)
    val_files: dict[str, str] = field(hash=False)
    quirk_files: dict[str, str] = field(hash=False)

    @property
    def num_images(self) -> int:
        return sum(len(v) for v in self.train_files.values()) + len(self.val_files)


# ----------------------------------------------------------------------------------------- choosing
def choose_wnids(spec: SampleSpec) -> tuple[str, ...]:
    """The sample's classes, sorted: ``spec.wnids``, else the Imagenette ten (a seeded pick of them when fewer
    are asked) plus seeded picks from the other classes, about a quarter of them dogs."""
    forced = set(QUIRK_CLASSES) if spec.quirks else set()
    if spec.wnids is not None:
        return tuple(sorted(set(spec.wnids) | forced))
    rng = random.Random(f"imagenet-prep-sample-classes/{spec.seed}")
    imagenette = list(classes.subset_wnids("imagenette"))
    if spec.classes < len(imagenette):
        chosen = set(rng.sample(imagenette, max(0, spec.classes - len(forced))))
        return tuple(sorted(chosen | forced))
    chosen = set(imagenette) | forced
    extra = spec.classes - len(chosen)
    if extra > 0:
        all_wnids = [c.wnid for c in classes.all_classes()]
        dogs = [all_wnids[i] for i in _DOG_INDICES if all_wnids[i] not in chosen]
        others = [w for w in all_wnids if w not in chosen and w not in set(dogs)]
        n_dogs = min(len(dogs), max(1, round(extra / 4)))
        chosen |= set(rng.sample(dogs, n_dogs))
        chosen |= set(rng.sample(others, extra - n_dogs))
    return tuple(sorted(chosen))


def _train_names(spec: SampleSpec, wnid: str) -> tuple[str, ...]:
    rng = random.Random(f"imagenet-prep-sample-train/{spec.seed}/{wnid}")
    fixed = {CMYK_NAME, PNG_NAME} if spec.quirks else set()
    fixed_numbers = {int(name[10:-5]) for name in fixed if name.startswith(wnid + "_")}
    pool = [n for n in range(1, _MAX_TRAIN_NUMBER) if n not in fixed_numbers]
    numbers = sorted(fixed_numbers | set(rng.sample(pool, spec.train_per_class - len(fixed_numbers))))
    return tuple(f"{wnid}_{n}.JPEG" for n in numbers)


def _val_names(spec: SampleSpec, wnids: tuple[str, ...]) -> dict[str, str]:
    """Real validation file names: val_per_class of each chosen class's 50 (seeded), in name order."""
    by_class: dict[str, list[int]] = {w: [] for w in wnids}
    for k, wnid in enumerate(classes.val_labels(), 1):
        if wnid in by_class:
            by_class[wnid].append(k)
    picked: dict[str, str] = {}
    for wnid in wnids:
        rng = random.Random(f"imagenet-prep-sample-val/{spec.seed}/{wnid}")
        for k in rng.sample(by_class[wnid], spec.val_per_class):
            picked[classes.val_file_name(k)] = wnid
    return dict(sorted(picked.items()))


def _quirk_plan(spec: SampleSpec, train: dict[str, tuple[str, ...]]) -> dict[str, str]:
    if not spec.quirks:
        return {}
    plan = {CMYK_NAME: CMYK, PNG_NAME: PNG}
    # Grayscale and progressive go to ordinary train images of other classes (spread out, seeded).
    pool = [name for names in train.values() for name in names if name not in plan]
    if len(pool) < 2:
        raise UsageError(
            "--quirks needs room for a grayscale and a progressive image: add classes or images."
        )
    rng = random.Random(f"imagenet-prep-sample-quirks/{spec.seed}")
    gray, progressive = rng.sample(pool, 2)
    plan[gray] = GRAYSCALE
    plan[progressive] = PROGRESSIVE
    return plan


# ----------------------------------------------------------------------------------------- images
def _rng_for(*parts: object) -> np.random.Generator:
    import numpy as np

    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _image_size(rng: np.random.Generator, realistic: bool) -> tuple[int, int]:
    if not realistic:
        return int(rng.integers(40, 121)), int(rng.integers(40, 121))
    # Like ILSVRC2012: most are 500 px on the long side (Flickr's medium size), some smaller, a few huge.
    r = rng.random()
    if r < 0.02:
        long_side = int(rng.integers(1000, 2000))
    elif r < 0.25:
        long_side = int(rng.integers(150, 500))
    else:
        long_side = 500
    aspect = float(rng.choice([4 / 3, 3 / 2, 1.0, 16 / 9, 5 / 4], p=[0.5, 0.2, 0.1, 0.1, 0.1]))
    short_side = max(32, round(long_side / aspect))
    return (long_side, short_side) if rng.random() < 0.75 else (short_side, long_side)


def render_image(seed: int, wnid: str, name: str, realistic: bool, kind: str | None = None) -> bytes:
    """The encoded bytes of one generated image (deterministic in its arguments)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = _rng_for("imagenet-prep-sample-image", seed, name)
    palette = _rng_for("imagenet-prep-sample-palette", wnid).integers(0, 256, size=(2, 3))
    w, h = _image_size(rng, realistic)
    # Smooth colour field around the class's palette, with soft-edged shapes: drawn at half size and scaled
    # up (cheaper than a blur), then per-pixel grain so the JPEG size behaves like a photo's.
    hw, hh = max(8, w // 2), max(8, h // 2)
    grid = rng.integers(0, 256, size=(max(2, h // 60), max(2, w // 60), 3))
    mix = rng.random(size=grid.shape[:2] + (1,))
    grid = ((grid + palette[0] * mix + palette[1] * (1 - mix)) / 2).astype(np.uint8)
    img = Image.fromarray(grid).resize((hw, hh), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 7))):
        x0, y0 = int(rng.integers(0, hw)), int(rng.integers(0, hh))
        x1 = x0 + int(rng.integers(hw // 8 + 1, hw // 2 + 2))
        y1 = y0 + int(rng.integers(hh // 8 + 1, hh // 2 + 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    pixels = np.asarray(img.resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
    pixels = pixels + rng.integers(-8, 9, size=(h, w, 1), dtype=np.int16)
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    if kind == PNG:
        img.save(out, format="PNG")
    elif kind == CMYK:
        img.convert("CMYK").save(out, format="JPEG", **_JPEG)
    elif kind == GRAYSCALE:
        img.convert("L").save(out, format="JPEG", quality=96)
    elif kind == PROGRESSIVE:
        img.save(out, format="JPEG", progressive=True, **_JPEG)
    else:
        img.save(out, format="JPEG", **_JPEG)
    return out.getvalue()


# ------------------------------------------------------------------------------------------- archives
def _meta_mat(train: dict[str, tuple[str, ...]]) -> bytes:
    """meta.mat with the real ``synsets`` fields for the 1000 leaves (IDs 1..1000, num_children 0,
    num_train_images = this sample's count). The 860 internal synsets (IDs 1001..1860) are not reproduced."""
    import numpy as np
    import scipy.io

    from ..sources.devkit import SYNSET_FIELDS  # here: importing sources/ at CLI start-up costs ~90 ms

    fields = SYNSET_FIELDS
    leaves = sorted(classes.all_classes(), key=lambda c: c.ilsvrc2012_id)
    synsets = np.empty((len(leaves), 1), dtype=[(f, object) for f in fields])
    for row, info in enumerate(leaves):
        synsets[row, 0] = (
            np.uint16(info.ilsvrc2012_id),
            info.wnid,
            info.words,
            info.gloss,
            np.uint8(0),
            np.zeros((1, 0), dtype=np.uint16),
            np.uint8(0),
            np.uint16(len(train.get(info.wnid, ()))),
        )
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"synsets": synsets}, format="5", oned_as="column")
    data = bytearray(buf.getvalue())
    # The MAT header's 116-byte text carries a creation time; a fixed text keeps the bytes reproducible.
    data[:116] = b"MATLAB 5.0 MAT-file, written by imagenet-prep (miniature ILSVRC2012 sample)".ljust(116)
    return bytes(data)


_DEVKIT_README = """\
Miniature ILSVRC2012 devkit written by `imagenet-prep sample` (not the official devkit).

data/meta.mat holds the struct array `synsets` with the real fields for the 1000 leaf classes
(real ILSVRC2012_IDs, wnids, words and glosses; num_children 0; num_train_images = images in this sample).
The official file also lists 860 internal WordNet synsets (IDs 1001..1860); they are not reproduced here.
data/ILSVRC2012_validation_ground_truth.txt holds the real 50,000 validation labels.
"""


def _devkit_tar_gz(train: dict[str, tuple[str, ...]]) -> bytes:
    truth = "".join(f"{classes.by_wnid(w).ilsvrc2012_id}\n" for w in classes.val_labels()).encode()
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(tarinfo(DEVKIT_DIR, directory=True))
        add(tar, f"{DEVKIT_DIR}/readme.txt", _DEVKIT_README.encode())
        tar.addfile(tarinfo(f"{DEVKIT_DIR}/data", directory=True))
        add(tar, GROUND_TRUTH_PATH, truth)
        add(tar, META_PATH, _meta_mat(train))
    return gzip_bytes(tar_buf.getvalue())


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ main
def write_sample(
    dest: str | os.PathLike[str],
    spec: SampleSpec = SampleSpec(),  # noqa: B008 - frozen, so a shared default is safe
    progress: Callable[[int], None] | None = None,
    *,
    overwrite: bool = False,
    workers: int | None = None,
) -> SampleRelease:
    """Write a miniature ILSVRC2012 release into ``dest`` (created if needed).

    ``progress`` is called with the number of images just written (pass ``tqdm.update``). A folder that
    already holds release files is refused unless ``overwrite``. ``workers`` threads render images (default:
    the CPU count); the bytes do not depend on it.
    """
    root = Path(dest)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file; give a folder for the sample release.")
    present = [name for name in RELEASE_FILES if (root / name).exists()]
    if present and not overwrite:
        raise UsageError(
            f"{root} already holds {', '.join(present)}: pass --overwrite to replace them, or choose another "
            f"folder."
        )
    wnids = choose_wnids(spec)
    train = {wnid: _train_names(spec, wnid) for wnid in wnids}
    val = _val_names(spec, wnids)
    quirks = _quirk_plan(spec, train)
    root.mkdir(parents=True, exist_ok=True)
    if overwrite:
        (root / MD5SUMS).unlink(missing_ok=True)  # MD5SUMS marks a complete release: drop it first

    jobs = [(wnid, name) for wnid in wnids for name in train[wnid]] + [(w, n) for n, w in val.items()]
    pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1)
    try:
        # Threads suffice: Pillow and numpy release the GIL for the heavy parts. map() keeps the order.
        images: Iterator[bytes] = pool.map(
            lambda job: render_image(spec.seed, job[0], job[1], spec.realistic, quirks.get(job[1])), jobs
        )
        train_path = root / TRAIN_TAR
        with (
            atomic_file(train_path) as handle,
            tarfile.open(fileobj=handle, mode="w", format=tarfile.GNU_FORMAT) as outer,
        ):
            for wnid in wnids:
                inner_buf = io.BytesIO()
                with tarfile.open(fileobj=inner_buf, mode="w", format=tarfile.GNU_FORMAT) as inner:
                    for name in train[wnid]:
                        add(inner, name, next(images))
                        if progress is not None:
                            progress(1)
                add(outer, f"{wnid}.tar", inner_buf.getvalue())
        val_path = root / VAL_TAR
        with (
            atomic_file(val_path) as handle,
            tarfile.open(fileobj=handle, mode="w", format=tarfile.GNU_FORMAT) as flat,
        ):
            for name in val:
                add(flat, name, next(images))
                if progress is not None:
                    progress(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on an error, drop the images not yet rendered

    devkit_path = root / DEVKIT_TAR
    with atomic_file(devkit_path) as handle:
        handle.write(_devkit_tar_gz(train))
    md5_path = root / MD5SUMS
    with atomic_file(md5_path) as handle:
        for path in sorted((train_path, val_path, devkit_path)):
            handle.write(f"{_md5(path)}  {path.name}\n".encode())
    return SampleRelease(
        root=root,
        train_tar=train_path,
        val_tar=val_path,
        devkit=devkit_path,
        md5sums=md5_path,
        wnids=wnids,
        train_files=train,
        val_files=val,
        quirk_files=quirks,
    )
