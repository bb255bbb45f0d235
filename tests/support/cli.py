"""The `imagenet-prep` command line the subprocess tests run (one spelling, not one per test file)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli_argv(*args: str) -> list[str]:
    """``python -m imagenet_prep ARGS...`` with this interpreter (for Popen and the kill trials)."""
    return [sys.executable, "-m", "imagenet_prep", *args]


def build_argv(source: str | Path, out: str | Path, *options: str) -> list[str]:
    """``python -m imagenet_prep build --source SOURCE --out OUT OPTIONS...`` with this interpreter."""
    return cli_argv("build", "--source", str(source), "--out", str(out), *options)


def cli(
    *args: str,
    check: bool = False,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run ``imagenet-prep ARGS...`` in a fresh interpreter and capture its text output; ``env`` is added to
    this process's environment."""
    return subprocess.run(
        cli_argv(*args),
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
        cwd=cwd,
    )


def main_in_process(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    """Run the CLI's ``main`` in this process with ``args``: (exit code, stdout, stderr)."""
    import pytest

    from imagenet_prep.cli import main

    monkeypatch.setattr(sys, "argv", ["imagenet-prep", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def one_line(done: subprocess.CompletedProcess, code: int = 2) -> str:
    """The single stderr line of a run that exited ``code`` without a traceback."""
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def one_line_error(done: subprocess.CompletedProcess, code: int = 2) -> str:
    """The one ``imagenet-prep: error: ...`` line a refused command printed (asserting ``code`` and one line)."""
    line = one_line(done, code)
    assert line.startswith("imagenet-prep: error: "), done.stderr
    return line


def without_package(shadow: Path, package: str) -> dict[str, str]:
    """The environment (for ``cli``'s ``env``) of a process in which ``import package`` fails: a package of that
    name that raises ImportError, written into ``shadow`` and put first on the path, whether or not the real
    one is installed (an optional extra, absent)."""
    (shadow / package).mkdir(parents=True)
    (shadow / package / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    path = os.pathsep.join(p for p in (str(shadow), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}
