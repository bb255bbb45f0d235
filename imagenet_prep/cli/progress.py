"""The one progress display of the CLI, on stderr: a tqdm bar on a terminal; in a log or a pipe (stderr not a
terminal) one plain line per ~10% instead, with no ANSI codes and no carriage returns; nothing when disabled
(``--quiet``, ``--json``)."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

STEP = 10  # percent between two plain lines


class Progress:
    """``update(n)`` as work finishes, ``close()`` at the end (also a context manager)."""

    def __init__(self, total: int, desc: str, unit: str = "img", enabled: bool = True) -> None:
        self.total = max(0, int(total))
        self.desc = desc
        self.unit = unit
        self.done = 0
        self._bar: Any = None
        self._next = STEP
        self._started = time.perf_counter()
        self._plain = False
        if not enabled or self.total == 0:
            return
        if _is_terminal():
            from tqdm import tqdm

            # No monitor thread (it only tunes the redraw rate of bars updated seldom): a process with one
            # thread forks its workers, one with two would start a forkserver (executors/local.py).
            tqdm.monitor_interval = 0
            self._bar = tqdm(total=self.total, desc=desc, unit=unit, dynamic_ncols=True, leave=False)
        else:
            self._plain = True

    def update(self, count: int = 1) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        elif self._plain:
            percent = 100 * self.done // self.total
            if percent >= self._next:
                self._next = (percent // STEP + 1) * STEP
                elapsed = time.perf_counter() - self._started
                typer.echo(
                    f"{self.desc}: {percent}% ({self.done:,} of {self.total:,} {self.unit}, {elapsed:.1f} s)",
                    err=True,
                )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
