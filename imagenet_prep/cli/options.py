"""Shared Typer option definitions (``Annotated`` aliases). The build options are not spelled here: each is
declared once in build_options.py, and ``declared`` / ``build_parameters`` make their Typer parameters."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from ..build_options import BY_KEY, OPTIONS, listed

# ---------------------------------------------------------------------------------------------- common
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]

# ----------------------------------------------------------------------------------------------- build
ConfigFile = Annotated[Path | None, typer.Option("--config", help="YAML file of options; flags override it.")]


def declared(key: str) -> Any:
    """The Typer parameter of a declared build option (build_options.py): its flag(s), its help (lists such as
    ``{layouts}`` are filled in when help is shown: ListedCommand) and its command-line type, None when not
    given."""
    option = BY_KEY[key]
    return Annotated[option.cli_type | None, typer.Option(*option.flags, help=option.help)]


def build_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per declared build option, in the table's order."""
    return [
        inspect.Parameter(
            option.key, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=declared(option.key)
        )
        for option in OPTIONS
    ]


class ListedCommand(TyperCommand):
    """A command whose options' help names the registered layouts, outputs, executors and enum values: filled
    in from the registries only when help is shown, so running a command never imports them for its help."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.params:
            help_text = getattr(param, "help", None)
            if help_text and "{" in help_text:
                param.help = listed(help_text)  # type: ignore[attr-defined]
        super().format_help(ctx, formatter)


Layout = declared("layout")
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Plan only: print the classes, images per split, bytes to read, the estimated output size and "
        "time (a few images processed in memory) and the free space at --out; write nothing.",
    ),
]
