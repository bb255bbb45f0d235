"""A build's state in ``OUT/.imagenet-prep/``: the lock, the config fingerprint, and the done markers.

- one build at a time per OUT: an flock'ed lock file holding the pid and host;
- ``state.json`` records the fingerprint of what decides the output bytes; a different config into an OUT
  built before is refused unless ``overwrite``;
- a unit's done marker (``done/<unit>.json``, holding its result) is written after its output is committed:
  a unit with a marker whose fingerprint matches is finished, and a re-run skips it; anything else is redone;
- temporary files a killed run left (``io.atomic.TMP_MARK``) are removed before units are redone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import IO, Any

from ..errors import BuildError, InputError, OutputLockedError, UsageError
from ..io.atomic import DISK_FULL_ERRNOS, TMP_MARK, write_text_atomic
from ..outputs.base import STATE_DIR
from ..records import ImageIssue, ManifestRow, UnitResult, WorkUnit
from ..version import __version__

# A marker's rows and issues hold their records' fields in declaration order (an empty tuple left out of a
# row): what dataclasses.asdict gave, read field by field (asdict deep-copies every value, at ~20 us a row).
_ROW_FIELDS = tuple(f.name for f in fields(ManifestRow))
_ISSUE_FIELDS = tuple(f.name for f in fields(ImageIssue))


def disk_full(where: Path | str, detail: str) -> BuildError:
    """The one message for a full disk or quota, in workers and in the parent alike."""
    return BuildError(
        f"The disk holding {where} is full ({detail}). Free space and run the same command again: "
        "finished units are kept."
    )


def write_error(exc: OSError, out: Path) -> BuildError | InputError:
    """The one line for an OSError while writing OUT (the parent's writes, or a unit's)."""
    if exc.errno in DISK_FULL_ERRNOS:  # the disk of the file being written: OUT's, or a cache's
        return disk_full(exc.filename or out, exc.strerror or "no space")
    where = exc.filename or out
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return InputError(
            f"Cannot access {where}: {exc.strerror}. The --out folder must be writable and the --source "
            "archives readable."
        )
    return BuildError(
        f"{where}: {exc.strerror or exc}. Fix that and run the same command again: finished units are kept."
    )


# ------------------------------------------------------------------------------------------------ markers
def marker_path(out: Path | str, unit_id: str) -> Path:
    # One Path from one string: three joins cost ~0.1 ms, paid per unit (twice in a worker).
    return Path(f"{os.fspath(out)}/{STATE_DIR}/done/{unit_id}.json")


def write_marker(out: Path | str, unit: WorkUnit, result: UnitResult) -> Path:
    """Write ``unit``'s done marker (atomically); returns its path."""
    payload = {
        "unit": unit.unit_id,
        "fingerprint": unit.fingerprint,
        "rows": [_row_fields(row) for row in result.rows],
        "skipped": [{name: getattr(issue, name) for name in _ISSUE_FIELDS} for issue in result.skipped],
        "repaired": [{name: getattr(issue, name) for name in _ISSUE_FIELDS} for issue in result.repaired],
        "bytes_read": result.bytes_read,
        "seconds": result.seconds,
        **({"counters": [list(c) for c in result.counters]} if result.counters else {}),
        "enlarged": result.enlarged,
        # The files the unit committed and their sizes: a re-run stats them and redoes the unit on a mismatch.
        "files": dict(result.files),
    }
    path = marker_path(out, unit.unit_id)
    try:
        write_text_atomic(path, json.dumps(payload, separators=(",", ":")))
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise disk_full(out, f"unit {unit.unit_id}") from None
        raise BuildError(f"Unit {unit.unit_id}: cannot write its done marker: {exc.strerror}.") from None
    return path


def _row_fields(row: ManifestRow) -> dict[str, Any]:
    values = {}
    for name in _ROW_FIELDS:
        value = getattr(row, name)
        if value != ():
            values[name] = value
    return values


def marker_names(out: Path) -> set[str]:
    """The file names in the done-marker folder (empty when there is none): which markers exist, in one listing."""
    try:
        return set(os.listdir(Path(out) / STATE_DIR / "done"))
    except OSError:
        return set()


def read_marker(out: Path, unit: WorkUnit) -> UnitResult | None:
    """The finished unit's result, or None when the unit must be (re)done."""
    try:
        payload = json.loads(marker_path(out, unit.unit_id).read_text())
    except (OSError, ValueError):
        return None
    if payload.get("fingerprint") != unit.fingerprint:
        return None
    return UnitResult(
        unit.split,
        unit.unit_id,
        tuple(_row(row) for row in payload["rows"]),
        tuple(ImageIssue(**issue) for issue in payload["skipped"]),
        tuple(ImageIssue(**issue) for issue in payload["repaired"]),
        int(payload.get("bytes_read", 0)),
        float(payload.get("seconds", 0.0)),
        tuple((str(name), int(count)) for name, count in payload.get("counters", ())),
        int(payload.get("enlarged", 0)),
        tuple((str(rel), int(size)) for rel, size in payload.get("files", {}).items()),
    )


def _row(fields: dict) -> ManifestRow:
    """A manifest row from its JSON (lists back to the record's tuples)."""
    extra = tuple((str(k), str(v)) for k, v in fields.pop("extra", ()))
    boxes = tuple((str(b[0]), *map(float, b[1:])) for b in fields.pop("boxes", ()))
    return ManifestRow(**fields, extra=extra, boxes=boxes)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ managed links
def refuse_links(out: Path, paths: Sequence[Path]) -> None:
    """A folder OUT manages (the state folder, a split, a class or shard folder) that is a link is refused:
    nothing is written or deleted through it (a re-run would write a class into the link's target, and the
    temp cleaner would delete files there)."""
    for path in paths:
        if path.is_symlink():
            raise UsageError(
                f"{path} is a link, and imagenet-prep writes in {out} only through folders it made: remove the "
                "link (its target is untouched) and run the same command again."
            )


def managed_folders(out: Path, work_dirs: Sequence[str]) -> list[Path]:
    """Every folder a build writes into under OUT: each work dir (``train/n01440764``) and each of its parents
    below OUT (``train``)."""
    folders: dict[Path, None] = {}
    for rel in work_dirs:
        parts = Path(rel).parts
        for end in range(1, len(parts) + 1):
            if parts[:end] != (".",):
                folders[out.joinpath(*parts[:end])] = None
    return list(folders)


# --------------------------------------------------------------------------------------------------- lock
@contextlib.contextmanager
def output_lock(out: Path, shard: int | None = None) -> Iterator[None]:
    """One build per OUT: an flock (released by the kernel even on kill -9) on a file holding the pid and host
    (several cluster nodes may share OUT on a network file system), and first on the state folder itself: a
    lock file unlinked or replaced while a build holds it would let a second build lock a new inode beside the
    first; the folder cannot be swapped while it holds the build's markers.

    With ``shard`` (static sharding: ``--num-shards N --shard-index I``), the lock is per shard: N processes
    write one OUT at once, each holding ``lock`` shared and ``lock.shard-I`` exclusively; a whole build (and
    ``finalize``) holds ``lock`` exclusively, so it never runs beside a shard."""
    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    refuse_links(out, (state,))
    mode = fcntl.LOCK_EX if shard is None else fcntl.LOCK_SH
    with _folder_lock(out, state, mode), _flock(out, state / "lock", mode, "build"):
        if shard is None:
            yield
            return
        with _flock(out, state / f"lock.shard-{shard}", fcntl.LOCK_EX, f"build of shard {shard}"):
            yield


_HELD_LOCKS: set[IO[str]] = set()  # the lock files this process holds open
_HELD_FOLDERS: set[int] = set()  # the descriptors of the state folders this process holds locked


def _close_inherited_locks() -> None:
    """In a forked worker: close its copies of the parent's lock files. The parent keeps its locks (an flock
    belongs to the open file until its last descriptor closes), and they go with it: a worker outliving a
    killed parent by a moment must not keep the next run out."""
    for handle in _HELD_LOCKS:
        with contextlib.suppress(OSError, ValueError):
            handle.close()  # nothing buffered (the pid was flushed): this closes the descriptor, no more
    _HELD_LOCKS.clear()
    for fd in _HELD_FOLDERS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_FOLDERS.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


@contextlib.contextmanager
def _folder_lock(out: Path, state: Path, mode: int) -> Iterator[None]:
    """An flock on the state folder. A file system that cannot lock a folder (an NFS client turns flock into a
    POSIX lock, which needs a file open for writing) keeps the lock file alone, re-checked by inode."""
    fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    _HELD_FOLDERS.add(fd)
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = "pid unknown"
            with contextlib.suppress(OSError), open(state / "lock") as handle:
                holder = _lock_holder(handle)
            raise OutputLockedError(
                f"Another imagenet-prep build ({holder}) is writing to {out}. Wait for it to finish, or stop it "
                "and run this command again."
            ) from None
        except OSError:
            pass  # no folder locks here: the lock file (with its inode re-check) is the lock
        yield
    finally:
        _HELD_FOLDERS.discard(fd)
        os.close(fd)


@contextlib.contextmanager
def _flock(out: Path, path: Path, mode: int, what: str) -> Iterator[None]:
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole build
    _HELD_LOCKS.add(handle)
    try:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputLockedError(
                f"Another imagenet-prep {what} ({_lock_holder(handle)}) is writing to {out}. Wait for it to "
                "finish, or stop it and run this command again."
            ) from None
        except OSError as exc:
            # e.g. Lustre mounted without -o flock: refusing is safer than two builds racing in one OUT.
            raise InputError(
                f"Cannot lock {path}: {exc.strerror}. The file system holding {out} does not support "
                "file locks; build into a folder on one that does (a local disk, NFSv4, Lustre with -o flock)."
            ) from None
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(handle.fileno()).st_ino
        except OSError:
            same = False
        if not same:  # unlinked or replaced between our open and our lock: whoever holds the new one runs
            raise OutputLockedError(
                f"The lock file {path} was replaced while this {what} took it: another imagenet-prep build "
                f"may be writing to {out}. Make sure none is, then run this command again."
            )
        if mode == fcntl.LOCK_EX:  # a shared holder must not erase another holder's pid
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()} {socket.gethostname()}\n")
            handle.flush()
        yield
    finally:
        _HELD_LOCKS.discard(handle)
        handle.close()


@contextlib.contextmanager
def setup_lock(out: Path) -> Iterator[None]:
    """Serialises preparing OUT (reading and writing state.json, making folders) between shard processes that
    start at once; blocking, held for a moment only."""
    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "setup.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _lock_holder(handle: IO[str]) -> str:
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


# ------------------------------------------------------------------------------------------ preparing OUT
CREATED_FILE = "created.json"  # in the state folder: the entries of OUT that builds of ours created


def _read_created(out: Path) -> set[str]:
    """The top-level entries a build of ours recorded creating in OUT (plain names only: a record naming
    '..', '/x' or 'a/b' is ignored, so an altered record cannot widen what --overwrite removes)."""
    try:
        entries = json.loads((out / STATE_DIR / CREATED_FILE).read_text()).get("entries", [])
    except (OSError, ValueError, AttributeError):
        return set()
    if not isinstance(entries, list):
        return set()
    return {
        e
        for e in entries
        if isinstance(e, str) and e not in ("", ".", "..") and "/" not in e and "\\" not in e
    }


def record_created(out: Path, names: set[str]) -> None:
    """Record (atomically) which top-level entries of OUT builds of ours created."""
    write_text_atomic(out / STATE_DIR / CREATED_FILE, json.dumps({"entries": sorted(names)}) + "\n")


def prune_created(out: Path) -> None:
    """After a build: keep in the record only what exists (a split not built was never created)."""
    created = _read_created(out)
    existing = {name for name in created if os.path.lexists(out / name)}
    if existing != created:
        record_created(out, existing)


def _holds(entry: Path, protected: Sequence[Path]) -> Path | None:
    """The protected path that ``entry`` is, holds, or leads to through a link (None: none)."""
    resolved = entry.resolve()
    for path in protected:
        target = path.resolve()
        if resolved == target or resolved in target.parents:
            return path
    return None


def _differences(before: Any, after: Mapping[str, Any] | None) -> str:
    """' (size: 256 -> 128; resize: shorter -> square)': the recorded settings that differ, or ''."""
    if not isinstance(before, dict) or not after:
        return ""
    changed = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, list) and isinstance(new, list) and (len(old) > 6 or len(new) > 6):
            added, removed = len(set(new) - set(old)), len(set(old) - set(new))
            changed.append(f"{key}: {len(old)} -> {len(new)} ({added} added, {removed} removed)")
        else:
            changed.append(f"{key}: {_show(old)} -> {_show(new)}")
    if not changed:  # same settings, other bytes: the source's files differ
        return " (the same settings, but the source's files differ)"
    return f" ({'; '.join(changed)})"


def _show(value: Any) -> str:
    if value is None:
        return "not set"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def prepare_out(
    out: Path,
    fingerprint: str,
    overwrite: bool,
    managed: Sequence[Path],
    protect: Sequence[Path] = (),
    settings: Mapping[str, Any] | None = None,
) -> None:
    """Refuse a different config into an OUT built before (unless ``overwrite``); record this config's
    fingerprint, its decisive ``settings`` (so a later refusal can name the settings that differ) and what this
    build will create.

    ``overwrite`` removes only the ``managed`` entries (what the writer creates) that a previous build of ours
    RECORDED creating (``created.json``), never one that is, holds or links to a ``protect``-ed path (the
    source). A managed entry present but not recorded is the user's: the build is refused, nothing removed.
    """
    state_file = out / STATE_DIR / "state.json"
    previous: Any = None
    previous_settings: Any = None
    if state_file.exists():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            recorded = json.loads(state_file.read_text())
            previous, previous_settings = recorded.get("fingerprint"), recorded.get("settings")
    foreign = [p.name for p in out.iterdir() if p.name != STATE_DIR] if previous is None else []
    created = _read_created(out) if previous is not None else set()
    if previous is not None and previous != fingerprint or previous is None and foreign:
        if not overwrite:
            what = (
                "was built with a different configuration" + _differences(previous_settings, settings)
                if previous is not None
                else f"is not empty ({', '.join(sorted(foreign)[:5])})"
            )
            raise UsageError(
                f"The output folder {out} {what}. Use another --out, or pass --overwrite to replace "
                "what imagenet-prep wrote there."
            )
        present = [entry for entry in managed if os.path.lexists(entry)]
        not_ours = sorted(entry.name for entry in present if entry.name not in created)
        if not_ours:
            raise UsageError(
                f"--overwrite removes only what imagenet-prep recorded writing, and {out} holds "
                f"{', '.join(not_ours)} that no build of ours recorded: move them away or choose another --out."
            )
        for entry in present:
            holder = _holds(entry, protect)
            if holder is not None:
                raise UsageError(
                    f"--overwrite would remove {entry}, which is or holds the --source {holder}: choose an "
                    "--out outside the source folder."
                )
        for entry in present:
            if entry.is_symlink() or not entry.is_dir():
                entry.unlink(missing_ok=True)
            else:
                shutil.rmtree(entry)
        created = set()
        shutil.rmtree(out / STATE_DIR / "done", ignore_errors=True)
    (out / STATE_DIR / "done").mkdir(parents=True, exist_ok=True)
    # Before anything is created: what this build will create (a killed build's entries are recorded too).
    record_created(out, created | {entry.name for entry in managed if not os.path.lexists(entry)})
    state: dict[str, Any] = {"fingerprint": fingerprint, "version": __version__}
    if settings:
        state["settings"] = dict(settings)
    write_text_atomic(state_file, json.dumps(state) + "\n")


def remove_temp_files(out: Path, dirs: Sequence[str]) -> int:
    """Delete temporary files a killed run left behind in the given folders, and always in OUT itself (label
    maps, manifests, build.json) and the state folders (state.json, done markers). A folder that is (or lies
    under) a link is skipped: the cleaner never follows a link."""
    removed = 0
    links: dict[str, bool] = {}  # folder below OUT -> whether it is a link: each asked once (1,000 class
    # folders share one split folder; a Path and two lstats per folder and level cost ~0.2 ms a unit)
    root = os.fspath(out)
    for rel in (".", STATE_DIR, f"{STATE_DIR}/done", *dirs):
        parts = [part for part in rel.split("/") if part not in ("", ".")]
        if _under_link(root, parts, links):
            continue  # never through a link: its target is not ours
        try:
            entries = os.scandir(os.path.join(root, *parts))
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                if entry.name.startswith(TMP_MARK) and not entry.is_dir(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                    removed += 1
    return removed


def _under_link(root: str, parts: list[str], links: dict[str, bool]) -> bool:
    """Whether ``root/parts[0]/.../parts[-1]`` is, or lies under, a link below ``root`` (memoised in ``links``)."""
    path = root
    for part in parts:
        path = f"{path}/{part}"
        link = links.get(path)
        if link is None:
            link = links[path] = os.path.islink(path)
        if link:
            return True
    return False


# ---------------------------------------------------------------------------------- static shards, plan state
def assign_shards(units: Sequence[WorkUnit], num_shards: int) -> list[list[WorkUnit]]:
    """Units split into ``num_shards`` lists balanced by image count, the same from every process: greedy, the
    biggest unit first (ties by unit id) to the least loaded shard (ties by the lowest index)."""
    shards: list[list[WorkUnit]] = [[] for _ in range(num_shards)]
    loads = [0] * num_shards
    for unit in sorted(units, key=lambda u: (-len(u.samples), u.unit_id)):
        target = min(range(num_shards), key=lambda i: (loads[i], i))
        shards[target].append(unit)
        loads[target] += len(unit.samples)
    return shards


def plan_state_path(out: Path) -> Path:
    return out / STATE_DIR / "plan.json"


def write_plan_state(
    out: Path, fingerprint: str, config: dict[str, Any], units: Sequence[WorkUnit], num_shards: int | None
) -> None:
    """What ``finalize`` needs, written at plan time: the config that re-plans the build, its fingerprint, and
    every unit (id, fingerprint, images, shard). Every shard process writes the same bytes (atomically)."""
    shard_of: dict[str, int] = {}
    if num_shards:
        for index, shard in enumerate(assign_shards(units, num_shards)):
            shard_of.update({unit.unit_id: index for unit in shard})
    payload = {
        "fingerprint": fingerprint,
        "config": config,
        "num_shards": num_shards,
        "units": [
            {
                "id": u.unit_id,
                "fingerprint": u.fingerprint,
                "images": len(u.samples),
                "shard": shard_of.get(u.unit_id),
            }
            for u in units
        ],
    }
    write_text_atomic(plan_state_path(out), json.dumps(payload, indent=1, sort_keys=True) + "\n")


def read_plan_state(out: Path) -> dict[str, Any]:
    try:
        payload = json.loads(plan_state_path(out).read_text())
    except FileNotFoundError:
        raise InputError(
            f"{out} holds no planned build ({plan_state_path(out)} is missing): run `imagenet-prep build` "
            "(or its shards) into it first."
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"Cannot read {plan_state_path(out)}: {exc}; run the build again.") from None
    problem = _plan_state_problem(payload)
    if problem:
        raise InputError(
            f"{plan_state_path(out)} is malformed ({problem}): run the build (or its shards) into {out} again."
        )
    return payload


def _plan_state_problem(payload: Any) -> str | None:
    """What is wrong with a plan state's shape (None: nothing), so finalize never trips over it later."""
    if not isinstance(payload, dict):
        return "not a JSON object"
    if not isinstance(payload.get("fingerprint"), str):
        return "no fingerprint"
    if not isinstance(payload.get("config"), dict):
        return "no config"
    units = payload.get("units")
    if not isinstance(units, list):
        return "no list of units"
    for unit in units:
        if not (
            isinstance(unit, dict)
            and isinstance(unit.get("id"), str)
            and isinstance(unit.get("fingerprint"), str)
        ):
            return f"a unit without a text id and fingerprint: {str(unit)[:60]}"
        if "/" in unit["id"] or unit["id"] in ("", ".", ".."):
            return f"unit id {unit['id'][:60]!r} is not a plain name"
    if payload.get("num_shards") is not None and not isinstance(payload["num_shards"], int):
        return "num_shards is not a whole number"
    return None


def missing_units(out: Path, plan_state: dict[str, Any]) -> list[dict[str, Any]]:
    """The planned units without a done marker of their fingerprint (cheap: markers only, no source)."""
    missing = []
    for unit in plan_state["units"]:
        try:
            marker = json.loads(marker_path(out, unit["id"]).read_text())
        except (OSError, ValueError):
            missing.append(unit)
            continue
        if marker.get("fingerprint") != unit["fingerprint"]:
            missing.append(unit)
    return missing
