"""ReaL ("Reassessed Labels") for the 50,000 ILSVRC2012 validation images, bundled (Apache-2.0, see
``data/real/SOURCE.md``): no download, no network.

Each validation image has zero or more ImageNet-1K class indices (sorted-wnid order, 0 = tench). An empty list
(3,163 images) means the raters found no valid label: ReaL accuracy leaves those images out.

    >>> from imagenet_prep.taxonomy import real_labels
    >>> real_labels.real_labels_for("ILSVRC2012_val_00000002.JPEG")
    (795, 970)
    >>> real_labels.real_field("ILSVRC2012_val_00000001.JPEG")   # excluded image: empty manifest field
    ''
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import PurePosixPath

from ..errors import UsageError
from . import classes

__all__ = [
    "NUM_EXCLUDED",
    "format_field",
    "real_field",
    "real_labels",
    "real_labels_for",
    "remap_to_classes",
    "val_number",
]

NUM_EXCLUDED = 3163
# ILSVRC2012_val_00000001, optionally with Hugging Face's "_<wnid>" suffix and any extension, in any folder.
_VAL_NAME_RE = re.compile(r"^ILSVRC2012_val_(\d{8})(?:_n\d{8})?(?:\.[A-Za-z0-9]+)*$")


@functools.cache
def real_labels() -> tuple[tuple[int, ...], ...]:
    """All 50,000 label tuples (each sorted ascending), entry k for ILSVRC2012_val_{k+1:08d}."""
    raw = resources.files("imagenet_prep").joinpath("data/real/real.json.gz").read_bytes()
    table = json.loads(gzip.decompress(raw))
    if len(table) != classes.NUM_VAL_IMAGES:  # pragma: no cover - bundled data
        raise AssertionError(f"bundled real.json has {len(table)} entries, not {classes.NUM_VAL_IMAGES}")
    return tuple(tuple(sorted(int(i) for i in labels)) for labels in table)


def val_number(file_name: str) -> int | None:
    """1..50000 for a validation image name (``ILSVRC2012_val_00000002.JPEG``, a path to it, Hugging Face's
    ``ILSVRC2012_val_00000002_n01751748.JPEG``); None for any other name or a number out of range."""
    base = PurePosixPath(file_name.replace("\\", "/")).name
    match = _VAL_NAME_RE.match(base)
    if not match:
        return None
    number = int(match.group(1))
    return number if 1 <= number <= classes.NUM_VAL_IMAGES else None


def real_labels_for(file_name: str | int) -> tuple[int, ...] | None:
    """The ReaL labels (sorted 1K indices) of a validation image, by file name or number (1-based); ``()``
    for an excluded image; None when the name is no ILSVRC2012 validation image."""
    number = file_name if isinstance(file_name, int) else val_number(file_name)
    if number is None or not 1 <= number <= classes.NUM_VAL_IMAGES:
        return None
    return real_labels()[number - 1]


def format_field(labels: Iterable[int]) -> str:
    """The manifest field: space-separated ascending indices, "" for none."""
    return " ".join(str(i) for i in sorted(set(labels)))


def real_field(file_name: str | int, wnids: Sequence[str] | None = None) -> str:
    """The manifest field of a validation image: space-separated sorted 1K indices ("" when excluded); with
    ``wnids`` (a built subset's classes) the indices are into that sorted list, labels outside it dropped.
    A name that is no validation image is a UsageError."""
    labels = real_labels_for(file_name)
    if labels is None:
        raise UsageError(f"'{file_name}' is not an ILSVRC2012 validation image name: it has no ReaL labels.")
    return format_field(remap_to_classes(labels, wnids) if wnids is not None else labels)


def remap_to_classes(labels: Iterable[int], wnids: Sequence[str]) -> tuple[int, ...]:
    """1K indices -> indices into the sorted ``wnids`` (a subset build's label order); others are dropped."""
    position = {wnid: i for i, wnid in enumerate(sorted(set(wnids)))}
    found = (position.get(classes.by_index(index).wnid) for index in labels)
    return tuple(sorted(i for i in found if i is not None))
