"""Miniature evaluation sets, in their published layouts:

- ImageNetV2 ``imagenetv2-<variant>.tar.gz``: ``imagenetv2-<variant>-format-val/<0..999>/<sha1>.jpeg``;
- ImageNet-A / -R ``imagenet-a.tar`` / ``imagenet-r.tar``: ``imagenet-a/<wnid>/<name>.jpg``;
- ImageNet-Sketch ``ImageNet-Sketch.zip``: ``sketch/<wnid>/sketch_<n>.JPEG`` (deflated).
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ..taxonomy import classes
from .common import gzip_bytes, tar_bytes
from .ilsvrc import render_image

__all__ = ["DEFAULT_PER_CLASS", "write_imagenet_ar", "write_imagenetv2", "write_sketch"]

DEFAULT_PER_CLASS = 2
_ZIP_TIME = (2019, 5, 1, 0, 0, 0)


def _eval_images(
    wnids: Sequence[str], per_class: int, seed: int, namer: Callable[[str, int, bytes], str]
) -> list[tuple[str, str, bytes]]:  # (wnid, member name, bytes)
    out = []
    for wnid in wnids:
        for i in range(per_class):
            data = render_image(seed, wnid, f"{wnid}-{i}", False)
            out.append((wnid, namer(wnid, i, data), data))
    return out


def write_imagenetv2(
    dest: Path,
    variant: str = "matched-frequency",
    wnids: Sequence[str] | None = None,
    per_class: int = DEFAULT_PER_CLASS,
    seed: int = 0,
) -> Path:
    """``imagenetv2-<variant>.tar.gz``: folders named by the sorted-1K index (default: classes 0, 2, 10, 100,
    999 -- "100" sorts before "2" as a string), images ``<sha1>.jpeg``."""
    chosen = wnids or tuple(classes.by_index(i).wnid for i in (0, 2, 10, 100, 999))
    top = f"imagenetv2-{variant}-format-val"
    members = [
        (f"{top}/{classes.by_wnid(w).index}/{name}", data)
        for w, name, data in _eval_images(
            chosen, per_class, seed, lambda w, i, data: f"{hashlib.sha1(data).hexdigest()}.jpeg"
        )
    ]
    path = dest / f"imagenetv2-{variant}.tar.gz"
    path.write_bytes(gzip_bytes(tar_bytes(members)))
    return path


def write_imagenet_ar(
    dest: Path,
    which: str = "imagenet-a",
    wnids: Sequence[str] | None = None,
    per_class: int = DEFAULT_PER_CLASS,
    seed: int = 0,
) -> Path:
    """``imagenet-a.tar`` / ``imagenet-r.tar``: ``<which>/<wnid>/<name>.jpg`` (default: 4 of its 200 classes)."""
    chosen = wnids or classes.subset_wnids(which)[::50]
    prefix = "0." if which == "imagenet-a" else "art_"
    members = [
        (f"{which}/{w}/{name}", data)
        for w, name, data in _eval_images(chosen, per_class, seed, lambda w, i, d: f"{prefix}{i:04d}.jpg")
    ]
    path = dest / f"{which}.tar"
    path.write_bytes(tar_bytes(members))
    return path


def write_sketch(
    dest: Path, wnids: Sequence[str] | None = None, per_class: int = DEFAULT_PER_CLASS, seed: int = 0
) -> Path:
    """``ImageNet-Sketch.zip``: ``sketch/<wnid>/sketch_<n>.JPEG``, deflated (default: 5 classes)."""
    chosen = wnids or tuple(classes.by_index(i).wnid for i in (0, 1, 151, 500, 999))
    path = dest / "ImageNet-Sketch.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for w, name, data in _eval_images(chosen, per_class, seed, lambda w, i, d: f"sketch_{i}.JPEG"):
            info = zipfile.ZipInfo(f"sketch/{w}/{name}", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path
