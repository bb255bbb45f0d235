"""The local executor: a process pool on this machine (in-process for one worker).

Workers are started when work first needs them (indexing a cold archive, or a build of more than
``IN_PROCESS_MAX`` images; a smaller one runs in this process): with ``fork`` when this process runs one thread
on Linux (the children share what it already imported: nothing to start but the processes), else with the
forkserver, preloaded with the worker module (a notebook, a Dask client or an fsspec event loop runs other
threads, and a forked child could inherit a lock one of them held). A forkserver worker never re-runs the
caller's main script (``_main_left_alone``): a plain script calling ``build`` needs no ``__main__`` guard.

Progress: each worker counts finished images and publishes them to a shared counter at most every
``TICK_EVERY`` seconds (a cross-process lock per image would cost more than the write); the parent polls it.
A worker exits at once when the parent dies, so a killed build leaves no writer behind.

Small units travel to the pool a few at a time (``chunks``: consecutive units of the size-ordered list, about
``CHUNK_IMAGES`` images a task): a list of 1,000 classes with 13 images each (SimCLR's 1%) would otherwise pay a
pool round trip per 13 images. Units stay what they are (ids, fingerprints, one done marker each, written by the
unit as it finishes): only how they are handed to the workers changes, never what is written.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.machinery
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import BuildError
from ..records import UnitResult, WorkUnit
from .base import Executor, Progress, UnitJob

TICK_EVERY = 0.1  # seconds between progress publications (the parent polls every 0.2 s)
# A build with at most this many images runs in this process: handing it to the pool (whose workers may still
# be starting) costs more than the images (a CI subset of 10 classes x 2 images is done before a worker is up).
IN_PROCESS_MAX = 48
# A pool task holds units up to about this many images (a bigger unit goes alone): the round trip (pickling the
# units and the job, the pool's queues, the result's way back) is paid per task, not per unit.
CHUNK_IMAGES = 64
# ... and a build gets at least this many tasks per worker, so a small build still spreads over the workers.
TASKS_PER_WORKER = 8

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


def _run_units_counting(units: Sequence[WorkUnit], job: UnitJob) -> list[UnitResult]:
    """One pool task: its units in turn, each writing its own done marker as it finishes (a worker killed
    mid-task leaves the units before it done)."""
    try:
        return [job.run(unit, _tick) for unit in units]
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
    # A forked worker inherits the CLI's SIGTERM handler (which raises in the main loop): a worker told to stop
    # stops at once instead, as a forkserver's worker does.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # What the worker inherited (a forked parent's plan, the forkserver's imports) lives as long as it does:
    # keeping it out of the collector saves the scans, and the copy-on-write pages a scan would touch.
    gc.freeze()
    global _counter
    _counter = counter
    _exit_with_parent()


# ------------------------------------------------------------------------------------------------ parent
def fork_is_safe() -> bool:
    """Whether workers may be forked from this process now: on Linux, with one thread running (counted by
    the kernel, so a native library's threads count too).

    fork starts a worker in ~5 ms with every module this process imported (the forkserver costs a Python
    start and ~0.25 s of imports, and one more process for its resource tracker); with another thread running,
    a lock that thread held (in malloc, logging, an event loop) would stay held in the child for ever, so the
    forkserver is used then. Per-process state that must not be shared (HTTP sessions, open cursors, held
    locks) is dropped in the child by ``os.register_at_fork`` hooks where it lives."""
    if sys.platform != "linux":
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


@contextlib.contextmanager
def _main_left_alone() -> Iterator[None]:
    """While a worker is being started: make the calling script's ``__main__`` one that multiprocessing leaves
    alone in the child. A worker started from the forkserver (or spawned) otherwise re-runs the caller's main
    script before it runs anything (``multiprocessing.spawn.get_preparation_data`` names its path), and a plain
    script calling ``build`` at top level, without an ``if __name__ == "__main__":`` guard, would start a second
    build inside each worker (which dies on OUT's lock: BrokenProcessPool). The workers run only this package's
    functions on this package's records, so they never need the caller's main module: a ``__spec__`` named
    ``__main__`` is what multiprocessing skips (``spawn._fixup_main_from_name``), and the real one is put back
    as soon as the worker has its start-up data (a few milliseconds)."""
    main = sys.modules.get("__main__")
    previous = getattr(main, "__spec__", None)
    try:
        main.__spec__ = _LEFT_ALONE  # type: ignore[union-attr]
    except (AttributeError, TypeError):  # no main module, or one that takes no attribute: nothing to hide
        yield
        return
    # (Another thread of the caller starting its own spawn/forkserver process in these milliseconds would not
    # re-run the script either; its children would then not find functions defined in it.)
    try:
        yield
    finally:
        main.__spec__ = previous  # type: ignore[union-attr]


#: The stand-in spec: only its name is read, and a name of ``__main__`` means "do not re-import the main module".
_LEFT_ALONE = importlib.machinery.ModuleSpec("__main__", None)


class _WorkerProcess(multiprocessing.context.ForkServerProcess):
    """A forkserver worker that does not re-run the caller's main script (``_main_left_alone``)."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        with _main_left_alone():
            return multiprocessing.context.ForkServerProcess._Popen(process_obj)


class _WorkerContext(multiprocessing.context.ForkServerContext):
    """The forkserver context the pool starts its workers with: ``_WorkerProcess`` as its Process."""

    Process = _WorkerProcess


_WORKER_CONTEXT = _WorkerContext()


def start_forkserver() -> Any:
    """Start the forkserver process (not the workers) if it is not running; returns the forkserver context.

    The forkserver imports the worker modules (~0.2-0.3 s) before it can fork a worker: started before
    planning (``LocalExecutor.expect``), it does so while this process plans, and the pool, when work needs it,
    forks at once. No thread, semaphore or worker is made here, so a build refused during planning exits as
    before (the idle forkserver leaves with this process). SIGINT is blocked while it is spawned (as
    multiprocessing does for its resource tracker): the forkserver inherits the blocked signal, so a Ctrl-C
    meant for this process never prints a traceback from the forkserver's imports.
    """
    context = _WORKER_CONTEXT
    # The worker by name: this layer imports no build module (the job's class, build.worker.UnitJob, runs there).
    context.set_forkserver_preload(["imagenet_prep.executors.local", "imagenet_prep.build.worker"])
    from multiprocessing import forkserver, resource_tracker

    # The resource tracker first: starting it unblocks SIGINT (it restores no mask), so it must not start
    # inside the window below.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # this thread's mask only
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return context


class LocalExecutor(Executor):
    """Runs units in a process pool of ``workers`` processes, or in this process for one worker."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None  # started on first need (see _started)
        self.counter: Any = None  # made with the pool, in its context (a build in this process needs none)

    def expect(self, images: int | None) -> None:
        """Called before planning with an upper bound of the images the build will process (None: unknown).
        A build that may need the pool, in a process that cannot fork its workers, gets the forkserver started
        now, so that its imports overlap planning (measured: the first image ~0.35 s sooner on a busy 2-core
        machine); forked workers need nothing started early, and a build that will run in this process
        (<= IN_PROCESS_MAX images) starts nothing."""
        if self.workers > 1 and (images is None or images > IN_PROCESS_MAX) and not fork_is_safe():
            start_forkserver()

    def _started(self) -> ProcessPoolExecutor:
        """The pool, started now if it is not yet: only work that needs it pays for it (a warm-index plan
        and a small build never do). Forked when ``fork_is_safe()`` says so at this moment, else from the
        forkserver."""
        if self.pool is None:
            forked = fork_is_safe()
            context = multiprocessing.get_context("fork") if forked else start_forkserver()
            self.counter = context.Value("q", 0)
            self.pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(self.counter,),
            )
            if forked:
                # A fork pool makes all its workers at its first submit: do that now, with SIGINT blocked in
                # this thread, so the children start with it blocked and a Ctrl-C cannot reach one before its
                # initializer ignores it (their mask is theirs; ours is restored at once).
                previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
                try:
                    self.pool.submit(int)
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        return self.pool

    def map(self, function: Callable, arguments: Sequence[tuple]) -> list:
        if self.workers <= 1 or len(arguments) <= 1:
            return [function(*args) for args in arguments]
        return list(self._started().map(function, *zip(*arguments, strict=True)))

    def run_units(
        self, units: Sequence[WorkUnit], job: UnitJob, progress: Progress | None
    ) -> Iterator[UnitResult]:
        if self.workers <= 1 or sum(len(unit.samples) for unit in units) <= IN_PROCESS_MAX:
            tick = (lambda: progress(1)) if progress is not None else None
            for unit in units:
                yield job.run(unit, tick)
            return
        pool = self._started()
        reported = 0

        def report() -> None:
            nonlocal reported
            value = self.counter.value
            if progress is not None and value > reported:
                progress(value - reported)
            reported = value

        # Big units first, so the pool does not end waiting on one large class.
        ordered = sorted(units, key=lambda unit: -len(unit.samples))
        # Finished tasks arrive on a queue (put there by the pool's own thread): waiting costs the same however
        # many tasks are pending (concurrent.futures.wait takes every pending future's lock, twice, at each
        # wake-up: about 1 s of the parent's CPU over 1,000 units).
        finished: queue.SimpleQueue[Future] = queue.SimpleQueue()
        try:
            tasks = 0
            for chunk in chunks(ordered, self.workers):
                pool.submit(_run_units_counting, chunk, job).add_done_callback(finished.put)
                tasks += 1
            while tasks:
                try:
                    future = finished.get(timeout=0.2)
                except queue.Empty:
                    report()
                    continue
                tasks -= 1
                report()
                yield from future.result()
            report()
        except BrokenProcessPool:
            raise BuildError(
                "A worker process died (out of memory, or killed). Finished units are kept: run the same "
                "command again to resume, perhaps with fewer --workers."
            ) from None

    def close(self, *, cancel: bool = False) -> None:
        if self.pool is None:
            return
        pool, self.pool = self.pool, None  # idempotent: a failure after a normal close closes again
        if cancel:
            # Stop now: workers may be mid-image; their temp files are cleaned by this run or the next.
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            _stop_processes(processes)
        else:
            pool.shutdown(wait=True)


def chunks(ordered: Sequence[WorkUnit], workers: int) -> list[list[WorkUnit]]:
    """``ordered`` cut into pool tasks of consecutive units: a unit of ``CHUNK_IMAGES`` images or more alone,
    smaller ones together up to about that many images, and fewer when the whole build is small (at least
    ``TASKS_PER_WORKER`` tasks per worker while units last). Only the dispatch depends on ``workers``: each
    unit still runs alone, with its own id, fingerprint and done marker."""
    total = sum(len(unit.samples) for unit in ordered)
    target = max(1, min(CHUNK_IMAGES, total // max(1, workers * TASKS_PER_WORKER)))
    tasks: list[list[WorkUnit]] = []
    current: list[WorkUnit] = []
    images = 0
    for unit in ordered:
        size = len(unit.samples)
        if current and images + size > target:
            tasks.append(current)
            current, images = [], 0
        current.append(unit)
        images += size
    if current:
        tasks.append(current)
    return tasks


STOP_GRACE = 1.0  # seconds a worker gets to exit after SIGTERM before SIGKILL
KILL_WAIT = 1.0  # seconds to wait for killed workers to be reaped; never more


def _stop_processes(processes: Sequence[Any]) -> None:
    """Terminate, then kill after a short grace, then return: never wait on a worker that cannot exit.

    A stopped worker (SIGSTOP, a debugger) never acts on SIGTERM, and one stuck in the kernel on a hung
    network file system may not even die at once on SIGKILL: the stop path waits at most
    STOP_GRACE + KILL_WAIT in all, not per worker, and never joins without a deadline.
    """
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    _join_until(processes, time.monotonic() + STOP_GRACE)
    for process in processes:
        with contextlib.suppress(Exception):
            if process.is_alive():
                process.kill()  # SIGKILL also ends a stopped process
    _join_until(processes, time.monotonic() + KILL_WAIT)


def _join_until(processes: Sequence[Any], deadline: float) -> None:
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=max(0.0, deadline - time.monotonic()))
