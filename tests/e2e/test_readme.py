"""Every code block in README.md runs as pasted.

The README's fenced ``bash`` and ``python`` blocks are extracted and run in order in one temporary folder, as a
reader following the README from top to bottom would: a bash block with ``bash -e`` (so any failing command fails
the block), a python block saved as a file and run as a plain script (``python script.py``). Each must exit 0.
Other fences (``text``) are pictures of output, not commands, and are not run.

Two set-up commands are treated specially, and only they:
- ``pip install ...`` (in a ``&&`` chain): not run. The package is already installed where the tests run, and
  re-installing it would change the environment of the running test session (and need the network for its
  dependencies). Instead the test checks that it installs this folder in editable mode (``-e .``) and that every
  extra it (or any ``pip install`` in the README) names is declared in pyproject.toml. The rest of the chain runs.
- ``bash scripts/test.sh``: not run (it runs this very test). The test checks that the script exists, is valid
  bash and runs pytest.

``imagenet-prep`` in the blocks is this checkout's CLI (``python -m imagenet_prep`` with this interpreter, first
on PATH), so the test exercises the code under test even where another copy is installed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

ROOT = REPO
README = ROOT / "README.md"
RUN = ("bash", "python")
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
PIP_INSTALL = re.compile(r"pip install[^`&|;\n]*")


def readme_blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of README.md, in order."""
    return [(match.group(1), match.group(2)) for match in FENCE.finditer(README.read_text())]


def declared_extras() -> set[str]:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(pyproject["project"]["optional-dependencies"])


def extras_named(command: str) -> set[str]:
    """The extras a pip install command names: ``.[a,b]`` or ``'imagenet-prep[a]'`` -> {a, b}."""
    return {
        extra.strip() for group in re.findall(r"\[([^\]]*)\]", command) for extra in group.split(",") if extra
    }


def without_pip_install(code: str) -> tuple[str, list[str]]:
    """The block with its ``pip install`` commands taken out of their ``&&`` chains, and those commands."""
    kept, installs = [], []
    for line in code.splitlines():
        parts = line.split(" && ")
        installs += [part.strip() for part in parts if part.strip().startswith("pip install")]
        rest = [part for part in parts if not part.strip().startswith("pip install")]
        if rest:
            kept.append(" && ".join(rest))
    return "\n".join(kept) + "\n", installs


def cli_shim(folder: Path) -> Path:
    """A folder holding an ``imagenet-prep`` that runs this checkout with this interpreter."""
    folder.mkdir()
    script = folder / "imagenet-prep"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m imagenet_prep "$@"\n')
    script.chmod(0o755)
    return folder


def reader_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a reader who installed this checkout: its CLI on PATH, its package importable."""
    env = dict(os.environ)
    env["PATH"] = f"{cli_shim(tmp_path / 'bin')}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_the_readme_has_the_two_set_up_commands_and_code_to_run() -> None:
    blocks = readme_blocks()
    languages = [language for language, _ in blocks]
    assert set(languages) >= {"bash", "python"}
    assert blocks[0][0] == "bash" and blocks[0][1].startswith("pip install -e . && imagenet-prep sample ")
    assert blocks[1] == ("bash", "bash scripts/test.sh\n")
    assert all(language in (*RUN, "text") for language in languages), languages


def test_every_extra_the_readme_installs_is_declared() -> None:
    commands = PIP_INSTALL.findall(README.read_text())
    assert commands, "the README says how to install"
    named = set().union(*(extras_named(command) for command in commands))
    assert named <= declared_extras(), named - declared_extras()
    # The extras table lists every declared extra, each once.
    table = re.findall(r"^\| `([\w-]+)` \|", README.read_text(), re.MULTILINE)
    assert sorted(table) == sorted(declared_extras())


def test_the_test_command_names_a_working_script() -> None:
    script = ROOT / "scripts" / "test.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "pytest" in script.read_text()


@pytest.mark.slow
def test_every_readme_block_runs_as_pasted(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = reader_env(tmp_path)
    ran = 0
    for number, (language, code) in enumerate(readme_blocks()):
        if language not in RUN or code == "bash scripts/test.sh\n":
            continue
        if language == "bash":
            code, installs = without_pip_install(code)
            assert all(re.match(r"pip install -e (\.|'\.\[[\w,-]+\]')$", c) for c in installs), installs
            argv = ["bash", "-e", "-c", code]
        else:
            script = work / f"readme_block_{number}.py"
            script.write_text(code)
            argv = [sys.executable, script.name]
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (
            f"README block {number} ({language}) failed:\n{code}\n{done.stderr[-3000:]}"
        )
        ran += 1
        if ran == 1:  # the set-up block: what the README says it prints
            assert "Checked 150 images in imagenet-mini: OK." in done.stdout, done.stdout
    assert ran >= 4
    # What the set-up block promises to print, and the outputs the other blocks name, are there.
    assert (work / "imagenet-mini" / "labels.txt").is_file()
    assert (work / "imagenet-mini-wds" / "_info.json").is_file()
    assert (work / "imagenet-mini-parquet" / "data" / "validation-00000-of-00001.parquet").is_file()
    assert (work / "imagenet-mini-py" / "build.json").is_file()


@pytest.mark.slow
def test_the_readme_python_blocks_run_on_the_first_build_of_a_fresh_release(tmp_path: Path) -> None:
    """The hardest case for a plain script: nothing cached yet, so the build parses the devkit (numpy starts
    threads) and its workers come from the forkserver. The blocks have no ``__main__`` guard: the first run
    exits 0 only because the workers never re-run the script (tests/e2e/test_script_api.py shows that without
    it the same script fails)."""
    work = tmp_path / "work"
    work.mkdir()
    env = reader_env(tmp_path)
    env["IMAGENET_PREP_CACHE"] = str(tmp_path / "empty-cache")
    sample = subprocess.run(
        ["imagenet-prep", "sample", "./ilsvrc-mini"], cwd=work, env=env, capture_output=True
    )
    assert sample.returncode == 0, sample.stderr
    blocks = [code for language, code in readme_blocks() if language == "python"]
    assert blocks
    assert all("__main__" not in code for code in blocks)  # plain scripts, as a reader pastes them
    assert any("imagenet_prep.build(" in code for code in blocks)  # ... that build
    for number, code in enumerate(blocks):
        script = work / f"readme_python_{number}.py"
        script.write_text(code)
        done = subprocess.run(
            [sys.executable, script.name], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"README python block {number} failed:\n{done.stderr[-3000:]}"
    assert (work / "imagenet-mini-py" / "build.json").is_file()
