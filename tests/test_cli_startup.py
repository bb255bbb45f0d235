"""`imagenet-prep --help` and lookups answered by the bundled 1K data never import nltk (nor load WordNet).

Each case runs the real CLI app in a fresh interpreter, then reports which modules got imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from imagenet_prep.cli import main
sys.argv = ["imagenet-prep", *json.loads(sys.argv[1])]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code or 0
print("\\n@@PROBE@@" + json.dumps({
    "code": code,
    "nltk": sorted(name for name in sys.modules if name == "nltk" or name.startswith("nltk.")),
    "imagenet_prep": sorted(name for name in sys.modules if name.startswith("imagenet_prep")),
}))
"""


def probe(*args: str, env: dict[str, str] | None = None) -> tuple[str, dict]:
    # By default WordNet points nowhere, so an unexpected WordNet load would also fail loudly.
    full_env = {**os.environ, "IMAGENET_PREP_WORDNET": "/nonexistent/wordnet", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        timeout=120,
        env={key: value for key, value in full_env.items() if value},
    )
    assert "@@PROBE@@" in result.stdout, result.stderr
    output, report = result.stdout.rsplit("\n@@PROBE@@", 1)
    return output, json.loads(report)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--help"], "synsets"),
        (["synsets", "--help"], "leaves"),
        (["synsets", "show", "n01440764"], "tench.n.01"),
        (["synsets", "show", "n01440764", "--json"], '"ilsvrc2012_id": 449'),
        (["synsets", "show", "goldfish"], "n01443537"),
        (["synsets", "search", "terrier"], "n02093256"),
        (["synsets", "leaves", "n02123045", "--json"], '["n02123045"]'),
    ],
)
def test_bundled_lookups_do_not_import_nltk(args: list[str], expected: str) -> None:
    output, report = probe(*args)
    assert report["code"] == 0, output
    assert expected in output
    assert report["nltk"] == []  # no 'nltk.corpus.reader.wordnet', and no nltk at all


def test_help_imports_no_library_modules() -> None:
    _, report = probe("--help")
    assert report["code"] == 0
    loaded = set(report["imagenet_prep"])
    assert not loaded & {"imagenet_prep.synsets", "imagenet_prep.wordnet", "imagenet_prep.classes"}


def test_the_probe_sees_nltk_when_it_is_imported(tmp_path: Path) -> None:
    """Positive control: looking through nltk's data folders (a fresh cache, no WordNet named) imports nltk,
    and the same probe reports it."""
    output, report = probe(
        "wordnet", "status", env={"IMAGENET_PREP_WORDNET": "", "IMAGENET_PREP_CACHE": str(tmp_path)}
    )
    assert report["code"] == 0, output
    assert "WordNet 3.0" in output
    assert "nltk" in report["nltk"] and "nltk.data" in report["nltk"]


def test_console_script_help() -> None:
    script = shutil.which("imagenet-prep")
    assert script, "the imagenet-prep console script is not installed (pip install -e .)"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("synsets", "wordnet"):
        assert command in result.stdout
