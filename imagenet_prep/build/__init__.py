"""The build: the orchestrator (orchestrator.py) and OUT's state: lock, fingerprint, done markers (state.py).

``build`` and ``BuildResult`` load on first use: the worker imports build.state, and the orchestrator imports
the executors and the worker.
"""

from __future__ import annotations

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
