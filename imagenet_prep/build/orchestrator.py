"""Run a build: lock OUT, plan, skip finished units, run the rest on an executor, finalize, record.

Guarantees (see README "Guarantees" and docs/architecture.md):
- every output file is written under a temporary name and moved into place, so no half-written file ever
  carries a final name (the writer's job, through io/atomic.py);
- a unit's done marker is written after its output is committed, recording its files' sizes: a unit with a
  marker whose files are all in place (stat only) is finished, and a re-run skips it; anything else (no
  marker, or a file missing or of another size) is redone from scratch (build/state.py);
- a refused build (exit 2 before any unit ran) removes the OUT folder (or state folder) it created;
- one build at a time per OUT, and a different config into an OUT built before is refused unless
  ``overwrite``;
- the same config gives byte-identical outputs, label maps and manifests whatever the worker count; only
  build.json holds timings.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import BuildConfig
from ..errors import BuildInterrupted, InputError, OutputLockedError, UsageError
from ..executors import Executor, make_executor
from ..outputs import Writer, make_writer
from ..outputs.record import write_build_record
from ..plan import BuildPlan, make_plan
from ..records import ImageIssue, UnitResult, WorkUnit
from ..worker import UnitJob
from .state import (
    STATE_DIR,
    files_intact,
    output_lock,
    prepare_out,
    read_marker,
    remove_temp_files,
    write_error,
)


@dataclass(frozen=True)
class BuildResult:
    out: Path
    counts: dict[str, dict[str, int]]
    images_written: int
    skipped: tuple[ImageIssue, ...]
    repaired: tuple[ImageIssue, ...]
    units_total: int
    units_resumed: int
    seconds: float
    warnings: tuple[str, ...]
    units_rebuilt: int = 0  # finished units whose files were missing or changed, rebuilt by this run
    enlarged: int = 0  # images made larger than their source (fixed-shape modes, or upscale)
    timings: tuple[tuple[str, float], ...] = ()
    bytes_read: int = 0  # source bytes the units read (images)

    @property
    def ok(self) -> bool:
        return not self.skipped


def build(
    config: BuildConfig,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[BuildPlan, int], None] | None = None,
) -> BuildResult:
    """Build the output described by ``config``. ``on_plan(plan, images_to_do)`` is called once planning is
    done (the CLI sizes its progress bar there); ``progress(n)`` is called as images finish."""
    created = _would_create(config.out)
    running: list[bool] = []  # becomes [True] once units start: from then on OUT holds work worth keeping
    try:
        try:
            return _build(config, progress, on_plan, running)
        except OSError as exc:
            # The parent's own writes (lock, state, folders, label maps, manifests, build.json): one clear line.
            raise write_error(exc, config.out) from None
    except (UsageError, InputError) as exc:
        # A refused build (unknown class, different config, bad source, ...) leaves nothing it created behind.
        if created is not None and not running and not isinstance(exc, OutputLockedError):
            shutil.rmtree(created, ignore_errors=True)
        raise


def _would_create(out: Path) -> Path | None:
    """What a build creates at ``out`` that a refused build must remove: OUT itself, or its state folder."""
    if not out.exists():
        return out
    return None if (out / STATE_DIR).exists() else out / STATE_DIR


def settings_of(config: BuildConfig, wnids: Sequence[str]) -> dict[str, Any]:
    """The settings that decide the output bytes, as state.json records them (named when a config differs)."""
    return {
        "splits": list(config.splits),
        "subset": config.subset,
        "classes": list(config.classes) if config.classes else None,
        "under": config.under,
        "wnids": list(wnids),
        "train_per_class": config.train_per_class,
        "val_per_class": config.val_per_class,
        "seed": config.seed,
        **config.image_dict(),
        "output": config.output,
    }


def _build(
    config: BuildConfig,
    progress: Callable[[int], None] | None,
    on_plan: Callable[[BuildPlan, int], None] | None,
    running: list[bool],
) -> BuildResult:
    started = time.perf_counter()
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    writer = make_writer(config.output)
    with output_lock(out):
        executor: Executor | None = None
        work_dirs: list[str] = []  # the folders this run's workers write into (temp files are cleaned there)
        try:
            executor = make_executor(config.executor, config.worker_count)
            plan = make_plan(config, runner=executor.map, writer=writer)
            planned_at = time.perf_counter()
            fingerprint = config.output_fingerprint(
                {"wnids": list(plan.wnids), "units": [unit.fingerprint for unit in plan.units]}
            )
            prepare_out(
                out,
                fingerprint,
                config.overwrite,
                writer.managed_entries(out),
                settings_of(config, plan.wnids),
            )
            running.append(True)
            writer.prepare(out, plan)

            results: dict[str, UnitResult] = {}
            todo: list[WorkUnit] = []
            rebuilt = 0
            for unit in plan.units:
                previous = read_marker(out, unit)
                if previous is not None and files_intact(out, previous):
                    results[unit.unit_id] = previous
                else:
                    rebuilt += previous is not None  # finished once, but its files are missing or changed
                    todo.append(unit)
            work_dirs = writer.work_dirs(todo)
            remove_temp_files(out, work_dirs)
            if on_plan is not None:
                on_plan(plan, sum(len(unit.samples) for unit in todo))
            job = UnitJob(str(out), config.image, writer)
            for unit_result in executor.run_units(todo, job, progress):
                results[unit_result.unit_id] = unit_result
            executor.close()
            images_done = time.perf_counter()
            return _finish(
                config,
                plan,
                writer,
                fingerprint,
                [results[unit.unit_id] for unit in plan.units],
                len(plan.units) - len(todo),
                {"plan": planned_at - started, "images": images_done - planned_at},
                started,
                rebuilt,
            )
        except KeyboardInterrupt:
            _stop(executor, out, work_dirs)
            raise BuildInterrupted(
                f"Interrupted. Finished units are kept in {out}: run the same command again to resume."
            ) from None
        except BaseException:
            _stop(executor, out, work_dirs)
            raise


def _stop(executor: Executor | None, out: Path, work_dirs: Sequence[str]) -> None:
    """After a failure or an interrupt: stop the workers now, then remove the temp files they left."""
    blocked: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # A second Ctrl-C (or SIGTERM) must not cut this short: it takes well under a second.
        for signum in (signal.SIGINT, signal.SIGTERM):
            blocked[signum] = signal.signal(signum, signal.SIG_IGN)
    try:
        if executor is not None:
            executor.close(cancel=True)
        with contextlib.suppress(OSError):
            remove_temp_files(out, work_dirs)
    finally:
        for signum, handler in blocked.items():
            if handler is not None:
                signal.signal(signum, handler)


def _finish(
    config: BuildConfig,
    plan: BuildPlan,
    writer: Writer,
    fingerprint: str,
    ordered: list[UnitResult],
    resumed: int,
    timings: dict[str, float],
    started: float,
    rebuilt: int = 0,
) -> BuildResult:
    out = config.out
    writer.finalize(out, plan, ordered)
    counts = {split: {wnid: 0 for wnid in plan.wnids} for split in config.splits}
    for result in ordered:
        for row in result.rows:
            counts[result.split][row.wnid] += 1
    # A refused archive member (a link, an unsafe name, a cut-off image) is an image the output lacks: it counts
    # as skipped, so the build exits 1 unless --allow-skips (it is also listed under "refused_members").
    refused = tuple(ImageIssue(name, f"refused archive member: {reason}") for name, reason in plan.refused)
    skipped = tuple(issue for result in ordered for issue in result.skipped) + refused
    repaired = tuple(issue for result in ordered for issue in result.repaired)
    images_written = sum(len(result.rows) for result in ordered)
    enlarged = sum(result.enlarged for result in ordered)
    image_bytes = sum(result.bytes_read for result in ordered)
    seconds = time.perf_counter() - started
    write_build_record(
        out,
        fingerprint=fingerprint,
        config=config.to_dict(),
        layout=type(plan.source).layout,
        wnids=plan.wnids,
        sources=plan.source.records(),
        counts=counts,
        available=plan.available,
        skipped=skipped,
        repaired=repaired,
        refused=plan.refused,
        warnings=plan.warnings,
        units={"total": len(plan.units), "resumed": resumed, "rebuilt": rebuilt},
        bytes_read={"index": plan.index_bytes, "images": image_bytes},
        timings={**timings, "total": seconds},
        enlarged=enlarged,
    )
    return BuildResult(
        out=out,
        counts=counts,
        images_written=images_written,
        skipped=skipped,
        repaired=repaired,
        units_total=len(plan.units),
        units_resumed=resumed,
        seconds=seconds,
        warnings=plan.warnings,
        units_rebuilt=rebuilt,
        enlarged=enlarged,
        timings=tuple({**timings, "total": seconds}.items()),
        bytes_read=image_bytes,
    )
