"""The one-call Python API: ``imagenet_prep.build(source=..., out=..., size=64)``, ``imagenet_prep.check(out)``,
``imagenet_prep.inspect(source)``. Each takes what the command of the same name takes (the build options by
their declared names, build_options.py) and returns the record the command prints (``to_dict()`` is its
``--json`` document). Safe to call at the top level of a plain script: the workers never re-run it
(executors/local.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .build.by_name import build_by_name as build

if TYPE_CHECKING:  # pragma: no cover
    from .outputs.base import CheckReport
    from .sources.inspect import SourceReport

__all__ = ["build", "check", "inspect"]


def check(
    out: str | Path, decode: bool = False, progress: Callable[[int], None] | None = None
) -> CheckReport:
    """Check a built output as ``imagenet-prep check`` does: its files against its manifests (``decode``: every
    image decodes too). The report holds the repair command when something is wrong, and for a recipe build
    notes comparing its counts with the published ones."""
    import json
    from dataclasses import replace

    from .outputs import check_output
    from .outputs.record import short_repair_command
    from .plan.recipes import published_notes

    out = Path(out)
    report = check_output(out, decode=decode, progress=progress)
    try:
        record = json.loads((out / "build.json").read_text(encoding="utf-8"))
        notes = tuple(published_notes(record))
    except (OSError, ValueError):
        notes = ()
    short = short_repair_command(out) if report.repair else None
    return replace(report, out=str(out), notes=notes, repair_short=short)


def inspect(source: str | Path, layout: str | None = None) -> SourceReport:
    """What a build could read from ``source`` (``imagenet-prep inspect``): the layout detected (or
    ``layout``), the splits and counts it offers, what is missing. Nothing is built."""
    from .sources.inspect import inspect_source

    return inspect_source(source, layout)
