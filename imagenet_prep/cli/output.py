"""How every command reports: human text, one JSON document (``--json``) or quiet (``--quiet``), in one place.

A command hands its result record to ``Output.result``: under ``--json`` the record's ``to_dict()`` (the
library's records carry it; docs/python-api.md lists their keys) is printed as the one document on stdout;
otherwise the command's human text is. No command builds or prints JSON itself. Progress bars show only in
the human mode; warnings and errors go to stderr in every mode, so stdout under ``--json`` is only the document.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import typer


def json_data(value: Any) -> Any:
    """``value`` as JSON types: a record by its ``to_dict()``, lists and mappings item by item."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(key): json_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_data(item) for item in value]
    return value


class Output:
    """The output mode of one command run: ``as_json`` (``--json``), ``quiet`` (``--quiet``: no progress), or
    human (neither)."""

    def __init__(self, as_json: bool = False, quiet: bool = False) -> None:
        self.as_json = as_json
        self.quiet = quiet

    @property
    def progress(self) -> bool:
        """Whether to show progress bars (human mode only)."""
        return not self.as_json and not self.quiet

    def result(self, record: Any, text: str | Iterable[str] | None = None, indent: int | None = 2) -> None:
        """The command's result: under ``--json`` the document of ``record``; otherwise ``text`` (a line or
        lines) on stdout. ``indent=None`` prints the document on one line (a flat list of wnids)."""
        if self.as_json:
            typer.echo(json.dumps(json_data(record), indent=indent, ensure_ascii=False))
            return
        for line in [text] if isinstance(text, str) else text or ():
            typer.echo(line)

    def echo(self, text: str) -> None:
        """A human line on stdout (none under ``--json``: the document says it)."""
        if not self.as_json:
            typer.echo(text)

    def detail(self, text: str) -> None:
        """A human line on stderr that the JSON document already holds (a skipped file, a problem)."""
        if not self.as_json:
            typer.echo(text, err=True)

    def warn(self, text: str) -> None:
        """A line on stderr in every mode (a warning, a summary of what went wrong, what to run next)."""
        typer.echo(text, err=True)
