"""`imagenet-prep inspect SOURCE`: the detected layout, the splits and counts it can offer, what is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from . import options as opt


def inspect_source(folder: Path, layout: str | None = None) -> dict[str, Any]:
    """What a build could read from ``folder`` (no build; indexes are cached as a build would)."""
    from ..errors import ImagenetPrepError
    from ..sources import open_source

    source = open_source(folder, layout=layout)
    try:
        report: dict[str, Any] = {
            "source": str(Path(folder).resolve()),
            "layout": type(source).layout,
            "splits": {},
            "missing": source.missing(),
            "warnings": [],
            "problems": [],
        }
        for split in source.splits():
            try:
                wnids = source.classes(split)
                index = source.index(split, wnids, None)
            except ImagenetPrepError as exc:
                report["problems"].append(f"{split}: {exc}")
                continue
            report["splits"][split] = {
                "classes": len(wnids),
                "images": sum(len(files) for files in index.files.values()),
                "refused": len(index.refused),
            }
            report["warnings"].extend(index.warnings)
        return report
    finally:
        source.close()


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
    report = inspect_source(source, layout)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"{report['source']}: layout {report['layout']}")
    for split, counts in report["splits"].items():
        refused = f", {counts['refused']} refused" if counts["refused"] else ""
        typer.echo(f"  {split}: {counts['images']:,} images in {counts['classes']:,} classes{refused}")
    if report["missing"]:
        typer.echo(f"  missing: {'; '.join(report['missing'])}")
    for warning in report["warnings"]:
        typer.echo(f"  warning: {warning}")
    for problem in report["problems"]:
        typer.echo(f"  problem: {problem}")
    if report["problems"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_command)
