"""Miniature releases: every layout a build reads, in its exact real format, with generated images.

One module per family of layouts, one registry (``registry.MINIATURES``: layout -> writer, description, the
build command that reads it):

- ``ilsvrc.py``: the official ILSVRC2012 tars, devkit and MD5SUMS (``write_sample``), and the image generation
  every miniature shares (``render_image``);
- ``repack.py``: the same images re-packed into the other ImageNet-1K layouts (``write_layout``,
  ``write_layouts``) by ``kaggle.py``, ``huggingface.py`` and ``folders.py``;
- ``imagenet21k.py``: fall11, winter21 and a folder of class tars; ``evalsets.py``: ImageNetV2, -A, -R, -Sketch;
  ``boxes.py``: the ILSVRC2012 bounding-box archives;
- ``common.py``: deterministic tar, gzip and zip pieces (fixed times and owners: the same spec, the same bytes).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .ilsvrc import (
        DEVKIT_TAR,
        MD5SUMS,
        QUIRK_CLASSES,
        TRAIN_TAR,
        VAL_TAR,
        SampleRelease,
        SampleSpec,
        choose_wnids,
        render_image,
        write_sample,
    )
    from .registry import MINIATURES, Miniature, MiniatureOptions, Written, write_miniature

# Public name -> the module that defines it, imported on first use: the CLI imports the registry for its
# `sample --layout` help, and importing this package then must not bring numpy, Pillow or the class tables.
_LAZY = {
    **dict.fromkeys(
        (
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
        ),
        "ilsvrc",
    ),
    **dict.fromkeys(
        ("MINIATURES", "Miniature", "MiniatureOptions", "Written", "write_miniature"), "registry"
    ),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEVKIT_TAR",
    "MD5SUMS",
    "MINIATURES",
    "QUIRK_CLASSES",
    "TRAIN_TAR",
    "VAL_TAR",
    "Miniature",
    "MiniatureOptions",
    "SampleRelease",
    "SampleSpec",
    "Written",
    "choose_wnids",
    "render_image",
    "write_miniature",
    "write_sample",
]
