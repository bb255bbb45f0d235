"""The build: the orchestrator (orchestrator.py) and OUT's state: lock, fingerprint, done markers (state.py).

``build`` and ``BuildResult`` load on first use: the worker imports build.state, and the orchestrator imports
the executors and the worker.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from .state import STATE_DIR, output_lock

if TYPE_CHECKING:  # pragma: no cover
    from .orchestrator import BuildResult, build

__all__ = ["STATE_DIR", "BuildResult", "build", "output_lock"]


def __getattr__(name: str) -> Any:
    if name in ("build", "BuildResult"):
        from . import orchestrator

        return getattr(orchestrator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _BuildPackage(types.ModuleType):
    """This package, callable: ``imagenet_prep.build(source=..., out=..., size=64)`` is the one-call build
    (``by_name.py``). A function named ``imagenet_prep.build`` could not live beside this package: importing it sets
    the package's attribute on ``imagenet_prep``; the package itself answers the call instead."""

    def __call__(self, **options: Any) -> Any:
        from .by_name import build_by_name

        return build_by_name(**options)


sys.modules[__name__].__class__ = _BuildPackage
