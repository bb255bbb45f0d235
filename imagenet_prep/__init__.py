"""imagenet-prep: get ImageNet (ILSVRC2012) ready to train on.

Importing the package is cheap: submodules load on first use, and WordNet itself loads only when a WordNet
query needs it. ``imagenet_prep.build(source=..., out=..., size=64)``, ``imagenet_prep.check(out)`` and
``imagenet_prep.inspect(source)`` are the one-call API (api.py; ``imagenet_prep.build`` is the build package,
callable); ``from imagenet_prep import synsets`` (the notebook API) and ``classes`` are the class lookups; the
pipeline's layout is described in docs/architecture.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

# Public name -> module. Every entry exists (a test imports each one).
_LAZY_SUBMODULES = {
    "build": "imagenet_prep.build",
    "catalog": "imagenet_prep.fetch.catalog",
    "classes": "imagenet_prep.taxonomy.classes",
    "config": "imagenet_prep.config",
    "errors": "imagenet_prep.errors",
    "executors": "imagenet_prep.executors",
    "fetch": "imagenet_prep.fetch",
    "image": "imagenet_prep.image",
    "labels": "imagenet_prep.outputs.labels",
    "outputs": "imagenet_prep.outputs",
    "plan": "imagenet_prep.plan",
    "records": "imagenet_prep.records",
    "sample": "imagenet_prep.sample",
    "sources": "imagenet_prep.sources",
    "synsets": "imagenet_prep.taxonomy.synsets",
    "verify": "imagenet_prep.fetch.verify",
    "wordnet": "imagenet_prep.taxonomy.wordnet",
}

# Public function -> module (the one-call API).
_LAZY_FUNCTIONS = {"check": "imagenet_prep.api", "inspect": "imagenet_prep.api"}

if TYPE_CHECKING:  # pragma: no cover
    from . import errors  # noqa: F401
    from .api import check, inspect  # noqa: F401
    from .taxonomy import classes, synsets  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(_LAZY_SUBMODULES[name])
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(_LAZY_FUNCTIONS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", *sorted({*_LAZY_SUBMODULES, *_LAZY_FUNCTIONS})]
