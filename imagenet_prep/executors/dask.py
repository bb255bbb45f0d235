"""The Dask executor: a build's units as Dask tasks, on an existing cluster or a LocalCluster started here.

``--executor dask --scheduler tcp://HOST:PORT`` connects to a running scheduler (``dask scheduler`` plus
``dask worker`` processes, or dask-jobqueue on SLURM/PBS); ``--scheduler local:N`` starts a LocalCluster of N
worker processes with one thread each (no ``--scheduler``: ``local:<--workers>``).

- A unit is one task (``UnitJob.run``: ``build.worker.run_unit``, which writes the unit's done marker after
  its output is committed).
  Only the small records travel: the unit and a ``UnitJob``; each worker reads its own image bytes.
- A worker that dies mid-unit: the scheduler runs its unit again elsewhere (Dask's ``allowed-failures``); the
  rewrite is atomic per file and the done marker comes last, so the output is the same bytes. A unit that
  fails with an exception is retried ``RETRIES`` times (a transient read error), then fails the build.
- Before the units run, every worker reports whether it can read the source files and write OUT: a worker that
  cannot fails the build at once, naming the worker and the path.
- Progress comes from the futures (a unit's images when it finishes); ``close(cancel=True)`` cancels them.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..build_options import parse_scheduler
from ..columns import sample_locators
from ..errors import BuildError, UsageError
from ..records import UnitResult, WorkUnit
from .base import Executor, Progress, UnitJob

RETRIES = 2  # retries of a unit that raised (a dead worker is handled by the scheduler, not counted here)
#: Seconds to connect to a scheduler and hear it answer (``IMAGENET_PREP_DASK_TIMEOUT`` overrides): Dask's own
#: timeout covers the TCP connect, not a server that accepts and then never speaks.
CONNECT_TIMEOUT = 30.0


def connect_timeout() -> float:
    value = os.environ.get("IMAGENET_PREP_DASK_TIMEOUT", "")
    try:
        seconds = float(value) if value else CONNECT_TIMEOUT
    except ValueError:
        seconds = CONNECT_TIMEOUT
    return seconds if 0 < seconds < 86400 else CONNECT_TIMEOUT


def _connect(distributed: Any, address: str, seconds: float) -> Any:
    """A Client of the scheduler at ``address`` with at least one worker, or a UsageError line within ``seconds`` (plus
    one): the attempt runs in a daemon thread, so a server that accepts and never answers cannot hold the build
    (or the exit), and whatever a wrong server's answer raises (a garbage length, a bad message) is one line."""
    box: dict[str, Any] = {}

    def connect() -> None:
        try:
            client = distributed.Client(address, timeout=f"{seconds}s")
            if not client.scheduler_info().get("workers"):
                client.wait_for_workers(1, timeout=f"{seconds}s")
            box["client"] = client
        except BaseException as exc:  # noqa: BLE001 - reported below in one line
            box["error"] = exc

    thread = threading.Thread(target=connect, name="imagenet-prep-dask-connect", daemon=True)
    thread.start()
    thread.join(seconds + 1)
    if thread.is_alive():
        raise UsageError(
            f"The Dask scheduler at {address} accepted the connection but did not answer within {seconds:g} s: "
            "is it a Dask scheduler (`dask scheduler`)? Fix --scheduler."
        )
    if "error" in box:
        error = box["error"]
        detail = (str(error).splitlines() or [""])[0][:200]
        raise UsageError(
            f"Cannot reach the Dask scheduler at {address} ({type(error).__name__}: {detail}): start it "
            "(`dask scheduler`) or fix --scheduler."
        )
    return box["client"]


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError(
            "--executor dask needs Dask's distributed scheduler: pip install 'imagenet-prep[dask]'."
        ) from None
    return distributed


def check_access(paths: Sequence[str], out: str) -> list[str]:
    """Runs on every worker: the problems it has reading ``paths`` (local files; URLs are checked by their
    reads) and writing into ``out``; empty when all is well."""
    problems = []
    for path in paths:
        if "://" in path:
            continue
        if not os.path.isfile(path):
            problems.append(f"cannot see the source file {path}")
        elif not os.access(path, os.R_OK):
            problems.append(f"cannot read the source file {path}")
    probe = os.path.join(out, ".imagenet-prep", f".tmp-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(probe, "wb") as handle:
            handle.write(b"ok")
        os.unlink(probe)
    except OSError as exc:
        problems.append(f"cannot write into the output folder {out} ({exc.strerror})")
    return problems


class DaskExecutor(Executor):
    """Runs units as Dask tasks. ``scheduler``: ``tcp://HOST:PORT`` (or another Dask address) or ``local:N``."""

    def __init__(self, workers: int, scheduler: str | None = None) -> None:
        distributed = _import_distributed()
        # The one scheduler check (build_options): local:N bounded like --workers, a Dask network scheme.
        self.scheduler = parse_scheduler(scheduler or f"local:{workers}", "scheduler")
        self.cluster: Any = None
        self._futures: list[Any] = []
        if self.scheduler.startswith("local:"):
            try:
                self.cluster = distributed.LocalCluster(
                    n_workers=int(self.scheduler.partition(":")[2]),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=50,  # CRITICAL only: the CLI owns the terminal
                    # Its HTTP server (health checks) on a free port: the default 8787 held by another cluster
                    # on this machine printed "Port 8787 is already in use" on the CLI's stderr.
                    scheduler_kwargs={"dashboard_address": ":0"},
                )
            except Exception as exc:  # noqa: BLE001 - a worker process died while starting (killed, no memory)
                detail = (str(exc).splitlines() or [""])[0][:200].rstrip(".")
                raise BuildError(
                    f"The local Dask cluster (--scheduler {self.scheduler}) could not start its workers "
                    f"({type(exc).__name__}: {detail}; a worker process was killed or ran out of memory?). "
                    "Nothing was built: run the same command again."
                ) from None
            address = self.cluster.scheduler_address
        else:
            address = self.scheduler
        try:
            self.client = _connect(distributed, address, connect_timeout())
        except UsageError:
            self._close_cluster()
            raise

    # ------------------------------------------------------------------------------------------- planning
    def map(self, function: Callable, arguments: Sequence[tuple]) -> list:
        if not arguments:
            return []
        futures = self.client.map(function, *zip(*arguments, strict=True), pure=False, retries=RETRIES)
        self._futures = list(futures)
        try:
            return list(self.client.gather(futures))
        finally:
            self._futures = []

    # -------------------------------------------------------------------------------------------- units
    def preflight(self, units: Sequence[WorkUnit], out: str) -> None:
        """Fail fast when a worker cannot read a source file or write OUT (one line naming both)."""
        paths = sorted(set().union(*(sample_locators(unit.samples) for unit in units)))
        reports = self.client.run(check_access, paths, out)
        for worker, problems in sorted(reports.items()):
            if problems:
                raise UsageError(
                    f"Dask worker {worker} {problems[0]}: OUT and the --source archives must be visible at the "
                    "same paths on every worker (a shared file system)."
                )

    def run_units(
        self, units: Sequence[WorkUnit], job: UnitJob, progress: Progress | None
    ) -> Iterator[UnitResult]:
        if not units:
            return
        distributed = _import_distributed()
        self.preflight(units, job.out)
        # Big units first, so the cluster does not end waiting on one large class.
        ordered = sorted(units, key=lambda unit: (-len(unit.samples), unit.unit_id))
        run = uuid.uuid4().hex[:8]
        sizes: dict[str, int] = {}
        unit_ids: dict[str, str] = {}
        futures = []
        for unit in ordered:
            future = self.client.submit(
                job.run, unit, key=f"imagenet-prep-{run}-{unit.unit_id}", pure=False, retries=RETRIES
            )
            sizes[future.key] = len(unit.samples)
            unit_ids[future.key] = unit.unit_id
            futures.append(future)
        self._futures = futures
        try:
            for future in distributed.as_completed(futures):
                try:
                    result = future.result()
                except distributed.KilledWorker:
                    raise BuildError(
                        f"Unit {unit_ids[future.key]}: the Dask workers running it died again and again (out of "
                        "memory?). Finished units are kept: run the same command again."
                    ) from None
                if progress is not None:
                    progress(sizes[future.key])
                yield result
        finally:
            self._futures = []

    # --------------------------------------------------------------------------------------------- close
    def close(self, *, cancel: bool = False) -> None:
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            if cancel and self._futures:
                with contextlib.suppress(Exception):  # closing anyway
                    client.cancel(self._futures, force=True)
            self._futures = []
            with contextlib.suppress(Exception):
                client.close()
        self._close_cluster()

    def _close_cluster(self) -> None:
        cluster, self.cluster = self.cluster, None
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
