"""Folders OUT manages (a class folder, a split folder, the state folder, a Parquet data folder) that are links
are refused with one line: nothing is written into the link's target and the temp cleaner deletes nothing there
(it never follows a link). Real CLI processes, real links."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import cli, one_line_error

from imagenet_prep.build.state import STATE_DIR, remove_temp_files
from imagenet_prep.sample import SampleSpec, write_sample

OPTIONS = ("--size", "32", "--workers", "1", "--quiet")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(
        tmp_path_factory.mktemp("links-release"),
        SampleSpec(classes=2, train_per_class=3, val_per_class=2, seed=4),
    )


def _elsewhere(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / ".tmp-precious").write_bytes(b"keep me")
    (target / "notes.txt").write_bytes(b"mine")
    return target, {p.name: p.read_bytes() for p in target.iterdir()}


def _untouched(target: Path, before: dict[str, bytes]) -> None:
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before


def test_a_class_folder_that_is_a_link_is_refused_and_its_target_untouched(release, tmp_path):
    out = tmp_path / "out"
    first = cli("build", "--source", str(release.root), "--out", str(out), *OPTIONS)
    assert first.returncode == 0, first.stderr
    wnid_dir = next(p for p in sorted((out / "train").iterdir()) if p.is_dir())
    for image in wnid_dir.iterdir():
        image.unlink()
    wnid_dir.rmdir()
    target, before = _elsewhere(tmp_path)
    wnid_dir.symlink_to(target, target_is_directory=True)
    line = one_line_error(cli("build", "--source", str(release.root), "--out", str(out), *OPTIONS))
    assert str(wnid_dir) in line and "link" in line
    _untouched(target, before)


@pytest.mark.parametrize("managed", ["train", STATE_DIR])
def test_a_split_or_state_folder_that_is_a_link_is_refused(release, tmp_path, managed):
    out = tmp_path / "out"
    first = cli("build", "--source", str(release.root), "--out", str(out), *OPTIONS)
    assert first.returncode == 0, first.stderr
    shutil.rmtree(out / managed)
    target, before = _elsewhere(tmp_path)
    (out / managed).symlink_to(target, target_is_directory=True)
    line = one_line_error(cli("build", "--source", str(release.root), "--out", str(out), *OPTIONS))
    assert str(out / managed) in line and "link" in line
    _untouched(target, before)


def test_parquet_data_folder_that_is_a_link_is_refused(release, tmp_path):
    out = tmp_path / "out"
    first = cli("build", "--source", str(release.root), "--out", str(out), "--output", "parquet", *OPTIONS)
    assert first.returncode == 0, first.stderr
    data = out / "data"
    for shard in data.iterdir():
        shard.unlink()
    data.rmdir()
    target, before = _elsewhere(tmp_path)
    data.symlink_to(target, target_is_directory=True)
    line = one_line_error(
        cli("build", "--source", str(release.root), "--out", str(out), "--output", "parquet", *OPTIONS)
    )
    assert str(data) in line
    _untouched(target, before)


def test_the_temp_cleaner_never_follows_a_link(tmp_path):
    out = tmp_path / "out"
    (out / "train").mkdir(parents=True)
    target, before = _elsewhere(tmp_path)
    (out / "train" / "n01440764").symlink_to(target, target_is_directory=True)
    (out / "val").symlink_to(target, target_is_directory=True)
    (out / "train" / ".tmp-ours").write_bytes(b"x")
    assert remove_temp_files(out, ["train", "train/n01440764", "val/n01440764", "val"]) == 1
    assert not (out / "train" / ".tmp-ours").exists()
    _untouched(target, before)
