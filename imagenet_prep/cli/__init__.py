"""The `imagenet-prep` command: a thin Typer layer over the library.

Each command module registers its commands on ``app`` and imports the library lazily inside the command, so
``imagenet-prep --help`` stays fast and never loads WordNet.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperCommand

from ..errors import ImagenetPrepError
from ..version import __version__
from . import archives_cmd, build_cmd, inspect_cmd, options, sample_cmd, synsets_cmd

app = typer.Typer(
    name="imagenet-prep",
    help=(
        "Get ImageNet (ILSVRC2012) ready to train on.\n\n"
        "Example: imagenet-prep sample ./mini && imagenet-prep build --source ./mini --out ./imagenet-mini"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"imagenet-prep {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Get ImageNet (ILSVRC2012) ready to train on."""


for _module in (archives_cmd, sample_cmd, build_cmd, synsets_cmd, inspect_cmd):
    _module.register(app)
for _info in app.registered_commands:  # every command's help names the registered layouts, outputs, ...
    if _info.cls in (None, TyperCommand):
        _info.cls = options.ListedCommand


def main() -> None:
    """Console entry point: domain errors become one line on stderr and the documented exit code."""
    _main_as_package()
    try:
        app()
    except ImagenetPrepError as exc:
        typer.echo(f"imagenet-prep: error: {exc}", err=True)
        sys.exit(exc.exit_code)


def _main_as_package() -> None:
    """Run from the ``imagenet-prep`` console script, ``__main__`` is that script, and multiprocessing re-runs
    it in every worker process (importing the CLI and Typer there, ~40 ms each). Give it the spec of
    ``imagenet_prep.__main__``, as ``python -m imagenet_prep`` does: workers then skip the main module."""
    import importlib.util

    main_module = sys.modules.get("__main__")
    if main_module is not None and getattr(main_module, "__spec__", None) is None:
        main_module.__spec__ = importlib.util.find_spec("imagenet_prep.__main__")
