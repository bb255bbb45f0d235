"""`--resizer auto` on the command line: build.json records the engine that ran (fast where cykooz-resizer loads,
pillow in a process where importing it fails), never "auto"; the repair command `check` prints names that
engine, and run as printed it brings the tree back byte for byte."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from support import cli, snapshot, without_package

from imagenet_prep.image import fast_resizer_available

OPTIONS = ("--size", "48", "--workers", "2", "--quiet")


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("auto") / "release"
    done = cli("sample", str(root), "--classes", "3", "--train-per-class", "3", "--val-per-class", "1")
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="module")
def without_fast(tmp_path_factory) -> dict[str, str]:
    """The environment of a process in which `import cykooz_resizer` fails (a package of that name that raises
    ImportError, first on the path), whether or not the real one is installed."""
    return without_package(tmp_path_factory.mktemp("shadow"), "cykooz_resizer")


def _build(release: Path, out: Path, *options: str, env: dict[str, str] | None = None) -> dict:
    done = cli("build", "--source", str(release), "--out", str(out), *OPTIONS, *options, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "build.json").read_text())


def _damage_and_repair(out: Path, env: dict[str, str] | None = None) -> list[str]:
    """Truncate one image, run the repair command `check` prints, exactly as printed; return it as words."""
    clean = snapshot(out)
    image = next(rel for rel in clean if rel.startswith("train/"))
    (out / image).write_bytes(clean[image][:100])
    check = cli("check", str(out), env=env)
    assert check.returncode == 1, check.stderr
    last = check.stderr.strip().splitlines()[-1]
    assert last.startswith("To repair it, run its build again"), check.stderr
    command = shlex.split(last.split(": ", 1)[1])
    repaired = cli(*command[1:], env=env) if command[:2] == ["imagenet-prep", "build"] else None
    assert repaired is not None and repaired.returncode == 0, command
    assert snapshot(out) == clean
    return command


@pytest.mark.skipif(not fast_resizer_available(), reason="the optional fast resizer is not installed")
def test_auto_builds_with_fast_and_records_it(release, tmp_path):
    record = _build(release, tmp_path / "auto", "--resizer", "auto")
    assert record["config"]["resizer"] == "fast"
    assert record["preprocessing"]["resizer"] == "fast"
    explicit = _build(release, tmp_path / "fast", "--resizer", "fast")
    assert snapshot(tmp_path / "auto") == snapshot(tmp_path / "fast")
    assert record["fingerprint"] == explicit["fingerprint"]
    stock = _build(release, tmp_path / "pillow")
    assert snapshot(tmp_path / "auto") != snapshot(tmp_path / "pillow")  # the engine decides the bytes
    assert stock["config"]["resizer"] == "pillow"
    command = _damage_and_repair(tmp_path / "auto")
    assert "auto" not in command and command[command.index("--resizer") + 1] == "fast"


def test_auto_without_the_package_builds_with_pillow_and_records_it(release, tmp_path, without_fast):
    record = _build(release, tmp_path / "auto", "--resizer", "auto", env=without_fast)
    assert record["config"]["resizer"] == "pillow"
    assert record["preprocessing"]["resizer"] == "pillow"
    _build(release, tmp_path / "pillow", env=without_fast)
    assert snapshot(tmp_path / "auto") == snapshot(tmp_path / "pillow")
    command = _damage_and_repair(tmp_path / "auto", env=without_fast)
    assert "auto" not in command


def test_a_tree_built_with_fast_is_not_silently_rebuilt_with_pillow(release, tmp_path, without_fast):
    """auto resolves per process: where the fast engine is gone, a re-run into the same OUT is refused."""
    if not fast_resizer_available():
        pytest.skip("the optional fast resizer is not installed")
    _build(release, tmp_path / "out", "--resizer", "auto")
    done = cli(
        "build", "--source", str(release), "--out", str(tmp_path / "out"), *OPTIONS, "--resizer", "auto",
        env=without_fast,
    )  # fmt: skip
    assert done.returncode == 2
    assert "resizer: fast -> pillow" in done.stderr
