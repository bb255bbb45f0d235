"""The one-call Python API: ``imagenet_prep.build(source=..., out=..., size=64)``, ``imagenet_prep.check(out)``,
``imagenet_prep.inspect(source)``. Each takes what the command of the same name takes (the build options by
their declared names, build_options.py) and returns the record the command prints (``to_dict()`` is its
``--json`` document). Safe to call at the top level of a plain script: the workers never re-run it
(executors/local.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .build.orchestrator import BuildResult
    from .outputs.base import CheckReport
    from .plan import BuildPlan
    from .sources.inspect import SourceReport


def build(
    *,
    config: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[BuildPlan, int], None] | None = None,
    **options: Any,
) -> BuildResult:
    """Build as ``imagenet-prep build`` does, with its options as keywords (``source=``, ``out=``, ``size=``,
    ``output="wds"``, ``train_per_class=5``, ...; docs/options.md lists them). ``config``: a YAML file of
    options, which the keywords override, as flags do. ``progress(n)`` is called as n more images finish;
    ``on_plan(plan, images_to_do)`` once planning is done. A keyword that names no option is a TypeError naming
    the valid ones; a bad value is a UsageError."""
    from .build.orchestrator import build as run
    from .build_options import VALID_KEYS
    from .config import build_config, read_config_file

    unknown = sorted(name for name in options if name.replace("-", "_") not in VALID_KEYS)
    if unknown:
        raise TypeError(
            f"build() got unknown option(s) {', '.join(map(repr, unknown))}; the options are: "
            f"{', '.join(sorted(VALID_KEYS))} (and config, progress, on_plan)."
        )
    file_values = read_config_file(Path(config)) if config is not None else {}
    return run(build_config(file_values, options), progress=progress, on_plan=on_plan)


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
    from .recipes_21k import published_notes

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
