"""The build record, ``OUT/build.json``: the resolved config, version, sources with checksums, counts,
skipped/repaired files with reasons, warnings, bytes read and timings. Written last, by the parent."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import __version__
from ..io.atomic import write_text_atomic
from ..records import ImageIssue
from ..sources.base import SourceRecord

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


# CLI flag -> (config key, the default it is left out at); order as a user would write them.
_FLAGS = (
    ("--splits", "splits", ["train", "val"]),
    ("--subset", "subset", None),
    ("--classes", "classes", None),
    ("--under", "under", None),
    ("--train-per-class", "train_per_class", None),
    ("--val-per-class", "val_per_class", None),
    ("--seed", "seed", 0),
    ("--resize", "resize", "shorter"),
    ("--size", "size", 256),
    ("--quality", "quality", 90),
    ("--format", "format", "jpeg"),
    ("--filter", "filter", "bicubic"),
    ("--resizer", "resizer", "pillow"),
    ("--output", "output", "imagefolder"),
    ("--shard-size", "shard_size", None),
    ("--shuffle-seed", "shuffle_seed", 0),
    ("--executor", "executor", "local"),
)


def rebuild_command(config: Mapping[str, Any], out: Path | str | None = None) -> str:
    """The `imagenet-prep build` command that (re)builds a tree from its recorded config (build.json's
    ``config``): run again, it rebuilds just the units whose files are missing or changed."""
    import shlex

    words = ["imagenet-prep", "build", "--source", str(config.get("source") or "SOURCE")]
    words += ["--out", str(out if out is not None else config.get("out") or "OUT")]
    for flag, key, default in _FLAGS:
        value = config.get(key)
        if value is None or value == default:
            continue
        words += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    if config.get("upscale"):
        words.append("--upscale")
    if config.get("shuffle") is False:
        words.append("--no-shuffle")
    if config.get("allow_skips"):
        words.append("--allow-skips")
    return " ".join(shlex.quote(word) for word in words)


def repair_command(out: Path) -> str:
    """The command that repairs a built tree: its build command (from build.json, else state.json)."""
    for name, key in (("build.json", "config"), (".imagenet-prep/state.json", "settings")):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            config = json.loads((out / name).read_text(encoding="utf-8")).get(key)
            if isinstance(config, dict):
                return rebuild_command(config, out)
    return f"imagenet-prep build --source SOURCE --out {out} (with the options that built it)"
