"""ImageNet-21K-P (Alibaba-MIIL, "ImageNet-21K Pretraining for the Masses") recipe as pure functions.

MIIL's ``dataset_preprocessing/processing_script.sh``, per class of fall11 or winter21:

1. keep the class only if it has MORE than 500 images (:func:`keep_class`);
2. validation = the first 50 files in ``ls`` order under the C locale, i.e. a byte-wise sort of the names
   (not natural sort, not shuffled); the rest is train (:func:`miil_split`);
3. resize by squishing to 224x224, an image with max(w, h) < 224 copied unchanged (:func:`miil_target_size`);
   a variant keeps the aspect ratio with the short edge at 256 (``--resize shorter --size 256``).

:func:`holdout_split` is the general ``--holdout N`` (a seeded random N per class). The published counts are
in :data:`PUBLISHED`; :func:`compare_with_published` lists how a build differs from them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config import MIIL_MIN_IMAGES, MIIL_VAL_PER_CLASS, BuildConfig, recipe
from ..errors import InputError, UsageError
from ..records import SourceFile
from ..sources import Source

__all__ = [
    "MIIL_MIN_IMAGES",
    "MIIL_SIZE",
    "MIIL_VAL_PER_CLASS",
    "PUBLISHED",
    "CountDifference",
    "PublishedCounts",
    "c_sort_key",
    "c_sorted",
    "compare_with_published",
    "holdout_split",
    "keep_class",
    "miil_split",
    "miil_summary",
    "miil_target_size",
]

MIIL_SIZE = 224


@dataclass(frozen=True)
class PublishedCounts:
    release: str
    classes: int
    train: int
    val: int


PUBLISHED = {
    "fall11": PublishedCounts("fall11", 11_221, 11_797_632, 561_052),
    "winter21": PublishedCounts("winter21", 10_450, 11_060_223, 522_500),
}


def keep_class(count: int, min_images: int = MIIL_MIN_IMAGES) -> bool:
    """MIIL keeps a class with more than 500 images (500 -> False, 501 -> True)."""
    return count > min_images


def c_sort_key(name: str) -> bytes:
    """Sort key of ``ls`` under LC_ALL=C: the name's bytes (UTF-8; undecodable tar names kept as they were)."""
    return name.encode("utf-8", "surrogateescape")


def c_sorted(file_names: Iterable[str]) -> list[str]:
    """Names in C-collation order: "A" < "Z" < "a", "n1_10" < "n1_9"."""
    return sorted(file_names, key=c_sort_key)


def miil_split(
    file_names: Iterable[str], val_per_class: int = MIIL_VAL_PER_CLASS
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train, val) of one class: val = the first 50 names in C-collation order, train = the rest (both in
    that order). Names are base names; a repeated name is a UsageError (a class folder cannot hold it twice)."""
    ordered = c_sorted(file_names)
    _refuse_repeats(ordered)
    return tuple(ordered[val_per_class:]), tuple(ordered[:val_per_class])


def _refuse_repeats(ordered: list[str]) -> None:
    repeated = sorted({a for a, b in zip(ordered, ordered[1:], strict=False) if a == b})
    if repeated:
        raise UsageError(f"A class lists the same file more than once: {', '.join(repeated[:3])}.")


def _class_rng(seed: int, wnid: str) -> random.Random:
    """A generator for one class: the same (seed, wnid) gives the same draw on every machine and Python."""
    digest = hashlib.sha256(f"imagenet-prep holdout\0{seed}\0{wnid}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def holdout_split(
    file_names: Iterable[str], n: int, seed: int, wnid: str, *, min_train: int = 1
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train, holdout) of one class: ``n`` names drawn at random, seeded by (seed, wnid), so a class's draw
    does not depend on the other classes or the listing's order; both parts in C-collation order. At least
    ``min_train`` names stay in train (a class with too few images gives fewer than ``n``)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise UsageError(f"Invalid holdout size {n!r}: give a whole number of images per class (>= 0).")
    ordered = c_sorted(file_names)
    _refuse_repeats(ordered)
    take = max(0, min(n, len(ordered) - max(0, min_train)))
    chosen = set(_class_rng(seed, wnid).sample(range(len(ordered)), take))
    train = tuple(name for i, name in enumerate(ordered) if i not in chosen)
    held = tuple(name for i, name in enumerate(ordered) if i in chosen)
    return train, held


def miil_target_size(width: int, height: int, size: int = MIIL_SIZE) -> tuple[int, int] | None:
    """MIIL's resize: squish to ``size`` x ``size``; None (copy unchanged) when max(w, h) < size."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(width, height) < size or (width, height) == (size, size):
        return None
    return (size, size)


def miil_summary(class_counts: Mapping[str, int]) -> dict[str, int]:
    """What the recipe makes of per-class image counts (wnid -> images): classes kept, train and val images."""
    kept = [count for count in class_counts.values() if keep_class(count)]
    val = sum(min(count, MIIL_VAL_PER_CLASS) for count in kept)
    return {"classes": len(kept), "train": sum(kept) - val, "val": val}


def release_of(source_name: str) -> str | None:
    """The 21K release a source is (``fall11``/``winter21``) from its archive or folder name; None if unknown."""
    lowered = source_name.lower()
    found = [release for release in PUBLISHED if release in lowered]
    return found[0] if len(found) == 1 else None


def published_notes(record: Mapping) -> list[str]:
    """Lines comparing a build record's counts (build.json) with the published counts of its recipe's
    release; [] when the build followed no recipe or its release is unknown."""
    section = record.get("recipe") if isinstance(record, Mapping) else None
    if not isinstance(section, Mapping) or not section.get("release"):
        return []
    counts = record.get("counts", {})
    summary = {"classes": len(record.get("classes", ()))}
    for split in ("train", "val"):
        if split in counts:
            summary[split] = int(counts[split].get("images", 0))
    release = str(section["release"])
    differences = compare_with_published(release, summary)
    name = section.get("name", "recipe")
    if not differences:
        return [f"{name}: the counts equal the published {release} counts."]
    return [f"{name} vs published {release}: {d.describe()}" for d in differences]


@dataclass(frozen=True)
class CountDifference:
    field: str  # "classes", "train" or "val"
    built: int
    published: int

    @property
    def difference(self) -> int:
        return self.built - self.published

    def describe(self) -> str:
        return f"{self.field}: built {self.built:,}, published {self.published:,} ({self.difference:+,})"


def compare_with_published(release: str, summary: Mapping[str, int]) -> tuple[CountDifference, ...]:
    """How a build's counts (``{"classes", "train", "val"}``; missing keys are not compared) differ from the
    published ImageNet-21K-P counts of ``release`` ("fall11" or "winter21"); () when they agree. Never raises
    for differences; an unknown release is a UsageError."""
    published = PUBLISHED.get(release.strip().lower())
    if published is None:
        raise UsageError(
            f"No published ImageNet-21K-P counts for '{release}': use one of {', '.join(PUBLISHED)}."
        )
    found = []
    for field in ("classes", "train", "val"):
        if field in summary and int(summary[field]) != getattr(published, field):
            found.append(CountDifference(field, int(summary[field]), getattr(published, field)))
    return tuple(found)


def split_rule(config: BuildConfig, source: Source, offered: Sequence[str]) -> tuple[str, int, int] | None:
    """How val is derived from train for a source without a val split: ("first", N, min_images) for a recipe
    (the first N names in C-collation order), ("holdout", N, min_images) for --holdout; None otherwise."""
    if config.holdout is not None and "val" in offered:
        raise UsageError(
            f"--holdout makes a val split for sources without one, but the {type(source).layout} source has "
            "its own val split: drop --holdout (or build --splits train)."
        )
    if config.recipe:
        chosen = recipe(config.recipe)
        count = chosen.val_per_class if config.holdout is None else config.holdout
        return ("first", count, chosen.min_images if config.min_images is None else config.min_images)
    if config.holdout is not None and "val" not in offered:
        return ("holdout", config.holdout, -1 if config.min_images is None else config.min_images)
    return None


def derive_val(
    rule: tuple[str, int, int], seed: int, wnid: str, train: dict[str, SourceFile]
) -> tuple[dict[str, SourceFile], dict[str, SourceFile]]:
    """(train, val) of one class by the rule (key -> file each)."""
    kind, count, _ = rule
    by_name = {file.name: key for key, file in train.items()}
    if kind == "first":
        kept, held = miil_split(by_name, count)
    else:
        kept, held = holdout_split(by_name, count, seed, wnid)
    return ({by_name[n]: train[by_name[n]] for n in kept}, {by_name[n]: train[by_name[n]] for n in held})


def keep_classes(
    wnids: tuple[str, ...], sizes: Mapping[str, int], min_images: int | None
) -> tuple[tuple[str, ...], list[str]]:
    """The classes with more than ``min_images`` images (all when None or negative), and the warning."""
    if min_images is None or min_images < 0:
        return wnids, []
    kept = tuple(wnid for wnid in wnids if keep_class(sizes[wnid], min_images))
    if wnids and not kept:  # nothing left to build: an error, not an empty output that exits 0
        raise InputError(
            f"No class has more than {min_images} images (the largest of the {len(wnids)} classes has "
            f"{max(sizes[wnid] for wnid in wnids)}): nothing to build. Lower the threshold with --min-images N."
        )
    if len(kept) == len(wnids):
        return kept, []
    return kept, [
        f"{len(wnids) - len(kept)} of the {len(wnids)} classes have {min_images} images or fewer and are "
        "left out."
    ]


def recipe_record(
    config: BuildConfig, source: Source, rule: tuple[str, int, int] | None
) -> dict[str, dict[str, Any]]:
    """build.json's ``recipe`` section of a recipe build ({} without ``--recipe``): the release the source is
    and its published counts."""
    if not config.recipe:
        return {}
    names = " ".join([Path(str(config.source)).name, *(r.path.name for r in source.records())])
    release = release_of(names)
    return {
        "recipe": {
            "name": config.recipe,
            "release": release,
            "published": asdict(PUBLISHED[release]) if release else None,
            "min_images": rule[2] if rule else None,
            "val_per_class": rule[1] if rule else None,
        }
    }
