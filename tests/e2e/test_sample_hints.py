"""The miniature registry: every source layout has a miniature, and the "Next:" build command `sample --layout
NAME` prints runs as printed (shlex-split, in the folder `sample` ran in) and builds a non-empty output."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imagenet_prep.sample.registry import ALIASES, CHOICES, MINIATURES, miniature
from imagenet_prep.sources import SOURCES

# Options that shrink the ImageNet-1K miniatures (the 21K and evaluation-set ones are a few images already).
TINY = ("--classes", "2", "--train-per-class", "2", "--val-per-class", "1")


def test_every_source_layout_has_a_miniature():
    assert set(MINIATURES) == set(SOURCES)


def test_aliases_and_add_ons_name_registered_miniatures():
    for old in ALIASES:
        name, entry = miniature(old)
        assert name in MINIATURES and entry is MINIATURES[name]
    assert miniature("imagenetv2", "top-images")[0] == "imagenetv2-top-images"


def test_an_unknown_layout_is_refused_with_the_registry_choices(tmp_path):
    done = _run([sys.executable, "-m", "imagenet_prep", "sample", "m", "--layout", "nope"], tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "imagenet-sketch" in done.stderr and "class-tars" in done.stderr and "bbox" in done.stderr
    assert not (tmp_path / "m").exists()


def test_the_hint_quotes_a_folder_with_spaces():
    command = MINIATURES["imagenet-a"].next_command(Path("my mini"))
    # an evaluation set's build takes its val split by default: the hint needs no --splits
    assert shlex.split(command)[3] == "my mini" and "--splits" not in command


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(CHOICES))
def test_the_printed_next_command_runs_as_printed(tmp_path, layout):
    written = _run(
        [sys.executable, "-m", "imagenet_prep", "sample", "mini", "--layout", layout, *TINY], tmp_path
    )
    assert written.returncode == 0, written.stderr
    found = re.search(r"Next: (.+)$", written.stdout.strip())
    assert found, written.stdout
    argv = shlex.split(found.group(1))
    assert argv[0] == "imagenet-prep" and "--source" in argv and argv[argv.index("--source") + 1] == "mini"
    # The console script when installed; else the same program through the interpreter.
    script = shutil.which("imagenet-prep")
    program = [script] if script else [sys.executable, "-m", "imagenet_prep"]
    built = _run(program + argv[1:], tmp_path)
    assert built.returncode == 0, f"{found.group(1)}\n{built.stdout}\n{built.stderr}"
    out = tmp_path / argv[argv.index("--out") + 1]
    assert any(p.is_file() for p in out.rglob("*")), built.stdout
    assert built.stdout.startswith("Built ") and not built.stdout.startswith("Built 0 "), built.stdout


def test_every_public_name_of_the_package_resolves():
    import imagenet_prep.sample as package

    assert sorted(package.__all__) == sorted(package._LAZY)
    for name in package.__all__:
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError):
        package.nope  # noqa: B018
