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
import dataclasses
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ..build_options import OPTIONS, RUN_ONLY_KEYS, VALID_KEYS, recorded
from ..config import BuildConfig, build_config, default_of
from ..errors import BuildError, BuildInterrupted, InputError, OutputLockedError, UsageError
from ..executors import Executor, make_executor
from ..image.reference import preprocessing_record
from ..outputs import Writer, writer_for
from ..outputs.base import UnitSize, WriterContext
from ..outputs.record import write_build_record
from ..plan import BuildPlan, make_plan
from ..records import ImageIssue, UnitResult, WorkUnit
from ..sources.streamed import STREAM, inflater
from .state import (
    STATE_DIR,
    assign_shards,
    managed_folders,
    marker_names,
    missing_units,
    output_lock,
    prepare_out,
    prune_created,
    read_marker,
    read_plan_state,
    refuse_links,
    remove_temp_files,
    setup_lock,
    write_error,
    write_plan_state,
)
from .worker import UnitJob

#: RUN_ONLY_KEYS (build_options.py: the executor, sharding and run-only groups) only change how a build runs, not
#: what it writes: left out of the plan state, so every shard writes the same plan.json and ``finalize`` re-plans
#: with its own defaults.
__all__ = ["RUN_ONLY_KEYS", "BuildResult", "build", "finalize", "recorded_config", "settings_of"]

#: The settings state.json recorded before every option was declared; the others are recorded only when not at
#: their default, so a refusal of an older tree names no setting that did not change.
_FIRST_SETTINGS = (
    "splits",
    "subset",
    "classes",
    "under",
    "train_per_class",
    "val_per_class",
    "seed",
    "output",
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
    shard: tuple[int, int] | None = (
        None  # (index, count) for a shard of a static-sharded build (not finalized)
    )
    layout: str = ""  # the source layout read (detected or --layout)
    units_rebuilt: int = 0  # finished units whose files were missing or changed, rebuilt by this run
    enlarged: int = 0  # images made larger than their source (fixed-shape modes, or upscale)
    timings: tuple[tuple[str, float], ...] = ()
    bytes_read: int = 0  # source bytes the units read (images)
    images_built: int = 0  # images this run processed (a resumed unit's images are not: the img/s rate)
    allow_skips: bool = False  # the config's --allow-skips: a build with skipped images still succeeds

    @property
    def ok(self) -> bool:
        return not self.skipped

    def to_dict(self) -> dict[str, Any]:
        """The build's JSON document (``build --json``; keys in docs/python-api.md): JSON types only."""
        return {
            "ok": self.ok or self.allow_skips,
            "out": str(self.out),
            "build_record": str(self.out / "build.json"),
            "layout": self.layout,
            "classes": len(next(iter(self.counts.values()), {})),
            "images": self.images_written,
            "images_built": self.images_built,
            "per_split": {split: sum(c.values()) for split, c in self.counts.items()},
            "skipped": len(self.skipped),
            "skipped_files": [{"file": i.file, "reason": i.reason} for i in self.skipped[:100]],
            "repaired": len(self.repaired),
            "enlarged": self.enlarged,
            "units": {
                "total": self.units_total,
                "already_built": self.units_resumed,
                "built": self.units_total - self.units_resumed,
                "rebuilt": self.units_rebuilt,
            },
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
            "timings": {key: round(value, 3) for key, value in self.timings},
            "warnings": list(self.warnings),
            "shard": None if self.shard is None else {"index": self.shard[0], "count": self.shard[1]},
        }


def build(
    config: BuildConfig,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[BuildPlan, int], None] | None = None,
) -> BuildResult:
    """Build the output described by ``config``. ``on_plan(plan, images_to_do)`` is called once planning is
    done (the CLI sizes its progress bar there); ``progress(n)`` is called as images finish."""
    if isinstance(config.out, str):  # an object-store OUT: a staged local build, mirrored (build/remote.py)
        from .remote import ObjectUrl, build_remote

        def staged(local: BuildConfig, writer: Writer) -> BuildResult:
            return build_into(local, progress, on_plan, [], writer)

        result = build_remote(config, staged)
        return dataclasses.replace(result, out=cast(Path, ObjectUrl(str(config.out))))
    created = _would_create(config.out)
    running: list[bool] = []  # becomes [True] once units start: from then on OUT holds work worth keeping
    try:
        try:
            return build_into(config, progress, on_plan, running)
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
    """The settings that decide the output bytes (the declared options that do, but the source), as state.json
    records them (named when a config differs)."""
    values = config.to_dict()
    settings: dict[str, Any] = {"wnids": list(wnids), **config.image_dict()}
    for option in OPTIONS:
        if not option.decisive or option.key == "source" or option.key in settings:
            continue
        if option.group == "image":
            continue  # image_dict: verify only when off (as the fingerprint)
        if option.key in _FIRST_SETTINGS or values.get(option.key) != recorded(default_of(option)):
            settings[option.key] = values.get(option.key)
    return settings


def recorded_config(out: Path) -> dict[str, Any]:
    """The config values the build in ``out`` recorded in its plan state (what decides the output, not how it
    ran), ready for ``build_config``: ``finalize`` re-plans from them, and ``build --out OUT`` given alone re-runs
    them. An InputError when ``out`` holds no plan state."""
    state = read_plan_state(out)
    values = {key: value for key, value in state["config"].items() if key in VALID_KEYS and value is not None}
    values["out"] = str(out)
    return values


def build_into(
    config: BuildConfig,
    progress: Callable[[int], None] | None,
    on_plan: Callable[[BuildPlan, int], None] | None,
    running: list[bool],
    writer: Writer | None = None,
) -> BuildResult:
    """Build into the local folder ``config.out`` with ``writer`` (default: the config's own); ``running`` gets
    True appended once units start. ``build`` calls it for a folder, ``build.remote.build_remote`` for its
    staging folder with the object-store writer wrapped around the shard writer."""
    started = time.perf_counter()
    out = Path(config.out)
    writer = writer or writer_for(config)
    _make_out(out)
    with output_lock(out, config.shard_index if config.sharded else None), contextlib.ExitStack() as held:
        executor: Executor | None = None
        work_dirs: list[str] = []  # the folders this run's workers write into (temp files are cleaned there)
        try:
            if config.remote_min_rate is not None:  # before any worker starts: they inherit it
                from ..io.http import set_min_rate

                set_min_rate(config.remote_min_rate)
            executor = make_executor(config.executor, config.worker_count, scheduler=config.scheduler)
            executor.expect(config.images_at_most())  # an engine may start its workers while we plan
            plan = make_plan(config, runner=executor.map, writer=writer)
            held.callback(plan.source.close)  # the archives the plan opened, closed however the build ends
            # The splits the plan took from the source (no --splits): recorded as resolved, so a repair or
            # `build --out OUT` re-runs the same build, and the fingerprint is that of the explicit splits.
            config = dataclasses.replace(config, splits=plan.splits)
            planned_at = time.perf_counter()
            fingerprint = plan_fingerprint(config, plan)
            with setup_lock(out):  # shard processes starting at once prepare OUT one after the other
                outdated = None if config.overwrite else writer.outdated(out)
                if outdated is not None:
                    raise UsageError(outdated)
                prepare_out(
                    out,
                    fingerprint,
                    config.overwrite,
                    writer.managed_entries(out),
                    protect=(config.source,) if isinstance(config.source, Path) else (),
                    settings=settings_of(config, plan.wnids),
                )
                # Nothing is written or cleaned through a managed folder that is a link (its target is not ours).
                refuse_links(out, managed_folders(out, writer.work_dirs(plan.units)))
                write_plan_state(out, fingerprint, plan_config(config), plan.units, config.num_shards)
                running.append(True)
                writer.prepare(out, writer_context(plan))
            mine = plan.units
            if config.num_shards is not None and config.shard_index is not None:
                mine = tuple(assign_shards(plan.units, config.num_shards)[config.shard_index])

            results: dict[str, UnitResult] = {}
            todo: list[WorkUnit] = []
            rebuilt = 0
            markers = marker_names(out)  # one listing, not an absent file opened per unit of a fresh build
            for unit in mine:
                previous = read_marker(out, unit) if f"{unit.unit_id}.json" in markers else None
                # A writer whose files live elsewhere (an object store) says itself whether they are intact.
                if previous is not None and writer.files_intact(out, previous):
                    results[unit.unit_id] = previous
                else:
                    rebuilt += previous is not None  # finished once, but its files are missing or changed
                    todo.append(unit)
            work_dirs = writer.work_dirs(todo)
            if not config.sharded:
                # A shard never cleans: another shard may be writing in the same folders (finalize cleans).
                remove_temp_files(out, work_dirs)
            if on_plan is not None:
                on_plan(plan, sum(len(unit.samples) for unit in todo))
            job = UnitJob(str(out), config.image, writer, config.remote_min_rate)
            for unit_result in executor.run_units(todo, job, progress):
                results[unit_result.unit_id] = unit_result
            executor.close()
            images_done = time.perf_counter()
            built = sum(len(results[unit.unit_id].rows) for unit in todo)  # by this run: its img/s
            if config.num_shards is not None and config.shard_index is not None:
                return _shard_result(
                    config,
                    plan,
                    [results[unit.unit_id] for unit in mine],
                    len(mine) - len(todo),
                    started,
                    built,
                )
            # A unit retried after its worker died (a remote executor) may have left temp files: clean them.
            remove_temp_files(out, work_dirs)
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
                built,
            )
        except KeyboardInterrupt:
            _stop(executor, out, [] if config.sharded else work_dirs)
            raise BuildInterrupted(
                f"Interrupted. Finished units are kept in {out}: run the same command again to resume."
            ) from None
        except BaseException:
            _stop(executor, out, [] if config.sharded else work_dirs)
            raise


def _make_out(out: Path) -> None:
    """Create OUT; a path that is a file (or runs through one) is a usage error, not a failed build."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder: choose a folder (it is created if missing).")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(
            f"--out {out} cannot be a folder: part of its path is a file, not a folder. Choose another --out."
        ) from None


def plan_fingerprint(config: BuildConfig, plan: BuildPlan) -> str:
    return config.output_fingerprint(
        {"wnids": list(plan.wnids), "units": [unit.fingerprint for unit in plan.units]}
    )


def plan_config(config: BuildConfig) -> dict[str, Any]:
    """The config as finalize re-plans it: what decides the output, without how this process ran."""
    values = {key: value for key, value in config.to_dict().items() if key not in RUN_ONLY_KEYS}
    values.setdefault("wordnet", None)  # recorded as null when unset, as plan states always have been
    return values


def _shard_result(
    config: BuildConfig, plan: BuildPlan, ordered: list[UnitResult], resumed: int, started: float, built: int
) -> BuildResult:
    counts: dict[str, dict[str, int]] = {split: {wnid: 0 for wnid in plan.wnids} for split in config.splits}
    for result in ordered:
        for row in result.rows:
            counts[result.split][row.wnid] += 1
    return BuildResult(
        out=Path(config.out),
        counts=counts,
        images_written=sum(len(result.rows) for result in ordered),
        skipped=tuple(issue for result in ordered for issue in result.skipped),
        repaired=tuple(issue for result in ordered for issue in result.repaired),
        units_total=len(ordered),
        units_resumed=resumed,
        seconds=time.perf_counter() - started,
        warnings=plan.warnings,
        shard=(config.shard_index or 0, config.num_shards or 1),
        images_built=built,
        allow_skips=config.allow_skips,
    )


class IncompleteBuildError(BuildError):
    """``finalize`` found planned units without a done marker."""


def finalize(out: Path, progress: Callable[[int], None] | None = None) -> BuildResult:
    """Write label maps, manifests and build.json of a build whose units all ran (e.g. as the shards of a job
    array): the same bytes as one whole build. Raises :class:`IncompleteBuildError` naming the missing units
    and their shards otherwise."""
    try:
        return _finalize(Path(out))
    except OSError as exc:
        raise write_error(exc, Path(out)) from None


def _finalize(out: Path) -> BuildResult:
    started = time.perf_counter()
    if not out.is_dir():
        raise InputError(f"{out} does not exist: pass the --out folder of a build.")
    with output_lock(out), contextlib.ExitStack() as held:
        state = read_plan_state(out)
        missing = missing_units(out, state)
        if missing:
            shards = sorted({unit["shard"] for unit in missing if unit.get("shard") is not None})
            names = ", ".join(unit["id"] for unit in missing[:10]) + (" ..." if len(missing) > 10 else "")
            which = (
                f" (shard{'s' if len(shards) > 1 else ''} {', '.join(map(str, shards))} of "
                f"--num-shards {state['num_shards']})"
                if shards
                else ""
            )
            raise IncompleteBuildError(
                f"{len(missing)} of {len(state['units'])} units are not done{which}: {names}. Run "
                f"{'those shards' if shards else 'the build'} again (same command), then finalize."
            )
        config = build_config({}, recorded_config(out))
        writer = writer_for(config)
        plan = make_plan(config, runner=None, writer=writer)
        held.callback(plan.source.close)
        fingerprint = plan_fingerprint(config, plan)
        if fingerprint != state["fingerprint"]:
            raise InputError(
                f"The source of {out} changed since its shards were planned (fingerprint {fingerprint}, planned "
                f"{state['fingerprint']}): rebuild the changed units by running the shards again."
            )
        results = []
        for unit in plan.units:
            result = read_marker(out, unit)
            if result is None:  # a marker removed since the check above
                raise IncompleteBuildError(
                    f"Unit {unit.unit_id} is not done: run its shard again, then finalize."
                )
            results.append(result)
        planned_at = time.perf_counter()
        remove_temp_files(out, writer.work_dirs(plan.units))  # what killed shards left
        return _finish(
            config, plan, writer, fingerprint, results, len(results), {"plan": planned_at - started}, started
        )


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
    built: int = 0,
) -> BuildResult:
    out = Path(config.out)
    writer.finalize(out, writer_context(plan), ordered)
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
    extra = {key: dict(value) if isinstance(value, dict) else value for key, value in plan.record.items()}
    extra["preprocessing"] = preprocessing_record(config.image)  # so a metric on the output traces back to it
    if any(unit.samples and unit.samples[0].location.compression == STREAM for unit in plan.units):
        # What inflated the gzip streams (zlib-ng with the fast extra, else the stdlib's): speed only.
        extra["inflater"] = inflater()
    counters: dict[str, int] = {}
    for result in ordered:
        for name, count in result.counters:
            counters[name] = counters.get(name, 0) + count
    if plan.boxes:
        extra.setdefault("boxes", {}).update(
            {name[len("boxes_") :] if name.startswith("boxes_") else name: n for name, n in counters.items()}
        )
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
        extra=extra,
        enlarged=enlarged,
    )
    prune_created(out)  # last: build.json is a managed entry too
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
        layout=type(plan.source).layout,
        units_rebuilt=rebuilt,
        enlarged=enlarged,
        timings=tuple({**timings, "total": seconds}.items()),
        bytes_read=image_bytes,
        images_built=built,
        allow_skips=config.allow_skips,
    )


def writer_context(plan: BuildPlan) -> WriterContext:
    """What the writer is told of the plan (outputs.base.WriterContext)."""
    return WriterContext(
        plan.class_set,
        plan.wnids,
        plan.splits,
        plan.boxes,
        counts=plan.counts,
        units=tuple(UnitSize(unit.unit_id, unit.split, len(unit.samples)) for unit in plan.units),
    )
