"""The Executor protocol: how a build's work runs. One module per engine; ``executors/__init__.py`` registers
each by name.

An executor only ever receives small picklable records (work units, a UnitJob, index arguments) and returns
small records (UnitResult): pixels never pass through it. It owns progress (``progress(n)`` as images finish,
called in the parent) and cancellation (``close(cancel=True)`` stops the work now; the build cleans up).

Optional: ``expect(images: int | None)``, called once before planning with an upper bound of the images the
build will process (None: unknown), so that an engine may start its workers while the parent plans (the local
executor starts its forkserver then, unless the build is small enough to run in the parent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from ..records import UnitResult, WorkUnit
from ..worker import UnitJob

Progress = Callable[[int], None]


class Executor(Protocol):
    def map(self, function: Callable, arguments: Sequence[tuple]) -> list:
        """``[function(*args) for args in arguments]``, maybe in parallel (planning work: indexing)."""
        ...

    def run_units(
        self, units: Sequence[WorkUnit], job: UnitJob, progress: Progress | None
    ) -> Iterator[UnitResult]:
        """Run every unit (each writes its own done marker); yield results as units finish."""
        ...

    def close(self, *, cancel: bool = False) -> None:
        """Release the workers; with ``cancel``, stop running work now."""
        ...
