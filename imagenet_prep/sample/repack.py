"""The ILSVRC2012 miniature in every ImageNet-1K layout a build reads, from the SAME generated images.

``write_layout(dest, spec, layout)`` writes the official ILSVRC2012 miniature (``layout="ilsvrc"``), or renders
it in a scratch folder and re-packs its images, byte for byte, with the layout's re-packer (kaggle.py,
huggingface.py, folders.py). The same spec gives the same bytes (fixed tar/zip times and owners, gzip without a
timestamp, seeded shuffles).
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..fetch.catalog import TRAIN_TAR, VAL_TAR
from .common import Images
from .folders import repack_blurred, repack_imagefolder
from .huggingface import repack_hf_parquet, repack_hf_tar, require_pyarrow
from .ilsvrc import SampleSpec, write_sample
from .kaggle import repack_kaggle, repack_kaggle_zip, repack_kaggle_zip_2019
from .shards import repack_wds

__all__ = ["EXTRA_LAYOUTS", "LAYOUTS", "LayoutRelease", "Repacker", "write_layout", "write_layouts"]


@dataclass(frozen=True)
class Repacker:
    """How one layout lays out the miniature's images: ``write(root, train, vals, seed)`` returns the top-level
    entries it wrote; ``check()`` raises before any image is drawn when something the layout needs is missing."""

    write: Callable[[Path, Images, Images, int], list[str]]
    check: Callable[[], None] | None = None


REPACKERS: dict[str, Repacker] = {
    "kaggle": Repacker(repack_kaggle),
    "kaggle-zip": Repacker(repack_kaggle_zip),
    "hf-tar": Repacker(repack_hf_tar),
    "hf-parquet": Repacker(repack_hf_parquet, check=require_pyarrow),
    "blurred": Repacker(repack_blurred),
    "imagefolder": Repacker(repack_imagefolder),
    "kaggle-zip-2019": Repacker(repack_kaggle_zip_2019),
    "wds": Repacker(repack_wds),
}
LAYOUTS = ("ilsvrc", "kaggle", "kaggle-zip", "hf-tar", "hf-parquet", "blurred", "imagefolder", "wds")
EXTRA_LAYOUTS = ("kaggle-zip-2019",)  # the older Kaggle zip (a tar.gz inside), for tests and bug reports


@dataclass(frozen=True)
class LayoutRelease:
    root: Path
    layout: str
    wnids: tuple[str, ...]
    train_files: dict[str, tuple[str, ...]] = field(hash=False)  # canonical names, as in the ILSVRC sample
    val_files: dict[str, str] = field(hash=False)  # val name -> wnid
    written: tuple[str, ...] = ()  # top-level entries written in ``root``


def _repacker(layout: str) -> Repacker:
    try:
        return REPACKERS[layout]
    except KeyError:
        raise UsageError(f"Unknown sample layout {layout!r}: choose one of {', '.join(LAYOUTS)}.") from None


def read_images(root: Path, val: dict[str, str]) -> tuple[Images, Images]:
    """(wnid, name, bytes) of the ILSVRC sample's train and val images, read back from its tars."""
    train: Images = []
    with tarfile.open(root / TRAIN_TAR) as outer:
        for member in outer:
            handle = outer.extractfile(member)
            assert handle is not None
            with tarfile.open(fileobj=io.BytesIO(handle.read())) as inner:
                for image in inner:
                    data = inner.extractfile(image)
                    assert data is not None
                    train.append((member.name[:-4], image.name, data.read()))
    vals: Images = []
    with tarfile.open(root / VAL_TAR) as flat:
        for member in flat:
            data = flat.extractfile(member)
            assert data is not None
            vals.append((val[member.name], member.name, data.read()))
    return train, vals


def write_layout(
    dest: str | os.PathLike[str],
    spec: SampleSpec = SampleSpec(),  # noqa: B008 - frozen, so a shared default is safe
    layout: str = "ilsvrc",
    progress: Callable[[int], None] | None = None,
    *,
    overwrite: bool = False,
    workers: int | None = None,
) -> LayoutRelease:
    """Write the miniature release into ``dest`` in ``layout`` (see the module docstring)."""
    root = Path(dest)
    if layout == "ilsvrc":  # the official layout is what the others are re-packed from
        release = write_sample(root, spec, progress, overwrite=overwrite, workers=workers)
        written = (release.train_tar.name, release.val_tar.name, release.devkit.name, release.md5sums.name)
        return LayoutRelease(root, layout, release.wnids, release.train_files, release.val_files, written)
    repacker = _repacker(layout)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file; give a folder for the sample release.")
    if repacker.check is not None:
        repacker.check()
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise UsageError(f"{root} is not empty: pass --overwrite to write into it, or choose another folder.")
    with tempfile.TemporaryDirectory(prefix="imagenet-prep-sample-") as scratch:
        release = write_sample(Path(scratch), spec, progress, workers=workers)
        train, vals = read_images(Path(scratch), release.val_files)
    root.mkdir(parents=True, exist_ok=True)
    names = repacker.write(root, train, vals, spec.seed)
    return LayoutRelease(root, layout, release.wnids, release.train_files, release.val_files, tuple(names))


def write_layouts(
    dest: str | os.PathLike[str],
    spec: SampleSpec = SampleSpec(),  # noqa: B008 - frozen, so a shared default is safe
    layouts: tuple[str, ...] = LAYOUTS,
) -> dict[str, LayoutRelease]:
    """The same release in several layouts, rendered once: ``dest/<layout>/`` each (tests, benchmarks)."""
    root = Path(dest)
    official = write_layout(root / "ilsvrc", spec, "ilsvrc")
    train, vals = read_images(official.root, official.val_files)
    out = {"ilsvrc": official}
    for layout in layouts:
        if layout == "ilsvrc":
            continue
        repacker = _repacker(layout)
        folder = root / layout
        folder.mkdir(parents=True, exist_ok=True)
        names = repacker.write(folder, train, vals, spec.seed)
        out[layout] = LayoutRelease(
            folder, layout, official.wnids, official.train_files, official.val_files, tuple(names)
        )
    return out
