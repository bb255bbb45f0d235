"""What users hit first (issue 14): honest output in logs and scripts (items 3), the messages of item 4, and
--dry-run (item 5). Real CLI runs in subprocesses where the terminal matters; the rest in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagenet_prep.build import build
from imagenet_prep.cli import app
from imagenet_prep.config import build_config
from imagenet_prep.errors import ImagenetPrepError, InputError, UsageError


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from imagenet_prep.sample import SampleSpec, write_sample

    return write_sample(
        tmp_path_factory.mktemp("ux-cli-release"),
        SampleSpec(classes=4, train_per_class=3, val_per_class=2, seed=5),
    )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """A real process whose stderr is a pipe (not a terminal), as in CI logs."""
    return subprocess.run(
        [sys.executable, "-m", "imagenet_prep", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "100"},
    )


def _invoke(*args: str):
    """In-process CLI run: (exit code, stdout, the domain error or None)."""
    result = CliRunner().invoke(app, list(args))
    error = result.exception if isinstance(result.exception, ImagenetPrepError) else None
    if result.exception is not None and error is None and not isinstance(result.exception, SystemExit):
        raise result.exception
    code = error.exit_code if error is not None else result.exit_code
    return code, result.stdout, error


# ------------------------------------------------------------------------------------------ item 3: output
def test_build_in_a_log_has_no_bars_and_says_nothing_to_do_on_a_rerun(release, tmp_path):
    out = tmp_path / "out"
    first = _cli("build", "--source", str(release.root), "--out", str(out), "--size", "32", "--workers", "1")
    assert first.returncode == 0, first.stderr
    assert "\x1b" not in first.stderr and "\r" not in first.stderr
    lines = [line for line in first.stderr.splitlines() if line.startswith("build: ")]
    assert 1 <= len(lines) <= 11 and lines[-1].startswith("build: 100%")
    again = _cli(
        "build", "--source", str(release.root), "--out", str(out), "--size", "32", "--workers", "1", "--json"
    )
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)  # one JSON document, nothing else
    assert summary["units"]["already_built"] == summary["units"]["total"] > 0
    assert summary["units"]["built"] == 0 and summary["images"] == 4 * 5
    assert summary["per_split"] == {"train": 12, "val": 8} and summary["skipped"] == 0
    code, stdout, _ = _invoke("build", "--source", str(release.root), "--out", str(out), "--size", "32")
    units = summary["units"]["total"]
    assert code == 0 and stdout.startswith(f"Nothing to do: {units} of {units} units already built")
    assert "img/s" not in stdout
    code, stdout, _ = _invoke("check", str(out), "--json")
    report = json.loads(stdout)
    assert code == 0 and report["ok"] and report["checked"] == 20 and report["repair"] is None


def test_fetch_and_verify_json(release, tmp_path):
    sums = str(release.root / "MD5SUMS")
    code, stdout, _ = _invoke(
        "fetch", "--dest", str(tmp_path), "--only", "val", "--base-url", str(release.root), "--checksums", sums,
        "--json",
    )  # fmt: skip
    doc = json.loads(stdout)
    assert code == 0 and doc["ok"] and [r["status"] for r in doc["results"]] == ["downloaded"]
    code, stdout, _ = _invoke("verify", str(tmp_path), "--checksums", sums, "--json")
    doc = json.loads(stdout)
    assert code == 0 and doc["ok"] and [r["status"] for r in doc["results"]] == ["ok"]


# ---------------------------------------------------------------------------------------- item 4: messages
def _refused(release, out: Path, **options) -> ImagenetPrepError:
    with pytest.raises(ImagenetPrepError) as info:
        build(build_config({}, {"source": release.root, "out": out, "workers": 1, **options}))
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    return info.value


def test_missing_classes_file_is_named(release, tmp_path):
    error = _refused(release, tmp_path / "out", classes="./missing.txt")
    assert isinstance(error, InputError) and "./missing.txt does not exist" in str(error)
    assert not (tmp_path / "out").exists()  # a refused build leaves no OUT behind


def test_source_pointing_at_a_tar_names_its_folder(release, tmp_path):
    error = _refused(release, tmp_path / "out", source=release.val_tar)
    assert f"point --source at the folder holding it (--source {release.root})" in str(error)
    assert not (tmp_path / "out").exists()


def test_refused_build_into_an_existing_folder_leaves_no_state(release, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _refused(release, out, subset="imagewoof")  # its classes are not in this release
    assert list(out.iterdir()) == []  # no .imagenet-prep (lock) left behind


def test_a_different_configuration_names_the_settings_that_differ(release, tmp_path):
    out = tmp_path / "out"
    build(build_config({}, {"source": release.root, "out": out, "workers": 1, "size": 32}))
    error = _refused(release, out, size=48, resize="square")
    assert isinstance(error, UsageError)
    assert "size: 32 -> 48" in str(error) and "resize: shorter -> square" in str(error)
    assert (out / "build.json").is_file()  # the earlier build is kept


def test_under_a_synset_without_1k_classes_says_so(release, tmp_path):
    from imagenet_prep.plan.selection import select_classes

    config = build_config({}, {"source": release.root, "out": tmp_path / "o", "under": "idea.n.01"})
    with pytest.raises(UsageError, match=r"No ImageNet-1K class lies under 'idea\.n\.01'"):
        select_classes(config, release.wnids)


def test_splits_typo_lists_the_valid_splits(release, tmp_path):
    with pytest.raises(UsageError) as info:
        build_config({}, {"source": release.root, "out": tmp_path / "o", "splits": "train,vall"})
    message = str(info.value)
    assert "'vall'" in message and "Valid splits: train, val" in message and "(" + "'train'" not in message


def test_check_on_a_missing_path_says_missing(tmp_path):
    code, _, error = _invoke("check", str(tmp_path / "nope"))
    assert code == 2 and error is not None and "missing" in str(error)


def test_wordnet_status_only_reports(tmp_path):
    from imagenet_prep.io.paths import ENV_CACHE_DIR
    from imagenet_prep.taxonomy import wordnet

    cache = tmp_path / "cache"
    env = {**os.environ, ENV_CACHE_DIR: str(cache)}
    result = subprocess.run(
        [sys.executable, "-m", "imagenet_prep", "wordnet", "status", "--wordnet", "/usr/share/wordnet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "WordNet 3.0" in result.stdout and "wordnet install" in result.stdout
    assert not cache.exists()  # nothing prepared, nothing written
    assert wordnet.status("/usr/share/wordnet").ok


def test_help_states_fixed_shapes_and_webp_loaders():
    code, stdout, _ = _invoke("build", "--help")
    flat = " ".join(stdout.split())
    assert code == 0
    assert "always give exactly --size x --size" in flat
    assert "Keras and timm do not" in flat and "add_img_extensions" in flat


# ---------------------------------------------------------------------------------------- item 5: dry run
@pytest.fixture(scope="module")
def realistic_release(tmp_path_factory):
    from imagenet_prep.sample import SampleSpec, write_sample

    return write_sample(
        tmp_path_factory.mktemp("ux-realistic"),
        SampleSpec(classes=4, train_per_class=12, val_per_class=4, realistic=True, seed=11),
    )


def test_dry_run_writes_nothing_and_estimates_within_25_percent(realistic_release, tmp_path):
    out = tmp_path / "planned" / "out"
    args = ("build", "--source", str(realistic_release.root), "--out", str(out), "--workers", "1")
    code, stdout, _ = _invoke(*args, "--dry-run", "--json")
    assert code == 0
    report = json.loads(stdout)
    assert not (tmp_path / "planned").exists()  # nothing written, OUT does not appear
    assert report["dry_run"] and report["classes"] == 4 and report["images"] == {"train": 48, "val": 16}
    assert report["bytes_to_read"] > 0 and report["free_bytes"] > 0 and report["estimate"]["seconds"] > 0
    code, text, _ = _invoke(*args, "--dry-run")
    assert code == 0 and "Dry run (nothing written): 4 classes, 64 images" in text and "Free space" in text
    assert not (tmp_path / "planned").exists()
    build(build_config({}, {"source": realistic_release.root, "out": out, "workers": 1}))
    real = sum(p.stat().st_size for p in out.glob("*/*/*") if p.is_file())
    estimate = report["estimate"]["output_bytes"]
    assert abs(estimate - real) <= 0.25 * real, (estimate, real)
