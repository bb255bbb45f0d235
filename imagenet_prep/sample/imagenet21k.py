"""Miniature ImageNet-21K releases: ``fall11_whole.tar`` (a tar of ``<wnid>.tar`` class tars of
``<wnid>_<n>.JPEG``), ``winter21_whole.tar.gz`` (gzip of ``winter21_whole/<wnid>.tar``) and a folder of
``<wnid>.tar`` class tars (the extracted winter21 archive).

``per_class`` is an int, or a tuple cycled over the classes (classes of several sizes, for the
ImageNet-21K-P threshold). Image names carry unpadded, sparse numbers like the real archives.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from ..errors import UsageError
from .common import gzip_bytes, tar_bytes
from .ilsvrc import render_image

__all__ = ["DEFAULT_21K_CLASSES", "names_21k", "write_class_tars", "write_fall11", "write_winter21"]

# A few 21K classes: inside and outside the 1K, dogs among them (for --under dog.n.01), all in the 21K spaces.
DEFAULT_21K_CLASSES = (
    "n00005787",  # benthos
    "n00007846",  # person
    "n01440764",  # tench (1K)
    "n02084071",  # dog
    "n02085019",  # feist
    "n02085620",  # Chihuahua (1K)
    "n04125692",  # safety arch
)
DEFAULT_PER_CLASS = 6


def _sizes(per_class: int | Sequence[int], count: int) -> list[int]:
    cycle = [per_class] if isinstance(per_class, int) else list(per_class)
    if not cycle or any(n < 0 for n in cycle):
        raise UsageError("per_class must be a positive number of images (or a list of them).")
    return [cycle[i % len(cycle)] for i in range(count)]


def names_21k(wnid: str, count: int, seed: int) -> list[str]:
    """Unpadded, sparse numbers like the real archives (so byte order and number order differ)."""
    rng = random.Random(f"{seed}:{wnid}")
    numbers = sorted(rng.sample(range(1, 20000), count))
    return [f"{wnid}_{n}.JPEG" for n in numbers]


def _class_tars(wnids: Sequence[str], per_class: int | Sequence[int], seed: int) -> dict[str, list[str]]:
    return {w: names_21k(w, n, seed) for w, n in zip(wnids, _sizes(per_class, len(wnids)), strict=True)}


def _class_tar(wnid: str, names: Sequence[str], seed: int) -> bytes:
    return tar_bytes((n, render_image(seed, wnid, n, False)) for n in names)


def _whole_tar(
    wnids: Sequence[str], per_class: int | Sequence[int], seed: int, folder: str
) -> tuple[dict[str, list[str]], bytes]:
    """wnid -> its image names, and the tar of ``<folder><wnid>.tar`` class tars both whole archives are."""
    files = _class_tars(wnids, per_class, seed)
    members = [(f"{folder}{w}.tar", _class_tar(w, names, seed)) for w, names in files.items()]
    return files, tar_bytes(members)


def write_fall11(
    dest: Path,
    wnids: Sequence[str] = DEFAULT_21K_CLASSES,
    per_class: int | Sequence[int] = DEFAULT_PER_CLASS,
    seed: int = 0,
) -> dict[str, list[str]]:
    """``fall11_whole.tar``; returns wnid -> its image names (in the class tar's order)."""
    files, whole = _whole_tar(wnids, per_class, seed, "")
    (dest / "fall11_whole.tar").write_bytes(whole)
    return files


def write_winter21(
    dest: Path,
    wnids: Sequence[str] = DEFAULT_21K_CLASSES,
    per_class: int | Sequence[int] = DEFAULT_PER_CLASS,
    seed: int = 0,
) -> dict[str, list[str]]:
    """``winter21_whole.tar.gz`` (``winter21_whole/<wnid>.tar``); returns wnid -> its image names."""
    files, whole = _whole_tar(wnids, per_class, seed, "winter21_whole/")
    (dest / "winter21_whole.tar.gz").write_bytes(gzip_bytes(whole))
    return files


def write_class_tars(
    dest: Path,
    wnids: Sequence[str] = DEFAULT_21K_CLASSES,
    per_class: int | Sequence[int] = DEFAULT_PER_CLASS,
    seed: int = 0,
) -> dict[str, list[str]]:
    """``<wnid>.tar`` files in ``dest``: the class tars of :func:`write_winter21`'s archive, extracted (the same
    bytes per class tar); returns wnid -> its image names."""
    files = _class_tars(wnids, per_class, seed)
    for w, names in files.items():
        (dest / f"{w}.tar").write_bytes(_class_tar(w, names, seed))
    return files
