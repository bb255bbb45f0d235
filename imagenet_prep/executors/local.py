"""The local executor: a process pool on this machine (in-process for one worker).

Workers are started with the forkserver (preloaded with the worker module) while the parent plans, so their
start-up overlaps planning. Progress: each worker counts finished images and publishes them to a shared
counter at most every ``TICK_EVERY`` seconds (a cross-process lock per image would cost more than the write);
the parent polls it. A worker exits at once when the parent dies, so a killed build leaves no writer behind.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import BuildError
from ..records import UnitResult, WorkUnit
from ..worker import UnitJob, run_unit
from .base import Progress

TICK_EVERY = 0.1  # seconds between progress publications (the parent polls every 0.2 s)
# A build with at most this many images runs in this process: handing it to the pool (whose workers may still
# be starting) costs more than the images (a CI subset of 10 classes x 2 images is done before a worker is up).
IN_PROCESS_MAX = 48

# ---------------------------------------------------------------------------------------- worker process
_counter: Any = None
_unreported = 0
_last_report = 0.0


def _tick() -> None:
    global _unreported
    _unreported += 1
    if time.monotonic() - _last_report >= TICK_EVERY:
        _flush_ticks()


def _flush_ticks() -> None:
    global _unreported, _last_report
    if _counter is not None and _unreported:
        with _counter.get_lock():
            _counter.value += _unreported
    _unreported = 0
    _last_report = time.monotonic()


def _run_unit_counting(unit: WorkUnit, job: UnitJob) -> UnitResult:
    try:
        return run_unit(unit, job, _tick)
    finally:
        _flush_ticks()


def _exit_with_parent() -> None:
    """Exit at once when the parent process dies (kill -9, the OOM killer).

    Without this, the workers of a killed parent went on with the units already queued to them, writing into
    OUT while the next run was cleaning and redoing those units, and then blocked forever on the dead pool's
    queue (with the forkserver), holding their memory.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        # The sentinel becomes readable when the parent's end of it closes, i.e. when the parent is gone.
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)  # mid-write temp files are removed by the next run

    threading.Thread(target=watch, name="imagenet-prep-parent-watch", daemon=True).start()


def _init_worker(counter: Any) -> None:
    # The parent owns Ctrl-C: it stops the pool itself, so workers must not die mid-write on SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _counter
    _counter = counter
    _exit_with_parent()


# ------------------------------------------------------------------------------------------------ parent
class LocalExecutor:
    """Runs units in a process pool of ``workers`` processes, or in this process for one worker."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._starting: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self._unused = False
        if workers > 1:
            # Start the workers now, in a thread, so their start-up (the forkserver imports the worker modules
            # before it forks; the parent would block on it) overlaps planning instead of following it.
            self._starting = threading.Thread(
                target=self._start, name="imagenet-prep-pool-start", daemon=True
            )
            self._starting.start()
        else:
            self.counter = multiprocessing.Value("q", 0, lock=True)

    def _start(self) -> None:
        try:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["imagenet_prep.executors.local"])
            self.counter = context.Value("q", 0)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(self.counter,),
            )
            for _ in range(self.workers):
                self._pool.submit(os.getpid)
        except BaseException as exc:  # re-raised where the pool is first needed
            self._start_error = exc

    @property
    def pool(self) -> ProcessPoolExecutor | None:
        """The started pool (waits for the start to finish), or None for one worker or once closed."""
        if self._starting is not None:
            self._starting.join()
            self._starting = None
            if self._start_error is not None:
                error, self._start_error = self._start_error, None
                raise error
        return self._pool

    @pool.setter
    def pool(self, value: ProcessPoolExecutor | None) -> None:
        self._pool = value

    def map(self, function: Callable, arguments: Sequence[tuple]) -> list:
        if self.workers <= 1 or len(arguments) <= 1 or self.pool is None:
            return [function(*args) for args in arguments]
        return list(self.pool.map(function, *zip(*arguments, strict=True)))

    def run_units(
        self, units: Sequence[WorkUnit], job: UnitJob, progress: Progress | None
    ) -> Iterator[UnitResult]:
        if (
            self.workers <= 1
            or sum(len(unit.samples) for unit in units) <= IN_PROCESS_MAX
            or self.pool is None
        ):
            self._unused = True
            tick = (lambda: progress(1)) if progress is not None else None
            for unit in units:
                yield run_unit(unit, job, tick)
            return
        self._unused = False
        reported = 0

        def report() -> None:
            nonlocal reported
            value = self.counter.value
            if progress is not None and value > reported:
                progress(value - reported)
            reported = value

        # Big units first, so the pool does not end waiting on one large class.
        ordered = sorted(units, key=lambda unit: -len(unit.samples))
        pending: set[Future] = {self.pool.submit(_run_unit_counting, unit, job) for unit in ordered}
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                report()
                for future in done:
                    yield future.result()
            report()
        except BrokenProcessPool:
            raise BuildError(
                "A worker process died (out of memory, or killed). Finished units are kept: run the same "
                "command again to resume, perhaps with fewer --workers."
            ) from None

    def close(self, *, cancel: bool = False) -> None:
        if self.workers <= 1:
            return
        with contextlib.suppress(Exception):  # a failed start has nothing to close
            self.pool  # noqa: B018 - waits for a start under way
        if self._pool is None:
            return
        pool, self._pool = self._pool, None  # idempotent: a failure after a normal close closes again
        if cancel or self._unused:  # an idle pool has nothing to finish: stop it now
            # Stop now: workers may be mid-image; their temp files are cleaned by this run or the next.
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                with contextlib.suppress(Exception):
                    process.terminate()
            for process in processes:
                with contextlib.suppress(Exception):
                    process.join(timeout=5)
        else:
            pool.shutdown(wait=True)
