"""The build record, ``OUT/build.json``: the resolved config, version, sources with checksums, counts,
skipped/repaired files with reasons, warnings, bytes read and timings. Written last, by the parent."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..io.atomic import write_text_atomic
from ..records import ImageIssue
from ..sources.base import SourceRecord
from ..version import __version__

HASH_LIMIT = 1 << 30  # archives up to 1 GiB are hashed once for build.json; larger ones need `verify`


def known_md5(path: Path) -> str | None:
    """MD5 of a source archive for build.json, from `imagenet-prep verify`'s cache (keyed by size and mtime).

    A small archive not yet in the cache is hashed once and recorded, so the next build costs nothing; a large
    one (the real train tar is 148 GB) is left to `imagenet-prep verify`, and build.json says null until then.
    """
    from ..fetch.verify import cached_md5, record_md5
    from ..io.hashing import md5_file

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


def sources_record(records: Sequence[SourceRecord]) -> list[dict[str, Any]]:
    return [
        {
            "file": record.path.name,
            "bytes": record.path.stat().st_size if record.path.is_file() else None,
            "md5": known_md5(record.path),
        }
        for record in records
    ]


def write_build_record(
    out: Path,
    *,
    fingerprint: str,
    config: Mapping[str, Any],
    layout: str,
    wnids: Sequence[str],
    sources: Sequence[SourceRecord],
    counts: Mapping[str, Mapping[str, int]],
    available: Mapping[str, int],
    skipped: Sequence[ImageIssue],
    repaired: Sequence[ImageIssue],
    refused: Sequence[tuple[str, str]],
    warnings: Sequence[str],
    units: Mapping[str, int],
    bytes_read: Mapping[str, int],
    timings: Mapping[str, float],
    extra: Mapping[str, Any] | None = None,
    enlarged: int = 0,
) -> None:
    record = {
        "tool": "imagenet-prep",
        "version": __version__,
        "fingerprint": fingerprint,
        "config": dict(config),
        "layout": layout,
        "classes": list(wnids),
        "sources": sources_record(sources),
        "counts": {
            split: {"images": sum(per_class.values()), "per_class": dict(per_class)}
            for split, per_class in counts.items()
        },
        "available": dict(available),
        "skipped": [asdict(issue) for issue in skipped],
        "repaired": [asdict(issue) for issue in repaired],
        # Images made larger than their source: square/center-crop are always size x size (and --upscale).
        "enlarged": enlarged,
        "refused_members": [{"member": name, "reason": reason} for name, reason in refused],
        "warnings": list(warnings),
        "units": dict(units),
        # Source bytes read: by the index (headers; 0 from a warm index cache) and by the units (images).
        "bytes_read": dict(bytes_read),
        "timings": {key: round(value, 3) for key, value in timings.items()},
        **(extra or {}),  # sections of optional features (a recipe, boxes), only when used
    }
    write_text_atomic(out / "build.json", json.dumps(record, indent=2) + "\n")


def rebuild_command(config: Mapping[str, Any], out: Path | str | None = None) -> str:
    """The `imagenet-prep build` command that (re)builds a tree from its recorded config (build.json's
    ``config``): every declared option the repair repeats (build_options.py), so run again, it rebuilds just the
    units whose files are missing or changed."""
    import shlex

    from ..config import command_words

    return shlex.join(["imagenet-prep", "build", *command_words(config, out)])


def _recorded(out: Path) -> dict[str, Any] | None:
    """The config a tree recorded: build.json's, else (a build that never finished) its plan state's, else its
    state's settings (older trees: no source recorded)."""
    for name, key in (
        ("build.json", "config"),
        (".imagenet-prep/plan.json", "config"),
        (".imagenet-prep/state.json", "settings"),
    ):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            config = json.loads((out / name).read_text(encoding="utf-8")).get(key)
            if isinstance(config, dict):
                return config
    return None


def repair_command(out: Path) -> str:
    """The command that repairs a built tree: its build command, every recorded option spelled out."""
    config = _recorded(out)
    if config is None:
        return f"imagenet-prep build --source SOURCE --out {out} (with the options that built it)"
    return rebuild_command(config, out)


def short_repair_command(out: Path) -> str | None:
    """``imagenet-prep build --out OUT`` when it repairs exactly as :func:`repair_command` does (it re-runs the
    plan state's config, which leaves out how the build ran: e.g. --allow-skips), else None."""
    import shlex

    config = _recorded(out)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        planned = json.loads((out / ".imagenet-prep" / "plan.json").read_text(encoding="utf-8")).get("config")
        same = isinstance(planned, dict) and config is not None
        if same and rebuild_command(planned, out) == rebuild_command(config or {}, out):
            return shlex.join(["imagenet-prep", "build", "--out", str(out)])
    return None
