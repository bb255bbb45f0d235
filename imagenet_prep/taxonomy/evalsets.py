"""Evaluation sets beyond the ILSVRC2012 validation set: pure helpers (no I/O besides bundled data).

- ImageNetV2 (matched-frequency, threshold0.7, top-images): class folders ``0``..``999`` are the SORTED-wnid
  1K index (0 = tench). Folder names are parsed as integers, never sorted as strings ("100" sorts before "2").
- ImageNet-A and ImageNet-R: 200 of the 1000 classes each, in ``<wnid>`` folders. A model with 1000 outputs is
  scored on them through ``indices_in_1k`` (its logits at those 200 indices, in sorted-wnid order).
- ImageNet-Sketch: all 1000 classes in ``sketch/<wnid>/`` folders.

:func:`class_of_member` names the class of an archive member of any of them, for the source modules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath

from ..errors import UnknownClassError, UsageError
from . import classes

__all__ = [
    "EVAL_SETS",
    "IMAGENETV2_VARIANTS",
    "class_of_member",
    "imagenet1k_indices",
    "imagenetv2_label",
    "imagenetv2_variant",
    "imagenetv2_wnid",
    "indices_in_1k",
    "subset_classes",
]

IMAGENETV2_VARIANTS = ("matched-frequency", "threshold0.7", "top-images")
# Eval set -> (bundled subset of its classes or None for all 1000, number of classes)
EVAL_SETS = {
    "imagenetv2": (None, 1000),
    "imagenet-a": ("imagenet-a", 200),
    "imagenet-r": ("imagenet-r", 200),
    "imagenet-sketch": (None, 1000),
}
_V2_FOLDER_RE = re.compile(r"^(0|[1-9]\d{0,2})$")
_V2_TOP_RE = re.compile(r"^imagenetv2-(matched-frequency|threshold0\.7|top-images)(?:-format-val)?$")
_WNID_RE = re.compile(r"^n\d{8}$")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


def imagenetv2_label(folder_name: str) -> int:
    """The 1K class index of an ImageNetV2 class folder ("100" -> 100): a decimal 0..999, nothing else."""
    text = folder_name.strip().strip("/")
    if not _V2_FOLDER_RE.match(text) or int(text) >= classes.NUM_CLASSES:
        raise UnknownClassError(
            f"'{folder_name}' is no ImageNetV2 class folder: those are named 0..999 (the sorted-wnid index)."
        )
    return int(text)


def imagenetv2_wnid(folder_name: str) -> str:
    """The wnid of an ImageNetV2 class folder ("0" -> n01440764)."""
    return classes.by_index(imagenetv2_label(folder_name)).wnid


def imagenetv2_variant(name: str) -> str | None:
    """ "matched-frequency" / "threshold0.7" / "top-images" from an archive or top-folder name
    (``imagenetv2-matched-frequency.tar.gz``, ``imagenetv2-matched-frequency-format-val``); None otherwise."""
    base = PurePosixPath(name.replace("\\", "/").rstrip("/")).name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    match = _V2_TOP_RE.match(base)
    return match.group(1) if match else None


def subset_classes(eval_set: str) -> tuple[tuple[int, str], ...]:
    """(1K index, wnid) of an eval set's classes in sorted-wnid order: 200 for ImageNet-A/-R, else 1000."""
    key = _eval_key(eval_set)
    subset = EVAL_SETS[key][0]
    wnids = classes.subset_wnids(subset) if subset else tuple(info.wnid for info in classes.all_classes())
    return tuple((classes.by_wnid(wnid).index, wnid) for wnid in wnids)


def indices_in_1k(eval_set: str) -> tuple[int, ...]:
    """The 1K indices of an eval set's classes, ascending: the mask of 1000-way logits for ImageNet-A/-R."""
    return tuple(index for index, _ in subset_classes(eval_set))


def imagenet1k_indices(wnids: Iterable[str]) -> tuple[int | None, ...]:
    """Each class's 1K index (None for a class outside ImageNet-1K), in the given order: for a built tree's
    ``classes.csv`` ``imagenet1k_index`` column (a 200-class ImageNet-A tree: its ``indices_in_1k``)."""
    return tuple(classes.by_wnid(w).index if classes.is_imagenet1k(w) else None for w in wnids)


def _eval_key(eval_set: str) -> str:
    key = eval_set.strip().lower().replace("_", "-")
    key = {
        "imagenet-v2": "imagenetv2",
        "sketch": "imagenet-sketch",
        "a": "imagenet-a",
        "r": "imagenet-r",
    }.get(key, key)
    if key not in EVAL_SETS:
        raise UsageError(f"Unknown evaluation set '{eval_set}': use one of {', '.join(EVAL_SETS)}.")
    return key


def class_of_member(eval_set: str, member_name: str) -> str | None:
    """The wnid of an image member of an eval-set archive, from its class folder (the parent folder):
    ``imagenetv2-matched-frequency-format-val/100/x.jpeg`` -> the wnid of index 100,
    ``imagenet-a/n01498041/0.0001.jpg`` -> n01498041. None for a member that is no image in a class folder
    (README files, the top folder). A class folder outside the eval set's classes is an UnknownClassError."""
    key = _eval_key(eval_set)
    path = PurePosixPath(member_name.replace("\\", "/"))
    if len(path.parts) < 2 or not path.name.lower().endswith(_IMAGE_SUFFIXES) or path.name.startswith("."):
        return None
    folder = path.parent.name
    if key == "imagenetv2":
        return imagenetv2_wnid(folder)
    if not _WNID_RE.match(folder):
        return None
    wanted = {wnid for _, wnid in subset_classes(key)}
    if folder not in wanted:
        raise UnknownClassError(f"{member_name}: {folder} is not one of the {len(wanted)} {key} classes.")
    return folder
