"""Outputs: the formats a build writes. A new format is one module plus an entry in WRITERS."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError
from .base import CheckReport, UnitWriter, Writer
from .imagefolder import ImageFolderWriter
from .mds import MdsWriter
from .npz import NpzWriter
from .parquet import ParquetWriter
from .tfds import TfdsWriter
from .tfrecord import TfrecordWriter
from .wds import WdsWriter
from .zip import ZipWriter

#: output name -> Writer class (a frozen dataclass; its fields are the format's options).
WRITERS: dict[str, type[Writer]] = {
    ImageFolderWriter.name: ImageFolderWriter,
    WdsWriter.name: WdsWriter,
    ParquetWriter.name: ParquetWriter,
    ZipWriter.name: ZipWriter,
    NpzWriter.name: NpzWriter,
    TfrecordWriter.name: TfrecordWriter,
    TfdsWriter.name: TfdsWriter,
    MdsWriter.name: MdsWriter,
}

__all__ = [
    "WRITERS",
    "CheckReport",
    "UnitWriter",
    "Writer",
    "check_output",
    "make_writer",
    "shard_outputs",
    "writer_for",
]


def shard_outputs() -> list[str]:
    """The registered shard outputs (``Writer.shards``): they can be built into an object store."""
    return [name for name, cls in WRITERS.items() if cls.shards]


def make_writer(name: str = "imagefolder", **options: object) -> Writer:
    try:
        cls = WRITERS[name]
    except KeyError:
        raise UsageError(f"Unknown output {name!r}: choose one of {', '.join(WRITERS)}.") from None
    return cls(**options)


def writer_for(config: Any) -> Writer:
    """The writer a build config names, with its options (a writer's dataclass fields are config keys). An
    option only other writers take, set to a non-default value, is a usage error rather than silently ignored."""
    cls = WRITERS.get(config.output)
    if cls is None:
        return make_writer(config.output)  # raises the "unknown output" message
    own = {f.name for f in dataclasses.fields(cls)}
    defaults = {f.name: f.default for f in dataclasses.fields(type(config))}
    takers: dict[str, list[str]] = {}
    for other in WRITERS.values():
        for option in dataclasses.fields(other):
            takers.setdefault(option.name, []).append(other.name)
    for name, writers in takers.items():
        if name not in own and name in defaults and getattr(config, name) != defaults[name]:
            raise UsageError(
                f"--{name.replace('_', '-')} applies to --output {' or '.join(writers)}, "
                f"not to --output {config.output}."
            )
    options = {name: getattr(config, name) for name in own if hasattr(config, name)}
    writer = make_writer(config.output, **options)
    writer.accepts(config.image)
    return writer


def check_output(
    out: Path, decode: bool = False, progress: Callable[[int], None] | None = None
) -> CheckReport:
    """Check a built output with its own writer (named in build.json; ImageFolder when there is none)."""
    out = Path(out)
    scheme = str(out).split(":/", 1)[0]
    if scheme in ("s3", "gs") and str(out).startswith(f"{scheme}:/") and not out.exists():
        url = f"{scheme}://{str(out)[len(scheme) + 2 :]}"  # (a Path folded the URL's //)
        raise InputError(
            f"check reads a local folder, not {url}: download it (aws s3 sync {url} DIR), then check DIR."
        )
    if not out.exists():
        raise InputError(f"{out} is missing: it does not exist. Give the --out folder of a build.")
    if not out.is_dir():
        raise InputError(f"{out} is a file, not a folder: give the --out folder of a build.")
    name = "imagefolder"
    try:
        record = json.loads((out / "build.json").read_text(encoding="utf-8"))
        name = str(record.get("config", {}).get("output") or name)
    except (OSError, ValueError, AttributeError):
        pass
    report = make_writer(name).check(out, decode, progress)
    if not report.ok and report.repair is None:
        from dataclasses import replace

        from .record import repair_command

        report = replace(report, repair=repair_command(out))
    return report
