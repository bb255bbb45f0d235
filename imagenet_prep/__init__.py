"""imagenet-prep: get ImageNet (ILSVRC2012) ready to train on.

Importing the package is cheap: submodules (``synsets``, ``classes``, ``build`` ...) load on first use, and
WordNet itself loads only when a WordNet query needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY_SUBMODULES = {
    "archive",
    "build",
    "catalog",
    "classes",
    "config",
    "devkit",
    "errors",
    "fetch",
    "imaging",
    "labels",
    "sample",
    "subsets",
    "synsets",
    "verify",
    "wordnet",
}

if TYPE_CHECKING:  # pragma: no cover
    from . import classes, errors, synsets  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", *sorted(_LAZY_SUBMODULES)]
