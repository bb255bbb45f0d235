"""Outputs: the formats a build writes. A new format is one module plus an entry in WRITERS."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError, UsageError
from .base import CheckReport, UnitWriter, Writer
from .imagefolder import ImageFolderWriter

#: output name -> Writer class (a frozen dataclass; its fields are the format's options).
WRITERS: dict[str, type] = {
    ImageFolderWriter.name: ImageFolderWriter,
}

__all__ = ["WRITERS", "CheckReport", "UnitWriter", "Writer", "check_output", "make_writer"]


def make_writer(name: str = "imagefolder", **options: object) -> Writer:
    try:
        cls = WRITERS[name]
    except KeyError:
        raise UsageError(f"Unknown output {name!r}: choose one of {', '.join(WRITERS)}.") from None
    return cls(**options)


def check_output(
    out: Path, decode: bool = False, progress: Callable[[int], None] | None = None
) -> CheckReport:
    """Check a built output with its own writer (named in build.json; ImageFolder when there is none)."""
    out = Path(out)
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
