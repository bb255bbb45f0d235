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


def _show_list(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"--images {report['images']}:")
    for split, found in report["splits"].items():
        sizes = sorted(found["per_class"].values())
        spread = f"{sizes[0]}..{sizes[-1]} per class (median {sizes[len(sizes) // 2]})"
        typer.echo(f"  {split}: {found['images']:,} images in {found['classes']:,} classes, {spread}")


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
        _show_list(inspect_list(images), as_json)
        return
    if source is None:
        raise typer.BadParameter("give a SOURCE folder (or --images LIST)", param_hint="SOURCE")
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
