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

from imagenet_prep import classes

PROBE = """
import json, sys
HEAVY = ("numpy", "PIL", "pyarrow", "dask", "distributed", "fsspec", "zlib_ng")
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
    "heavy": sorted(name for name in sys.modules if name.split(".")[0] in HEAVY),
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
    return output, {**json.loads(report), "stderr": result.stderr}


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
        # Synsets above the 1K classes: the bundled hierarchy answers.
        (["synsets", "leaves", "bird.n.01", "--long"], "n01530575"),
        (["synsets", "show", "dog.n.01", "--json"], '"imagenet1k_leaves": 118'),
        (["synsets", "tree", "tabby", "--depth", "0"], "domestic_animal.n.01 > domestic_cat.n.01"),
        (["synsets", "tree", "Dog.n.1", "--depth", "1"], "corgi.n.01"),
    ],
)
def test_bundled_lookups_do_not_import_nltk(args: list[str], expected: str) -> None:
    output, report = probe(*args)
    assert report["code"] == 0, output
    assert expected in output
    assert report["nltk"] == []  # no 'nltk.corpus.reader.wordnet', and no nltk at all


def test_leaves_under_dog_come_from_the_bundled_hierarchy() -> None:
    output, report = probe("synsets", "leaves", "dog.n.01", "--json")
    assert report["code"] == 0, report["stderr"]
    assert report["nltk"] == []
    # The dogs are the 118 classes with sorted indices 151..268 (checked against WordNet in test_synsets.py).
    assert json.loads(output) == [classes.by_index(i).wnid for i in range(151, 269)]


SELECT_PROBE = """
import json, sys
HEAVY = ("numpy", "PIL", "pyarrow", "dask", "distributed", "fsspec", "zlib_ng")
from pathlib import Path
from imagenet_prep import classes
from imagenet_prep.config import BuildConfig
from imagenet_prep.plan.selection import select_classes
config = BuildConfig(source=Path("src"), out=Path("out"), under=sys.argv[1])
chosen = select_classes(config, [c.wnid for c in classes.all_classes()][::2])
print(json.dumps({"chosen": list(chosen), "nltk": sorted(m for m in sys.modules if m.split(".")[0] == "nltk")}))
"""


def test_select_classes_under_a_synset_does_not_import_nltk() -> None:
    """A CI build of `--under dog.n.01` picks its classes in milliseconds: no WordNet (pointed nowhere here)."""
    result = subprocess.run(
        [sys.executable, "-c", SELECT_PROBE, "dog.n.01"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "IMAGENET_PREP_WORDNET": "/nonexistent/wordnet"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["nltk"] == []
    even = {c.wnid for c in classes.all_classes()[::2]}
    assert report["chosen"] == [
        classes.by_index(i).wnid for i in range(151, 269) if classes.by_index(i).wnid in even
    ]


@pytest.mark.parametrize("query", ["feeling.n.01", "dog", "domestic_dog.n.01"])
def test_queries_beyond_the_bundle_still_need_wordnet(query: str) -> None:
    """Negative control: outside the bundled hierarchy (or a plain word WordNet's senses decide) the lookup
    needs WordNet, which points nowhere here: one clear error line, exit code 2."""
    output, report = probe("synsets", "leaves", query)
    assert report["code"] == 2 and output == ""
    assert report["stderr"].startswith("imagenet-prep: error:") and "WordNet" in report["stderr"]
    assert len(report["stderr"].strip().splitlines()) == 1


def test_help_imports_no_library_modules() -> None:
    _, report = probe("--help")
    assert report["code"] == 0
    assert report["heavy"] == []
    loaded = set(report["imagenet_prep"])
    assert not loaded & {
        "imagenet_prep.taxonomy.synsets",
        "imagenet_prep.taxonomy.wordnet",
        "imagenet_prep.taxonomy.classes",
    }


@pytest.mark.slow  # a fresh interpreter loads nltk and WordNet
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


HEAVY = ("numpy", "PIL", "pyarrow", "dask", "distributed", "fsspec", "nltk", "zlib_ng")


@pytest.mark.parametrize(
    "statement",
    [
        "from imagenet_prep.outputs import WRITERS",
        "from imagenet_prep.executors import EXECUTORS",
        "from imagenet_prep.sources import SOURCES",
    ],
)
def test_registries_are_cheap_to_import(statement: str) -> None:
    """The help lists come from the registries: importing one loads no worker, image processing, Pillow,
    numpy, pyarrow or Dask (each entry's heavy module loads when it runs)."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}
    assert not loaded & {"imagenet_prep.build.worker", "imagenet_prep.image.process", "imagenet_prep.plan"}


def test_the_registry_probe_sees_pillow_when_it_is_imported() -> None:
    """Positive control: the processing names of the image package do load Pillow, and the same check sees it."""
    code = "from imagenet_prep.image import process_image\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "PIL.Image" in json.loads(result.stdout)


def test_build_help_imports_no_heavy_library() -> None:
    """`build --help` lists layouts, outputs, executors and resize modes from the registries, and stays cheap."""
    _, report = probe("build", "--help")
    assert report["code"] == 0, report["stderr"]
    loaded = set(report["imagenet_prep"])
    assert not loaded & {
        "imagenet_prep.build.worker",
        "imagenet_prep.build.orchestrator",
        "imagenet_prep.image.process",
        "imagenet_prep.plan",
    }
    assert report["nltk"] == [] and report["heavy"] == []
