"""Check release archives on disk against their known size and MD5, with a cache so a re-check is instant.

The MD5 of a file is cached in ``<dir>/.imagenet-prep-verify.json`` keyed by (name, size, mtime_ns): a file
whose size and modification time are unchanged is not read again. When ``<dir>`` is not writable the cache
goes to ``$IMAGENET_PREP_CACHE/verify/`` (default ``$XDG_CACHE_HOME/imagenet-prep`` or
``~/.cache/imagenet-prep``), one JSON file per folder. The cache stores facts about bytes (their MD5), never
verdicts, so an MD5SUMS file given later is checked against the cached hash too. The key cannot see bytes that
changed in place with the modification time kept (bit rot, a restored mtime): ``rehash=True`` (``verify
--rehash``) ignores the cache, reads every file again and records the fresh hashes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import InputError
from ..io.atomic import write_text_atomic
from ..io.hashing import md5_file
from ..io.paths import cache_dir
from .catalog import Expected, expected_for, known_filenames, parse_md5sums

SIDECAR_NAME = ".imagenet-prep-verify.json"

Progress = Callable[[int], None]
#: Called as ``factory(file_name, total_bytes_or_None, initial_bytes)`` when work on a file starts; returns
#: the callback that then receives byte increments (negative when a download restarts), or None for no
#: progress.
ProgressFactory = Callable[[str, "int | None", int], "Progress | None"]

_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class VerifyResult:
    """The check of one file. ``size_ok``/``md5_ok`` are None when there was nothing to compare against (or,
    for the MD5, when the size already failed). ``bytes_read`` counts bytes hashed (0 when the cache
    answered)."""

    file: str
    path: str
    size_ok: bool | None
    md5_ok: bool | None
    expected_size: int | None
    actual_size: int
    expected_md5: str | None
    actual_md5: str | None
    cached: bool
    bytes_read: int

    @property
    def status(self) -> str:
        """``ok`` (MD5 matches), ``mismatch`` (size or MD5 differs), ``unverified`` (no MD5 known to
        check)."""
        if self.size_ok is False or self.md5_ok is False:
            return "mismatch"
        return "ok" if self.md5_ok else "unverified"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "status": self.status}


@dataclass(frozen=True)
class VerifyReport:
    """What ``imagenet-prep verify`` found in ``folder``: a :class:`VerifyResult` per archive present, and the
    known archives not present."""

    folder: str
    results: tuple[VerifyResult, ...]
    missing: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not any(result.status == "mismatch" for result in self.results)

    def to_dict(self) -> dict[str, object]:
        """The JSON document of ``verify --json`` (keys in docs/python-api.md)."""
        return {
            "folder": self.folder,
            "ok": self.ok,
            "results": [result.to_dict() for result in self.results],
            "missing": list(self.missing),
        }


def _cache_paths(folder: Path) -> tuple[Path, Path]:
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:24]
    return folder / SIDECAR_NAME, cache_dir() / "verify" / f"{key}.json"


def _read_entries(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # absent or damaged: the cost is a re-hash, never a wrong answer
    entries = data.get("entries") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def _write_entries(path: Path, entries: dict[str, dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"version": 1, "entries": entries}, indent=1, sort_keys=True))


def cached_md5(path: str | Path) -> str | None:
    """The cached MD5 of ``path`` if its size and mtime are those recorded, else None."""
    path = Path(path)
    st = path.stat()
    with _CACHE_LOCK:
        for cache in _cache_paths(path.parent):
            entry = _read_entries(cache).get(path.name)
            if (
                isinstance(entry, dict)
                and entry.get("size") == st.st_size
                and entry.get("mtime_ns") == st.st_mtime_ns
                and isinstance(entry.get("md5"), str)
            ):
                return entry["md5"]
    return None


def record_md5(path: str | Path, md5: str) -> None:
    """Remember ``md5`` for ``path`` as it is now (size, mtime). Falls back to the cache dir when the folder
    is read-only; silently gives up when neither is writable (the only cost is a later re-hash)."""
    path = Path(path)
    st = path.stat()
    entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "md5": md5}
    with _CACHE_LOCK:
        for cache in _cache_paths(path.parent):
            # Re-read before writing so that entries another process added meanwhile are kept.
            entries = _read_entries(cache)
            entries[path.name] = entry
            try:
                _write_entries(cache, entries)
                return
            except OSError:
                continue


def check_file(
    path: str | Path,
    expected: Expected,
    *,
    use_cache: bool = True,
    progress: ProgressFactory | None = None,
    rehash: bool = False,
) -> VerifyResult:
    """Compare one file with ``expected``: size first (instant), then MD5 (cached, or hashed with
    progress). ``rehash`` ignores the cached MD5 and records the fresh one; ``use_cache=False`` neither reads
    nor writes the cache."""
    path = Path(path)
    size = path.stat().st_size
    size_ok = None if expected.size is None else size == expected.size
    actual_md5: str | None = None
    cached = False
    nread = 0
    if expected.md5 is not None and size_ok is not False:
        if use_cache and not rehash:
            actual_md5 = cached_md5(path)
            cached = actual_md5 is not None
        if actual_md5 is None:
            callback = progress(expected.filename, size, 0) if progress else None
            actual_md5, nread = md5_file(path, callback), size
            if use_cache or rehash:
                record_md5(path, actual_md5)
    return VerifyResult(
        file=expected.filename,
        path=str(path),
        size_ok=size_ok,
        md5_ok=None if actual_md5 is None else actual_md5 == expected.md5,
        expected_size=expected.size,
        actual_size=size,
        expected_md5=expected.md5,
        actual_md5=actual_md5,
        cached=cached,
        bytes_read=nread,
    )


def load_checksums(checksums: Mapping[str, str] | str | Path | None) -> dict[str, str] | None:
    """Accept an MD5SUMS path or an already parsed mapping."""
    if checksums is None:
        return None
    if isinstance(checksums, Mapping):
        return {name: md5.lower() for name, md5 in checksums.items()}
    return parse_md5sums(checksums)


def verify(
    folder: str | Path,
    *,
    checksums: Mapping[str, str] | str | Path | None = None,
    progress: ProgressFactory | None = None,
    use_cache: bool = True,
    rehash: bool = False,
) -> list[VerifyResult]:
    """Check every known archive present in ``folder`` (catalog names plus names in ``checksums``).

    ``rehash`` re-reads every file whatever the cache says and re-records its MD5 (after suspected bit rot:
    the cache is keyed by size and mtime only).

    Missing archives are not reported (see ``missing``). Raises InputError when ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; pass the folder that holds the ILSVRC2012 archives")
    overrides = load_checksums(checksums)
    results = []
    for name in known_filenames(overrides):
        path = folder / name
        if path.is_file():
            results.append(
                check_file(
                    path,
                    expected_for(name, overrides),
                    use_cache=use_cache,
                    progress=progress,
                    rehash=rehash,
                )
            )
    return results


def missing(folder: str | Path, checksums: Mapping[str, str] | str | Path | None = None) -> list[str]:
    """Known archive names absent from ``folder`` (all of the MD5SUMS names when one is given, else the
    catalog's)."""
    folder = Path(folder)
    overrides = load_checksums(checksums)
    names = list(overrides) if overrides else known_filenames()
    return [name for name in names if not (folder / name).is_file()]
