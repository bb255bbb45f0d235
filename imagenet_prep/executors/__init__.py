"""Executors: the engines a build's units run on. A new engine is one module plus an entry in EXECUTORS."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UsageError
from .base import Executor
from .local import LocalExecutor

#: name -> factory(workers) -> Executor
EXECUTORS: dict[str, Callable[[int], Executor]] = {
    "local": LocalExecutor,
}

__all__ = ["EXECUTORS", "Executor", "make_executor"]


def make_executor(name: str, workers: int) -> Executor:
    try:
        factory = EXECUTORS[name]
    except KeyError:
        raise UsageError(f"Unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}.") from None
    return factory(workers)
