"""`imagenet-prep sample`: write a miniature release of any layout (imagenet_prep.sample's registry)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from ..sample.registry import ALIASES, CHOICES, MiniatureOptions, miniature
from .options import Json
from .output import Output

# From the registry: every layout with its one-line description, then the earlier names still accepted.
_LAYOUT_HELP = (
    "Layout to write the miniature in: "
    + "; ".join(f"{name} ({entry.description})" for name, entry in CHOICES.items())
    + ". Also accepted: "
    + ", ".join(f"{old} ({new.format(variant='matched-frequency')})" for old, new in ALIASES.items())
    + ". The ImageNet-1K layouts and bbox draw the ILSVRC2012 miniature (--classes, --train-per-class ...); "
    "the ImageNet-21K and evaluation-set ones take --wnids and --seed."
)


def register(app: typer.Typer) -> None:
    """Register this module's commands on the root app."""
    app.command(name="sample")(sample)


def sample(
    dest: Annotated[
        Path, typer.Argument(metavar="DIR", help="Folder to write the release into (created if needed).")
    ],
    classes: Annotated[
        int,
        typer.Option("--classes", min=1, max=1000, help="Number of classes (10+ start with Imagenette's)."),
    ] = 10,
    train_per_class: Annotated[
        int, typer.Option("--train-per-class", min=1, help="Train images per class.")
    ] = 10,
    val_per_class: Annotated[
        int, typer.Option("--val-per-class", min=0, max=50, help="Validation images per class (real names).")
    ] = 5,
    realistic: Annotated[
        bool,
        typer.Option(
            "--realistic", help="ImageNet-like images: ~500 px, JPEG quality 96, no chroma subsampling."
        ),
    ] = False,
    quirks: Annotated[
        bool,
        typer.Option(
            "--quirks", help="Add the real odd files: a CMYK JPEG, a PNG named .JPEG, grayscale, progressive."
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same bytes.")] = 0,
    wnids: Annotated[
        str | None, typer.Option("--wnids", help="Comma-separated wnids to use instead of --classes.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace release files already in DEST.")
    ] = False,
    layout: Annotated[str, typer.Option("--layout", help=_LAYOUT_HELP)] = "ilsvrc",
    as_json: Json = False,
) -> None:
    """Write a miniature release of any layout a build reads (the exact real format, generated images).

    Example: imagenet-prep sample ./mini --classes 20 --quirks
    """
    from .progress import Progress

    name, entry = miniature(layout)
    options = MiniatureOptions(
        classes=classes,
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        realistic=realistic,
        quirks=quirks,
        seed=seed,
        wnids=tuple(w.strip() for w in wnids.split(",") if w.strip()) if wnids is not None else None,
        overwrite=overwrite,
    )
    output = Output(as_json)
    with Progress(entry.images(options), "sample", "img", enabled=output.progress) as bar:
        written = entry.write(dest, options, bar.update)
    written = replace(written, next=entry.next_command(written.root))
    output.result(written, f"Wrote {written.summary}. Next: {written.next}")
