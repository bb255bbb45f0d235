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
import csv
import errno
import fcntl
import io
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import __version__, archive, labels
from .atomic import TMP_MARK, write_text_atomic
from .config import BuildConfig
from .errors import BuildError, InputError, OutputLockedError, UsageError
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


_TICK_EVERY = 0.1  # seconds between progress publications (the parent polls every 0.2 s)
_unreported = 0
_last_report = 0.0


def _tick() -> None:
    """Count a finished image. The shared counter is a cross-process lock: publish at most every
    _TICK_EVERY seconds, and at the end of each unit (_flush_ticks), not once per image."""
    global _unreported
    _unreported += 1
    if time.monotonic() - _last_report >= _TICK_EVERY:
        _flush_ticks()


def _flush_ticks() -> None:
    global _unreported, _last_report
    if _progress_counter is not None and _unreported:
        with _progress_counter.get_lock():
            _progress_counter.value += _unreported
    _unreported = 0
    _last_report = time.monotonic()


def run_unit(unit: WorkUnit, out_dir: str, options: ImageOptions) -> UnitResult:
    """Process one unit: read each image by offset, convert, write atomically; then write the done marker."""
    started = time.perf_counter()
    out = Path(out_dir)
    out_prefix = f"{out_dir}/"  # plain strings on the per-image path: Path objects cost more than the write
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
            _write_atomic(out_prefix + rel, result.data, unit.unit_id)
            rows.append(ManifestRow(rel, task.label, task.wnid, result.width, result.height))
            if result.repairs:
                repaired.append(ImageIssue(file_label, ", ".join(result.repairs)))
            _tick()
    finally:
        _flush_ticks()
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


def _call_counting_reads(function: Callable, *args: Any) -> tuple[Any, int]:
    """Worker side of ``_Executor.map``: the result, and the archive bytes this call read in this process."""
    before = archive.FileByteSource.process_bytes_read
    result = function(*args)
    return result, archive.FileByteSource.process_bytes_read - before


def _write_atomic(path: str, data: bytes, unit_id: str) -> None:
    """Write ``data`` under a temporary name in the same folder (named like ``atomic.temp_path_for``, which the
    cleaners match), then os.replace it into place. Raw os calls: this runs once per image, and a buffered
    file object plus Path arithmetic cost twice what the system calls do."""
    folder, _, name = path.rpartition("/")
    tmp = f"{folder}/{TMP_MARK}{os.getpid()}-{name}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.errno in _DISK_FULL:
            raise _disk_full(folder, f"unit {unit_id}") from None
        raise BuildError(f"Unit {unit_id}: cannot write {path}: {exc.strerror}.") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _disk_full(where: Path | str, detail: str) -> BuildError:
    """The one message for a full disk or quota, in workers and in the parent alike."""
    return BuildError(
        f"The disk holding {where} is full ({detail}). Free space and run the same command again: "
        "finished units are kept."
    )


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
        if exc.errno in _DISK_FULL:
            raise _disk_full(out, f"unit {unit.unit_id}") from None
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
    """One build per OUT: an flock (released by the kernel even on kill -9) on a file holding the pid and host
    (several cluster nodes may share OUT on a network file system)."""
    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    handle = open(state / "lock", "a+")  # noqa: SIM115 - held for the whole build
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputLockedError(
                f"Another imagenet-prep build ({_lock_holder(handle)}) is writing to {out}. Wait for it to "
                "finish, or stop it and run this command again."
            ) from None
        except OSError as exc:
            # e.g. Lustre mounted without -o flock: refusing is safer than two builds racing in one OUT.
            raise InputError(
                f"Cannot lock {state / 'lock'}: {exc.strerror}. The file system holding {out} does not support "
                "file locks; build into a folder on one that does (a local disk, NFSv4, Lustre with -o flock)."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def _lock_holder(handle: Any) -> str:
    """'pid N' (plus 'on HOST' when another machine holds it), read from a lock file another build holds."""
    text = ""
    for _ in range(20):  # the holder writes its pid right after locking: give it a moment
        handle.seek(0)
        text = handle.read().strip()
        if text:
            break
        time.sleep(0.01)
    pid, _, host = text.partition(" ")
    if not pid:
        return "pid unknown"
    return f"pid {pid} on {host}" if host and host != socket.gethostname() else f"pid {pid}"


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
    """Delete temporary files a killed run left behind in the given folders, and always in OUT itself (label
    maps, manifests, build.json) and the state folders (state.json, done markers)."""
    removed = 0
    for rel in (".", STATE_DIR, f"{STATE_DIR}/done", *dirs):
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


def _exit_with_parent() -> None:
    """Worker side: exit at once when the parent process dies (kill -9, the OOM killer).

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


def _init_pool_worker(counter: Any) -> None:
    _init_worker(counter)
    _exit_with_parent()


class _Executor:
    """Runs callables over argument tuples: in-process for one worker, else a process pool.

    The pool is the seam for other engines: it only ever receives small picklable records.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.counter: Any = None
        self.remote_bytes_read = 0  # archive bytes read by map() calls in pool workers
        self.pool: ProcessPoolExecutor | None = None
        if workers > 1:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["imagenet_prep.build"])
            self.counter = context.Value("q", 0)
            self.pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=context,
                initializer=_init_pool_worker,
                initargs=(self.counter,),
            )
            # Start the workers now, so their start-up overlaps planning instead of following it.
            for _ in range(workers):
                self.pool.submit(os.getpid)
        else:
            self.counter = multiprocessing.Value("q", 0, lock=True)
            global _progress_counter
            _progress_counter = self.counter

    def map(self, function: Callable, arguments: Sequence[tuple]) -> list:
        """``[function(*args) for args in arguments]``, in the pool when there is one; archive bytes read by
        pool workers are added to ``self.remote_bytes_read`` (in-process reads count in this process)."""
        if self.pool is None:
            return [function(*args) for args in arguments]
        if not arguments:
            return []
        calls = zip(*arguments, strict=True)
        outputs = list(self.pool.map(_call_counting_reads, itertools.repeat(function), *calls))
        self.remote_bytes_read += sum(count for _, count in outputs)
        return [result for result, _ in outputs]

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
        pool, self.pool = self.pool, None  # idempotent: a failure after a normal close closes again
        if cancel:
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


HASH_LIMIT = 1 << 30  # archives up to 1 GiB are hashed once for build.json; larger ones need `verify`


def _known_md5(path: Path) -> str | None:
    """MD5 of a source archive for build.json, from `imagenet-prep verify`'s cache (keyed by size and mtime).

    A small archive not yet in the cache is hashed once and recorded, so the next build costs nothing; a large
    one (the real train tar is 148 GB) is left to `imagenet-prep verify`, and build.json says null until then.
    """
    from .verify import cached_md5, md5_file, record_md5

    if not path.is_file():
        return None
    with contextlib.suppress(OSError, ValueError):
        cached = cached_md5(path)
        if cached:
            return cached
    if path.stat().st_size > HASH_LIMIT:
        return None
    digest = md5_file(path)
    with contextlib.suppress(OSError):
        record_md5(path, digest)
    return digest


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
    # The csv module quotes a path holding a comma or quote (member names come from the archive); plain
    # ImageNet names come out unquoted.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_FIELDS)
    writer.writerows((r.path, r.label, r.wnid, r.width, r.height) for r in sorted(rows, key=lambda r: r.path))
    write_text_atomic(path, buffer.getvalue())


def build(
    config: BuildConfig,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[BuildPlan, int], None] | None = None,
) -> BuildResult:
    """Build the tree described by ``config``. ``on_plan(plan, images_to_do)`` is called once planning is done
    (the CLI sizes its progress bar there); ``progress(n)`` is called as images finish."""
    try:
        return _build(config, progress, on_plan)
    except OSError as exc:
        # The parent's own writes (lock, state, folders, label maps, manifests, build.json): one clear line.
        raise _write_error(exc, config.out) from None


def _write_error(exc: OSError, out: Path) -> BuildError | InputError:
    if exc.errno in _DISK_FULL:
        return _disk_full(out, exc.strerror or "no space")
    where = exc.filename or out
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return InputError(
            f"Cannot access {where}: {exc.strerror}. The --out folder must be writable and the --source "
            "archives readable."
        )
    return BuildError(
        f"{where}: {exc.strerror or exc}. Fix that and run the same command again: finished units are kept."
    )


def _build(
    config: BuildConfig,
    progress: Callable[[int], None] | None,
    on_plan: Callable[[BuildPlan, int], None] | None,
) -> BuildResult:
    started = time.perf_counter()
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        executor: _Executor | None = None
        work_dirs: list[str] = []  # the folders this run's workers write into (temp files are cleaned there)
        try:
            executor = _Executor(config.worker_count)
            read_before = archive.FileByteSource.process_bytes_read
            plan = make_plan(config, runner=executor.map)
            index_bytes = archive.FileByteSource.process_bytes_read - read_before + executor.remote_bytes_read
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
            work_dirs = _unit_dirs(todo)
            _remove_temp_files(out, work_dirs)
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
                index_bytes=index_bytes,
            )
        except KeyboardInterrupt:
            _stop(executor, out, work_dirs)
            raise BuildInterrupted(
                f"Interrupted. Finished units are kept in {out}: run the same command again to resume."
            ) from None
        except BaseException:
            _stop(executor, out, work_dirs)
            raise


def _stop(executor: _Executor | None, out: Path, work_dirs: Sequence[str]) -> None:
    """After a failure or an interrupt: stop the workers now, then remove the temp files they left."""
    blocked: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # A second Ctrl-C (or SIGTERM) must not cut this short: it takes well under a second.
        for signum in (signal.SIGINT, signal.SIGTERM):
            blocked[signum] = signal.signal(signum, signal.SIG_IGN)
    try:
        if executor is not None:
            executor.close(cancel=True)
        with contextlib.suppress(OSError):
            _remove_temp_files(out, work_dirs)
    finally:
        for signum, handler in blocked.items():
            if handler is not None:
                signal.signal(signum, handler)


def _finish(
    config: BuildConfig,
    plan: BuildPlan,
    fingerprint: str,
    results: dict[str, UnitResult],
    resumed: int,
    timings: dict[str, float],
    started: float,
    index_bytes: int = 0,
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
    # A refused archive member (a link, an unsafe name, a cut-off image) is an image the tree lacks: it counts
    # as skipped, so the build exits 1 unless --allow-skips (it is also listed under "refused_members").
    refused = tuple(ImageIssue(name, f"refused archive member: {reason}") for name, reason in plan.refused)
    skipped = tuple(issue for result in ordered for issue in result.skipped) + refused
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
        # Archive bytes read: by the index (headers; 0 from a warm index cache) and by the units (images).
        "bytes_read": {"index": index_bytes, "images": sum(result.bytes_read for result in ordered)},
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
