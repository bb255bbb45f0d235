"""`imagenet-prep sample`: write the built-in miniature ILSVRC2012 release."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


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
    layout: Annotated[
        str,
        typer.Option(
            "--layout",
            help="Layout to write the same images in: ilsvrc (default), kaggle, kaggle-zip, hf-tar, hf-parquet, "
            "blurred, imagefolder; or a miniature of another release: fall11, winter21, bbox, imagenetv2, "
            "imagenet-a, imagenet-r, sketch.",
        ),
    ] = "ilsvrc",
) -> None:
    """Write a miniature ILSVRC2012 release (the exact real archive format, generated images, MD5SUMS).

    Example: imagenet-prep sample ./mini --classes 20 --quirks
    """
    from ..sample import SampleSpec, choose_wnids, write_sample
    from .progress import Progress

    wnid_list = tuple(w.strip() for w in wnids.split(",") if w.strip()) if wnids is not None else None
    from ..sample_beyond import BEYOND_LAYOUTS

    if layout in BEYOND_LAYOUTS:
        _sample_beyond(dest, layout, wnid_list, seed)
        return
    spec = SampleSpec(
        classes=classes,
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        realistic=realistic,
        quirks=quirks,
        seed=seed,
        wnids=wnid_list,
    )
    total_images = len(choose_wnids(spec)) * (train_per_class + val_per_class)
    if layout != "ilsvrc":
        _sample_layout(dest, spec, layout, total_images, overwrite)
        return
    with Progress(total_images, "sample", "img") as bar:
        release = write_sample(dest, spec, progress=bar.update, overwrite=overwrite)
    n_train = sum(len(names) for names in release.train_files.values())
    total = sum(p.stat().st_size for p in (release.train_tar, release.val_tar, release.devkit))
    extra = f", {len(release.quirk_files)} quirk files" if release.quirk_files else ""
    typer.echo(
        f"Wrote a miniature ILSVRC2012 release to {release.root}: {len(release.wnids)} classes, "
        f"{n_train} train + {len(release.val_files)} val images{extra}, {total / 1e6:.1f} MB "
        f"(checksums in MD5SUMS). Next: imagenet-prep build --source {release.root} --out OUT"
    )


def _sample_layout(dest: Path, spec, layout: str, total_images: int, overwrite: bool) -> None:
    """The same miniature release, written in another layout (imagenet_prep.sample_layouts)."""
    from ..sample_layouts import write_layout
    from .progress import Progress

    with Progress(total_images, "sample", "img") as bar:
        release = write_layout(dest, spec, layout, progress=bar.update, overwrite=overwrite)
    n_train = sum(len(names) for names in release.train_files.values())
    typer.echo(
        f"Wrote a miniature ImageNet release in the {layout} layout to {release.root}: "
        f"{len(release.wnids)} classes, {n_train} train + {len(release.val_files)} val images "
        f"({', '.join(release.written)}). Next: imagenet-prep build --source {release.root} --out OUT"
    )


def _sample_beyond(dest: Path, layout: str, wnids: tuple[str, ...] | None, seed: int) -> None:
    """A miniature of a release beyond ILSVRC2012 (21K, boxes, evaluation sets: imagenet_prep.sample_beyond)."""
    from ..sample_beyond import write_layout

    root = write_layout(dest, layout, wnids=wnids, seed=seed)
    files = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    split = " --holdout 2" if layout in ("fall11", "winter21") else ""  # ImageNet-21K has no val split
    typer.echo(
        f"Wrote a miniature {layout} release to {root} ({', '.join(files)}). "
        f"Next: imagenet-prep build --source {root} --out OUT{split}"
    )
