"""The Executor base: how a build's work runs. One module per engine; ``executors/__init__.py`` registers
each by name.

An executor only ever receives small picklable records (work units, a UnitJob, index arguments) and returns
small records (UnitResult): pixels never pass through it. It owns progress (``progress(n)`` as images finish,
called in the parent) and cancellation (``close(cancel=True)`` stops the work now; the build cleans up).

Optional hooks are declared here with their defaults; the build calls them plainly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from ..records import UnitResult, WorkUnit

Progress = Callable[[int], None]


class UnitJob(Protocol):
    """What an executor runs each unit with (``build.worker.UnitJob``): picklable, sent to every worker. A
    protocol, so that executors sit below the build and import no worker (nor its image and writer modules)."""

    @property
    def out(self) -> str: ...

    def run(self, unit: WorkUnit, tick: Callable[[], None] | None = None) -> UnitResult:
        """Process ``unit`` and write its done marker; ``tick()`` once per finished image."""
        ...


class Executor(ABC):
    """An engine: ``map`` (planning work), ``run_units`` (the build's units), ``close``; ``expect`` optional."""

    @abstractmethod
    def map(self, function: Callable, arguments: Sequence[tuple]) -> list:
        """``[function(*args) for args in arguments]``, maybe in parallel (planning work: indexing)."""
        ...

    @abstractmethod
    def run_units(
        self, units: Sequence[WorkUnit], job: UnitJob, progress: Progress | None
    ) -> Iterator[UnitResult]:
        """Run every unit (each writes its own done marker); yield results as units finish."""
        ...

    @abstractmethod
    def close(self, *, cancel: bool = False) -> None:
        """Release the workers; with ``cancel``, stop running work now."""

    def expect(self, images: int | None) -> None:  # noqa: B027 - an optional hook; the default does nothing
        """Called once before planning with an upper bound of the images the build will process (None:
        unknown), so that an engine may start its workers while the parent plans (the local executor starts its
        forkserver then, unless the build is small enough to run in the parent). Default: nothing."""
