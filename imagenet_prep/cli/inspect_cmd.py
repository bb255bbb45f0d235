"""`imagenet-prep inspect SOURCE`: the detected layout, the splits and counts it can offer, what is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import options as opt
from .output import Output


def inspect_source(folder: Path, layout: str | None = None) -> dict[str, Any]:
    """The JSON document of ``inspect`` (the library's :func:`imagenet_prep.sources.inspect.inspect_source`)."""
    from ..sources.inspect import inspect_source as inspect_report

    return inspect_report(folder, layout).to_dict()


def inspect_command(
    source: Annotated[
        Path, typer.Argument(metavar="SOURCE", help="A folder holding ImageNet in any layout.")
    ],
    layout: opt.Layout = None,
    as_json: opt.Json = False,
) -> None:
    """Show the layout detected in SOURCE, the splits and counts it can offer, and what is missing (no build).

    Example: imagenet-prep inspect /data/imagenet-kaggle
    """
    from ..api import inspect

    report = inspect(source, layout)
    lines = [f"{report.source}: layout {report.layout}"]
    for split, counts in report.splits.items():
        refused = f", {counts.refused} refused" if counts.refused else ""
        lines.append(f"  {split}: {counts.images:,} images in {counts.classes:,} classes{refused}")
    if report.missing:
        lines.append(f"  missing: {'; '.join(report.missing)}")
    lines += [f"  warning: {warning}" for warning in report.warnings]
    lines += [f"  problem: {problem}" for problem in report.problems]
    Output(as_json).result(report, lines)
    if report.problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_command)
