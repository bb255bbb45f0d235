"""`imagenet-prep build` and `imagenet-prep check`."""

from __future__ import annotations

import inspect
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import BuildInterrupted
from . import options as opt
from .output import Output
from .progress import Progress

BUILD_EXAMPLES = """
Build an ImageFolder tree (or --output wds/parquet shards) from the copy of ImageNet in --source: any layout
`imagenet-prep inspect` recognises (the ILSVRC2012 tars, Kaggle, the Hub's shards, ImageNet-21K, the evaluation
sets, ...). Without --splits the build takes the splits the source has.

Examples:

  imagenet-prep build --source /data/ilsvrc --out /data/imagenet-256 --resize shorter --size 256

  imagenet-prep build --source /data/ilsvrc --out ./woof --subset imagewoof --train-per-class 100

  imagenet-prep build --config configs/imagenette-160.yaml --source /data/ilsvrc --out ./imagenette-160

Re-running the same command resumes an interrupted build, and rebuilds the units whose files were deleted
or changed since. `imagenet-prep build --out OUT` with no --source re-runs the configuration recorded in OUT
(as `finalize` re-plans it; flags given beside it override it). --dry-run plans and estimates without writing anything.

--resize square and center-crop always give exactly --size x --size (smaller images are enlarged; build.json
counts them); shorter and longer enlarge only with --upscale. WebP trees (--format webp): torchvision's
ImageFolder and datasets' imagefolder list .webp files; Keras and timm do not by default (timm needs
add_img_extensions('.webp')).
"""


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _exit_now_if_workers_are_stuck(exc: BuildInterrupted) -> None:
    """After an interrupt the workers were terminated, then killed. One stuck in the kernel (a hung network
    file system) outlives even SIGKILL until the kernel returns, and Python's exit would wait for it: say what
    happened and leave now instead."""
    import multiprocessing
    import os
    import sys

    if multiprocessing.active_children():
        typer.echo(f"imagenet-prep: error: {exc}", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.exit_code)


def build_command(
    config: opt.ConfigFile = None,
    quiet: opt.Quiet = False,
    dry_run: opt.DryRun = False,
    as_json: opt.Json = False,
    **options: Any,
) -> None:
    # ``options``: one parameter per declared build option (its signature is made from build_options.py, below);
    # build_config refuses a name that is not declared, so a misspelled one is an error, never dropped.
    from ..config import build_config, read_config_file

    file_values = read_config_file(config) if config else _recorded_values(options)
    cfg = build_config(file_values, options)
    from ..build import build

    output = Output(as_json, quiet)
    if dry_run:
        _dry_run(cfg, output)
        return
    signal.signal(signal.SIGTERM, _raise_interrupt)

    bar: list[Progress] = []

    def on_plan(plan, todo: int) -> None:
        for warning in plan.warnings:
            output.warn(f"warning: {warning}")
        bar.append(Progress(todo, "build", "img", enabled=output.progress))

    def progress(count: int) -> None:
        if bar:
            bar[0].update(count)

    try:
        result = build(cfg, progress=progress, on_plan=on_plan)
    except BuildInterrupted as exc:
        _exit_now_if_workers_are_stuck(exc)
        raise
    finally:
        if bar:
            bar[0].close()
    if result.shard is not None:
        index, count = result.shard
        output.result(
            result,
            f"Shard {index} of {count}: {result.images_written:,} images in {result.units_total} units into "
            f"{result.out} in {result.seconds:.1f} s; {len(result.skipped)} skipped. When every shard is done, "
            f"run `imagenet-prep finalize {result.out}`.",
        )
        if result.skipped and not cfg.allow_skips:
            raise typer.Exit(1)
        return
    output.result(result, _build_line(result))
    if result.skipped:
        for issue in result.skipped[:5]:
            output.detail(f"skipped: {issue.file}: {issue.reason}")
        more = f" (and {len(result.skipped) - 5} more)" if len(result.skipped) > 5 else ""
        output.warn(f"{len(result.skipped)} images were skipped{more}; see {result.out / 'build.json'}.")
        if not cfg.allow_skips:
            raise typer.Exit(1)


def _recorded_values(options: dict[str, Any]) -> dict[str, Any]:
    """``build --out OUT`` with no --source (and no --config): the configuration recorded in OUT's plan state, as
    ``finalize`` re-plans it (flags given beside it override it, as they do a --config file); {} when OUT holds
    no build."""
    out = options.get("out")
    if options.get("source") is not None or not out or "://" in str(out):
        return {}
    from ..build.orchestrator import recorded_config
    from ..build.state import plan_state_path

    if not plan_state_path(Path(out)).is_file():
        return {}
    return recorded_config(Path(out))


def _with_declared_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` a parameter per declared build option (after --source and --out: --config), so the CLI
    takes every option under its declared flag and nothing else."""
    declared = opt.build_parameters()
    own = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, annotation, default in (
            ("quiet", opt.Quiet, False),
            ("dry_run", opt.DryRun, False),
            ("as_json", opt.Json, False),
        )
    ]
    config = inspect.Parameter(
        "config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=opt.ConfigFile
    )
    command.__signature__ = inspect.Signature([*declared[:2], config, *declared[2:], *own])  # type: ignore[attr-defined]
    return command


build_command = _with_declared_options(build_command)


def _build_line(result) -> str:
    """The one line a build ends with (stdout)."""
    per_split = ", ".join(f"{split} {sum(c.values()):,}" for split, c in result.counts.items())
    built_classes = _plural(len(next(iter(result.counts.values()))), "class", "classes")
    rebuilt = (
        f"; rebuilt {_plural(result.units_rebuilt, 'unit', 'units')} whose files were missing or changed"
        if result.units_rebuilt
        else ""
    )
    if result.units_resumed == result.units_total and not result.units_rebuilt:
        return (
            f"Nothing to do: {result.units_resumed} of {result.units_total} units already built in {result.out} "
            f"({result.images_written:,} images: {per_split}; {built_classes})."
        )
    # This run's images only: a resumed unit's images were built by an earlier run.
    rate = result.images_built / result.seconds if result.seconds else 0.0
    resumed = (
        f"; resumed {result.units_resumed} of {result.units_total} units" if result.units_resumed else ""
    )
    enlarged = f", {result.enlarged} enlarged" if result.enlarged else ""
    return (
        f"Built {result.images_written:,} images ({per_split}) in {built_classes} "
        f"into {result.out} from the {result.layout} layout in {result.seconds:.1f} s ({rate:.0f} img/s); "
        f"{len(result.repaired)} repaired, {len(result.skipped)} skipped{enlarged}{resumed}{rebuilt}."
    )


def _dry_run(cfg, output: Output) -> None:
    from ..build.dryrun import dry_run

    report = dry_run(cfg)
    for warning in report.warnings:
        output.detail(f"warning: {warning}")
    per_split = ", ".join(f"{split} {count:,}" for split, count in report.images.items())
    free = "unknown" if report.free_bytes is None else _size(report.free_bytes)
    fits = "" if report.fits is not False else " (NOT enough: free space first)"
    output.result(
        report,
        f"Dry run (nothing written): {_plural(report.classes, 'class', 'classes')}, "
        f"{sum(report.images.values()):,} images ({per_split}) in {report.units} units; "
        f"{_size(report.bytes_to_read)} to read.\n"
        f"Estimate from {report.sampled} images processed in memory: ~{_size(report.estimated_output_bytes)} "
        f"written in ~{report.estimated_seconds:.0f} s with {report.workers} workers.\n"
        f"Free space at {report.out}: {free}{fits}.",
    )


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"


def check_command(
    out: Annotated[Path, typer.Argument(help="A tree written by `imagenet-prep build`.")],
    decode: Annotated[bool, typer.Option("--decode", help="Also decode every image fully.")] = False,
    as_json: opt.Json = False,
) -> None:
    """Check a built tree against its manifests: exit 0 when it matches, 1 otherwise.

    Example: imagenet-prep check ./imagenet-256 --decode
    """
    from ..api import check

    output = Output(as_json)
    report = check(out, decode=decode)
    for problem in report.problems:
        output.detail(f"problem: {problem}")
    for note in report.notes:
        output.detail(f"note: {note}")
    status = "OK" if report.ok else f"{report.problem_count} problems"
    output.result(report, f"Checked {report.checked:,} images in {out}: {status}.")
    if report.repair_short:
        output.detail(f"To repair it with the configuration recorded in it: {report.repair_short}")
    if report.repair:
        output.detail(
            f"To repair it, run its build again (units whose files are missing or changed are rebuilt): "
            f"{report.repair}"
        )
    if not report.ok:
        raise typer.Exit(1)


def finalize_command(
    out: Annotated[Path, typer.Argument(help="The --out folder the shards built into.")],
    allow_skips: opt.declared("allow_skips") = None,  # type: ignore[valid-type]
    as_json: opt.Json = False,
) -> None:
    """Finish a sharded build: write label maps, manifests and build.json once every shard is done.

    Exit 1 (listing the missing units and shard indexes) while some are not.

    Example: imagenet-prep finalize /data/imagenet-256
    """
    from ..build.orchestrator import finalize

    output = Output(as_json)
    result = finalize(out)
    if allow_skips:
        result = replace(result, allow_skips=True)
    per_split = ", ".join(f"{split} {sum(c.values()):,}" for split, c in result.counts.items())
    output.result(
        result,
        f"Finalized {result.out}: {result.images_written:,} images ({per_split}) from {result.units_total} units; "
        f"{len(result.repaired)} repaired, {len(result.skipped)} skipped.",
    )
    if result.skipped and not allow_skips:
        output.warn(f"{len(result.skipped)} images were skipped; see {result.out / 'build.json'}.")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("build", help=BUILD_EXAMPLES)(build_command)
    app.command("check")(check_command)
    app.command("finalize")(finalize_command)
