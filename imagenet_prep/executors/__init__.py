"""Executors: the engines a build's units run on. A new engine is one module plus an entry in EXECUTORS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import UsageError
from .base import Executor
from .local import LocalExecutor

#: name -> factory(workers) -> Executor (an engine that needs a scheduler also takes ``scheduler=``)
EXECUTORS: dict[str, Callable[..., Executor]] = {
    "local": LocalExecutor,
    "dask": lambda workers, **options: _dask().DaskExecutor(workers, **options),
}


def _dask() -> Any:
    import importlib  # lazy: distributed is an optional extra, imported only for --executor dask

    return importlib.import_module(f"{__name__}.dask")


__all__ = ["EXECUTORS", "Executor", "make_executor"]


def make_executor(name: str, workers: int, scheduler: str | None = None) -> Executor:
    try:
        factory = EXECUTORS[name]
    except KeyError:
        raise UsageError(f"Unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}.") from None
    if scheduler is None:
        return factory(workers)
    if name == "local":
        raise UsageError("--scheduler is for a cluster executor: pass --executor dask with it.")
    return factory(workers, scheduler=scheduler)
