"""`imagenet-prep build` and `imagenet-prep check`."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated

import typer

RESIZE_MODES = "none, shorter, longer, square, center-crop"
FORMATS = "jpeg, png, webp, original"

BUILD_EXAMPLES = """
Build an ImageFolder tree from the ILSVRC2012 archives in --source.

Examples:

  imagenet-prep build --source /data/ilsvrc --out /data/imagenet-256 --resize shorter --size 256

  imagenet-prep build --source /data/ilsvrc --out ./woof --subset imagewoof --train-per-class 100

  imagenet-prep build --config configs/imagenette-160.yaml --source /data/ilsvrc --out ./imagenette-160

Re-running the same command resumes an interrupted build.
"""


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def build_command(
    source: Annotated[Path | None, typer.Option(help="Folder holding the ILSVRC2012 archives.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder for the tree.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of options; flags override it.")] = None,
    splits: Annotated[str | None, typer.Option(help="Splits to build: train,val.")] = None,
    subset: Annotated[
        str | None, typer.Option(help="Named subset (imagenette, imagewoof, imagenet-100, ...).")
    ] = None,
    classes: Annotated[
        str | None, typer.Option(help="Comma-separated wnids or names, or a file of them.")
    ] = None,
    under: Annotated[
        str | None, typer.Option(help="The 1K classes under a WordNet synset (dog.n.01).")
    ] = None,
    train_per_class: Annotated[
        int | None, typer.Option(help="Seeded sample of N train images per class.")
    ] = None,
    val_per_class: Annotated[
        int | None, typer.Option(help="Seeded sample of N val images per class.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for the per-class samples (default 0).")] = None,
    resize: Annotated[
        str | None, typer.Option(help=f"Resize mode: {RESIZE_MODES} (default shorter).")
    ] = None,
    size: Annotated[int | None, typer.Option(help="Target size in pixels (default 256).")] = None,
    quality: Annotated[int | None, typer.Option(help="JPEG/WebP quality 1-100 (default 90).")] = None,
    format: Annotated[str | None, typer.Option("--format", help=f"Output format: {FORMATS}.")] = None,
    filter: Annotated[
        str | None, typer.Option("--filter", help="Resampling filter (bicubic, bilinear, ...).")
    ] = None,
    resizer: Annotated[
        str | None,
        typer.Option(
            help="Resize engine: pillow (default) or fast (SIMD; pip install 'imagenet-prep[fast]')."
        ),
    ] = None,
    upscale: Annotated[
        bool | None, typer.Option("--upscale/--no-upscale", help="Enlarge small images.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    allow_skips: Annotated[
        bool | None, typer.Option("--allow-skips", help="Exit 0 even when bad images were skipped.")
    ] = None,
    overwrite: Annotated[
        bool | None, typer.Option("--overwrite", help="Replace a tree built with another config.")
    ] = None,
    wordnet: Annotated[Path | None, typer.Option(help="WordNet 3.0 dict folder (for --under).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    from tqdm import tqdm

    from ..build import build
    from ..config import build_config, read_config_file

    file_values = read_config_file(config) if config else {}
    cli_values = {
        "source": source, "out": out, "splits": splits, "subset": subset, "classes": classes, "under": under,
        "train_per_class": train_per_class, "val_per_class": val_per_class, "seed": seed, "resize": resize,
        "size": size, "quality": quality, "format": format, "filter": filter, "resizer": resizer, "upscale": upscale,
        "workers": workers, "allow_skips": allow_skips, "overwrite": overwrite, "wordnet": wordnet,
    }  # fmt: skip
    cfg = build_config(file_values, cli_values)
    signal.signal(signal.SIGTERM, _raise_interrupt)

    bar: list[tqdm] = []

    def on_plan(plan, todo: int) -> None:
        for warning in plan.warnings:
            typer.echo(f"warning: {warning}", err=True)
        if not quiet:
            bar.append(tqdm(total=todo, unit="img", desc="build", dynamic_ncols=True))

    def progress(count: int) -> None:
        if bar:
            bar[0].update(count)

    try:
        result = build(cfg, progress=progress, on_plan=on_plan)
    finally:
        if bar:
            bar[0].close()
    per_split = ", ".join(f"{split} {sum(c.values()):,}" for split, c in result.counts.items())
    rate = result.images_written / result.seconds if result.seconds else 0.0
    built_classes = _plural(len(next(iter(result.counts.values()))), "class", "classes")
    typer.echo(
        f"Built {result.images_written:,} images ({per_split}) in {built_classes} "
        f"into {result.out} in {result.seconds:.1f} s ({rate:.0f} img/s); "
        f"{len(result.repaired)} repaired, {len(result.skipped)} skipped"
        + (f"; resumed {result.units_resumed} of {result.units_total} units" if result.units_resumed else "")
        + "."
    )
    if result.skipped:
        for issue in result.skipped[:5]:
            typer.echo(f"skipped: {issue.file}: {issue.reason}", err=True)
        more = f" (and {len(result.skipped) - 5} more)" if len(result.skipped) > 5 else ""
        typer.echo(
            f"{len(result.skipped)} images were skipped{more}; see {result.out / 'build.json'}.", err=True
        )
        if not cfg.allow_skips:
            raise typer.Exit(1)


def check_command(
    out: Annotated[Path, typer.Argument(help="A tree written by `imagenet-prep build`.")],
    decode: Annotated[bool, typer.Option("--decode", help="Also decode every image fully.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a built tree against its manifests: exit 0 when it matches, 1 otherwise.

    Example: imagenet-prep check ./imagenet-256 --decode
    """
    from ..check import check_tree

    report = check_tree(out, decode=decode)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "checked": report.checked,
                    "problems": report.problem_count,
                    "examples": list(report.problems),
                },
                indent=2,
            )
        )
    else:
        for problem in report.problems:
            typer.echo(f"problem: {problem}", err=True)
        status = "OK" if report.ok else f"{report.problem_count} problems"
        typer.echo(f"Checked {report.checked:,} images in {out}: {status}.")
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("build", help=BUILD_EXAMPLES)(build_command)
    app.command("check")(check_command)
