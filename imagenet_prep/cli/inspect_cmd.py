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


def inspect_list(spec: str) -> dict[str, Any]:
    """Images per split and class an --images list names (no source read)."""
    from ..taxonomy.image_lists import list_counts

    counts = list_counts(spec)
    return {
        "images": spec,
        "splits": {
            split: {"images": sum(per_class.values()), "classes": len(per_class), "per_class": per_class}
            for split, per_class in counts.items()
        },
    }


def _list_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"--images {report['images']}:"]
    for split, found in report["splits"].items():
        sizes = sorted(found["per_class"].values())
        spread = f"{sizes[0]}..{sizes[-1]} per class (median {sizes[len(sizes) // 2]})"
        lines.append(f"  {split}: {found['images']:,} images in {found['classes']:,} classes, {spread}")
    return lines


def inspect_command(
    source: Annotated[
        Path | None,
        typer.Argument(metavar="[SOURCE]", help="A folder holding ImageNet in any layout."),
    ] = None,
    layout: opt.Layout = None,
    images: Annotated[
        str | None,
        typer.Option(
            "--images",
            help="Show the images per split and class of an image list (a bundled name, a file, or "
            "train=FILE,val=FILE2) instead; --json lists every class.",
        ),
    ] = None,
    as_json: opt.Json = False,
) -> None:
    """Show the layout detected in SOURCE, the splits and counts it can offer, and what is missing (no build).

    Example: imagenet-prep inspect /data/imagenet-kaggle ; imagenet-prep inspect --images imagenet-lt
    """
    if images is not None:
        listed = inspect_list(images)
        Output(as_json).result(listed, _list_lines(listed))
        return
    if source is None:
        raise typer.BadParameter("give a SOURCE folder (or --images LIST)", param_hint="SOURCE")
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
