"""Run a build plan: a process pool over work units, atomic writes, done markers, manifests, build.json.

Guarantees (see README "Guarantees"):
- an image is written under a temporary name and moved into place with os.replace, so no half-written file ever
  carries a final name;
- a unit's done marker (``OUT/.imagenet-prep/done/<unit>.json``, holding its manifest rows) is written after all
  its images: a unit with a marker is finished, and a re-run skips it; anything else is redone from scratch;
- one build at a time per OUT (an flock'ed lock file holding the pid), and a different config into an OUT
  built before is refused unless ``overwrite``;
- the same config gives byte-identical images, label maps and manifests; only build.json holds timings.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import __version__, archive, labels
from .atomic import TMP_MARK, temp_path_for, write_text_atomic
from .config import BuildConfig
from .errors import BuildError, OutputLockedError, UsageError
from .imaging import ImageFailure, ImageOptions, process_image
from .plan import BuildPlan, WorkUnit, make_plan

STATE_DIR = ".imagenet-prep"
MANIFEST_FIELDS = ("path", "label", "wnid", "width", "height")
OUTPUT_FILES = ("labels.txt", "class_index.json", "classes.csv", "train.csv", "val.csv", "build.json")


@dataclass(frozen=True)
class ManifestRow:
    path: str
    label: int
    wnid: str
    width: int
    height: int


@dataclass(frozen=True)
class ImageIssue:
    """A skipped or repaired file and why."""

    file: str
    reason: str


@dataclass(frozen=True)
class UnitResult:
    split: str
    unit_id: str
    rows: tuple[ManifestRow, ...]
    skipped: tuple[ImageIssue, ...]
    repaired: tuple[ImageIssue, ...]
    bytes_read: int
    seconds: float


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

    @property
    def ok(self) -> bool:
        return not self.skipped


class BuildInterrupted(BuildError):
    """Ctrl-C or SIGTERM: finished units are kept, the next run resumes."""

    exit_code = 130


# ---------------------------------------------------------------------------------------------- worker side
_progress_counter: Any = None


def _init_worker(counter: Any) -> None:
    # The parent owns Ctrl-C: it stops the pool itself, so workers must not die mid-write on SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _progress_counter
    _progress_counter = counter


def _tick() -> None:
    if _progress_counter is not None:
        with _progress_counter.get_lock():
            _progress_counter.value += 1


def run_unit(unit: WorkUnit, out_dir: str, options: ImageOptions) -> UnitResult:
    """Process one unit: read each image by offset, convert, write atomically; then write the done marker."""
    started = time.perf_counter()
    out = Path(out_dir)
    source = archive.FileByteSource(unit.archive_path)
    rows: list[ManifestRow] = []
    skipped: list[ImageIssue] = []
    repaired: list[ImageIssue] = []
    try:
        for task in unit.tasks:
            file_label = f"{unit.split}/{task.member.name}"
            try:
                data = archive.read_member(source, task.member)
            except archive.ArchiveError as exc:
                raise BuildError(f"Unit {unit.unit_id}: cannot read {task.member.name}: {exc}") from exc
            result = process_image(data, options, task.member.name)
            if isinstance(result, ImageFailure):
                skipped.append(ImageIssue(file_label, result.reason))
                _tick()
                continue
            rel = task.dest_stem + result.extension
            _write_atomic(out / rel, result.data, unit.unit_id)
            rows.append(ManifestRow(rel, task.label, task.wnid, result.width, result.height))
            if result.repairs:
                repaired.append(ImageIssue(file_label, ", ".join(result.repairs)))
            _tick()
    finally:
        with contextlib.suppress(Exception):
            source.close()
    unit_result = UnitResult(
        unit.split,
        unit.unit_id,
        tuple(rows),
        tuple(skipped),
        tuple(repaired),
        source.bytes_read,
        time.perf_counter() - started,
    )
    _write_marker(out, unit, unit_result)
    return unit_result


def _write_atomic(path: Path, data: bytes, unit_id: str) -> None:
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BuildError(
                f"The disk holding {path.parent} is full (unit {unit_id}). Free space and run the same command "
                "again: finished units are kept."
            ) from None
        raise BuildError(f"Unit {unit_id}: cannot write {path}: {exc.strerror}.") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _marker_path(out: Path, unit_id: str) -> Path:
    return out / STATE_DIR / "done" / f"{unit_id}.json"


def _write_marker(out: Path, unit: WorkUnit, result: UnitResult) -> None:
    payload = {
        "unit": unit.unit_id,
        "fingerprint": unit.fingerprint,
        "rows": [asdict(row) for row in result.rows],
        "skipped": [asdict(issue) for issue in result.skipped],
        "repaired": [asdict(issue) for issue in result.repaired],
        "bytes_read": result.bytes_read,
        "seconds": result.seconds,
    }
    try:
        write_text_atomic(_marker_path(out, unit.unit_id), json.dumps(payload, separators=(",", ":")))
    except OSError as exc:
        raise BuildError(f"Unit {unit.unit_id}: cannot write its done marker: {exc.strerror}.") from None


def _read_marker(out: Path, unit: WorkUnit) -> UnitResult | None:
    try:
        payload = json.loads(_marker_path(out, unit.unit_id).read_text())
    except (OSError, ValueError):
        return None
    if payload.get("fingerprint") != unit.fingerprint:
        return None
    return UnitResult(
        unit.split,
        unit.unit_id,
        tuple(ManifestRow(**row) for row in payload["rows"]),
        tuple(ImageIssue(**issue) for issue in payload["skipped"]),
        tuple(ImageIssue(**issue) for issue in payload["repaired"]),
        int(payload.get("bytes_read", 0)),
        float(payload.get("seconds", 0.0)),
    )


# ---------------------------------------------------------------------------------------------- parent side
@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """One build per OUT: an flock (released by the kernel even on kill -9) on a file holding the pid."""
    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    handle = open(state / "lock", "a+")  # noqa: SIM115 - held for the whole build
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise OutputLockedError(
                f"Another imagenet-prep build (pid {holder}) is writing to {out}. Wait for it to finish, or "
                "stop it and run this command again."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def _managed_entries(out: Path) -> list[Path]:
    return [out / name for name in ("train", "val", *OUTPUT_FILES)]


def _prepare_out(config: BuildConfig, fingerprint: str) -> None:
    """Refuse a different config into an OUT built before (unless overwrite); record this config's fingerprint."""
    out = config.out
    state_file = out / STATE_DIR / "state.json"
    previous = None
    if state_file.exists():
        with contextlib.suppress(OSError, ValueError):
            previous = json.loads(state_file.read_text()).get("fingerprint")
    foreign = [p.name for p in out.iterdir() if p.name != STATE_DIR] if previous is None else []
    if previous is not None and previous != fingerprint or previous is None and foreign:
        if not config.overwrite:
            what = (
                "was built with a different configuration"
                if previous is not None
                else f"is not empty ({', '.join(sorted(foreign)[:5])})"
            )
            raise UsageError(
                f"The output folder {out} {what}. Use another --out, or pass --overwrite to replace "
                "what imagenet-prep wrote there."
            )
        for entry in _managed_entries(out):
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
        shutil.rmtree(out / STATE_DIR / "done", ignore_errors=True)
    (out / STATE_DIR / "done").mkdir(parents=True, exist_ok=True)
    write_text_atomic(state_file, json.dumps({"fingerprint": fingerprint, "version": __version__}) + "\n")


def _remove_temp_files(out: Path, dirs: Sequence[str]) -> int:
    """Delete temporary files a killed run left behind in the given folders."""
    removed = 0
    for rel in dirs:
        folder = out / rel
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(TMP_MARK):
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
    return removed


def _unit_dirs(units: Sequence[WorkUnit]) -> list[str]:
    return sorted({str(Path(task.dest_stem).parent) for unit in units for task in unit.tasks})


class _Executor:
    """Runs callables over argument tuples: in-process for one worker, else a process pool.

    The pool is the seam for other engines: it only ever receives small picklable records.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.counter: Any = None
        self.pool: ProcessPoolExecutor | None = None
        if workers > 1:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["imagenet_prep.build"])
            self.counter = context.Value("q", 0)
            self.pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(self.counter,)
            )
        else:
            self.counter = multiprocessing.Value("q", 0, lock=True)
            global _progress_counter
            _progress_counter = self.counter

    def map(self, function: Callable, arguments: Sequence[tuple]) -> list:
        if self.pool is None:
            return [function(*args) for args in arguments]
        return list(self.pool.map(function, *zip(*arguments, strict=True))) if arguments else []

    def run_units(
        self,
        units: Sequence[WorkUnit],
        out: Path,
        options: ImageOptions,
        progress: Callable[[int], None] | None,
    ) -> Iterator[UnitResult]:
        reported = 0

        def report() -> None:
            nonlocal reported
            if progress is not None:
                value = self.counter.value
                if value > reported:
                    progress(value - reported)
                    reported = value

        if self.pool is None:
            for unit in units:
                yield run_unit(unit, str(out), options)
                report()
            return
        # Big units first, so the pool does not end waiting on one large class.
        ordered = sorted(units, key=lambda unit: -len(unit.tasks))
        pending: set[Future] = {self.pool.submit(run_unit, unit, str(out), options) for unit in ordered}
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            report()
            for future in done:
                yield future.result()
        report()

    def close(self, *, cancel: bool = False) -> None:
        if self.pool is None:
            return
        if cancel:
            # Stop now: workers may be mid-image; their temp files are cleaned by this run or the next.
            processes = list(getattr(self.pool, "_processes", {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                with contextlib.suppress(Exception):
                    process.terminate()
            for process in processes:
                with contextlib.suppress(Exception):
                    process.join(timeout=5)
        else:
            self.pool.shutdown(wait=True)


HASH_LIMIT = 1 << 30  # archives up to 1 GiB are hashed for build.json; larger ones use `verify`'s cache


def _known_md5(path: Path) -> str | None:
    """MD5 of a source archive: hashed when small, else taken from `imagenet-prep verify`'s cache if present."""
    if not path.is_file():
        return None
    if path.stat().st_size <= HASH_LIMIT:
        digest = hashlib.md5()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()
    with contextlib.suppress(Exception):
        from .verify import cached_md5

        return cached_md5(path)
    return None


def _sources_record(plan: BuildPlan) -> list[dict[str, Any]]:
    records = []
    for path in (plan.sources.train, plan.sources.val, plan.sources.devkit):
        if path is None:
            continue
        stat = path.stat()
        records.append(
            {"file": path.name, "bytes": stat.st_size if path.is_file() else None, "md5": _known_md5(path)}
        )
    return records


def _write_manifest(path: Path, rows: Sequence[ManifestRow]) -> None:
    lines = [",".join(MANIFEST_FIELDS)]
    lines.extend(
        f"{r.path},{r.label},{r.wnid},{r.width},{r.height}" for r in sorted(rows, key=lambda r: r.path)
    )
    write_text_atomic(path, "\n".join(lines) + "\n")


def build(
    config: BuildConfig,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[BuildPlan, int], None] | None = None,
) -> BuildResult:
    """Build the tree described by ``config``. ``on_plan(plan, images_to_do)`` is called once planning is done
    (the CLI sizes its progress bar there); ``progress(n)`` is called as images finish."""
    started = time.perf_counter()
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        executor = _Executor(config.worker_count)
        try:
            plan = make_plan(config, runner=executor.map)
            planned_at = time.perf_counter()
            fingerprint = config.output_fingerprint(
                {"wnids": list(plan.wnids), "units": [unit.fingerprint for unit in plan.units]}
            )
            _prepare_out(config, fingerprint)
            for rel in plan.class_dirs:
                (out / rel).mkdir(parents=True, exist_ok=True)

            results: dict[str, UnitResult] = {}
            todo: list[WorkUnit] = []
            for unit in plan.units:
                previous = _read_marker(out, unit)
                if previous is not None:
                    results[unit.unit_id] = previous
                else:
                    todo.append(unit)
            _remove_temp_files(out, _unit_dirs(todo))
            if on_plan is not None:
                on_plan(plan, sum(len(unit.tasks) for unit in todo))
            try:
                for unit_result in executor.run_units(todo, out, config.image, progress):
                    results[unit_result.unit_id] = unit_result
            except BrokenProcessPool:
                raise BuildError(
                    "A worker process died (out of memory, or killed). Finished units are kept: run the same "
                    "command again to resume, perhaps with fewer --workers."
                ) from None
        except KeyboardInterrupt:
            executor.close(cancel=True)
            _remove_temp_files(out, _unit_dirs(plan.units) if "plan" in locals() else [])
            raise BuildInterrupted(
                f"Interrupted. Finished units are kept in {out}: run the same command again to resume."
            ) from None
        except BaseException:
            executor.close(cancel=True)
            raise
        executor.close()
        images_done = time.perf_counter()
        return _finish(
            config,
            plan,
            fingerprint,
            results,
            len(plan.units) - len(todo),
            {"plan": planned_at - started, "images": images_done - planned_at},
            started,
        )


def _finish(
    config: BuildConfig,
    plan: BuildPlan,
    fingerprint: str,
    results: dict[str, UnitResult],
    resumed: int,
    timings: dict[str, float],
    started: float,
) -> BuildResult:
    out = config.out
    ordered = [results[unit.unit_id] for unit in plan.units]
    labels.write_label_maps(out, plan.wnids)
    rows_by_split: dict[str, list[ManifestRow]] = {split: [] for split in config.splits}
    for result in ordered:
        rows_by_split[result.split].extend(result.rows)
    for split, rows in rows_by_split.items():
        _write_manifest(out / f"{split}.csv", rows)
    counts = {split: {wnid: 0 for wnid in plan.wnids} for split in config.splits}
    for split, rows in rows_by_split.items():
        for row in rows:
            counts[split][row.wnid] += 1
    skipped = tuple(issue for result in ordered for issue in result.skipped)
    repaired = tuple(issue for result in ordered for issue in result.repaired)
    images_written = sum(len(rows) for rows in rows_by_split.values())
    seconds = time.perf_counter() - started
    record = {
        "tool": "imagenet-prep",
        "version": __version__,
        "fingerprint": fingerprint,
        "config": config.to_dict(),
        "classes": list(plan.wnids),
        "sources": _sources_record(plan),
        "counts": {
            split: {"images": sum(per_class.values()), "per_class": per_class}
            for split, per_class in counts.items()
        },
        "available": plan.available,
        "skipped": [asdict(issue) for issue in skipped],
        "repaired": [asdict(issue) for issue in repaired],
        "refused_members": [{"member": name, "reason": reason} for name, reason in plan.refused],
        "warnings": list(plan.warnings),
        "units": {"total": len(plan.units), "resumed": resumed},
        "bytes_read": sum(result.bytes_read for result in ordered),
        "timings": {**{key: round(value, 3) for key, value in timings.items()}, "total": round(seconds, 3)},
    }
    write_text_atomic(out / "build.json", json.dumps(record, indent=2) + "\n")
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
    )
