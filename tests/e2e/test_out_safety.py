"""--overwrite removes only what a build of ours recorded, never the source; --out naming a file; --workers
bounded; a stopped worker cannot hang the stop path (issue 15 items 1, 5 and 7). Real CLI processes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from support import cli, one_line_error

from imagenet_prep.build import STATE_DIR, build
from imagenet_prep.config import build_config
from imagenet_prep.errors import UsageError
from imagenet_prep.outputs.imagefolder_check import check_tree
from imagenet_prep.sample import SampleSpec, write_sample

OPTIONS = ("--size", "32", "--workers", "1", "--quiet")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(
        tmp_path_factory.mktemp("harden-out-release"),
        SampleSpec(classes=2, train_per_class=3, val_per_class=2, seed=4),
    )


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and STATE_DIR not in p.relative_to(folder).parts
    }


# ------------------------------------------------------------------------------------------- overwrite
def test_overwrite_never_deletes_the_source_it_reads(release, tmp_path):
    parent = tmp_path / "P"
    shutil.copytree(release.root, parent / "train")
    before = digest(parent)
    line = one_line_error(
        cli("build", "--source", str(parent / "train"), "--out", str(parent), "--overwrite", *OPTIONS)
    )
    assert "--source" in line
    assert digest(parent) == before  # not one archive removed or changed


def test_overwrite_never_deletes_files_a_build_of_ours_did_not_write(release, tmp_path):
    home = tmp_path / "H"
    (home / "train").mkdir(parents=True)
    (home / "train" / "thesis.tex").write_text("four years of work\n")
    (home / "labels.txt").write_text("my own labels\n")
    before = digest(home)
    line = one_line_error(
        cli("build", "--source", str(release.root), "--out", str(home), "--overwrite", *OPTIONS)
    )
    assert "train" in line and "labels.txt" in line
    assert digest(home) == before


def _build(release, out: Path, **options):
    values = {"source": release.root, "out": out, "size": 32, "workers": 1, **options}
    return build(build_config({}, values))


def test_overwrite_replaces_a_tree_we_built_and_keeps_the_users_other_files(release, tmp_path):
    out = tmp_path / "out"
    _build(release, out)
    (out / "notes.md").write_text("mine\n")
    with pytest.raises(UsageError, match="different configuration"):
        _build(release, out, size=24)
    _build(release, out, size=24, overwrite=True)
    assert (out / "notes.md").read_text() == "mine\n"
    assert check_tree(out, decode=True).ok
    assert all(min(Image.open(p).size) == 24 for p in out.glob("train/*/*"))  # the new config's tree
    recorded = json.loads((out / STATE_DIR / "created.json").read_text())["entries"]
    assert "notes.md" not in recorded and {"train", "val", "build.json"} <= set(recorded)


def test_a_tampered_record_cannot_widen_what_overwrite_removes(release, tmp_path):
    out = tmp_path / "out"
    _build(release, out)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "data.bin").write_bytes(b"keep")
    (out / STATE_DIR / "created.json").write_text('{"entries": ["..", "../precious", "/", "train"]}')
    with pytest.raises(UsageError, match="no build of ours recorded"):
        _build(release, out, size=24, overwrite=True)
    assert (tmp_path / "precious" / "data.bin").read_bytes() == b"keep"
    assert release.train_tar.is_file() and (out / "val").is_dir()  # refused before removing anything


def test_out_naming_a_file_is_a_one_line_usage_error(release, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("not a folder\n")
    line = one_line_error(cli("build", "--source", str(release.root), "--out", str(target), *OPTIONS))
    assert "not a folder" in line
    assert target.read_text() == "not a folder\n"


# ----------------------------------------------------------------------------------------------- workers
def test_workers_are_bounded_with_a_clear_message(release, tmp_path):
    started = time.monotonic()
    line = one_line_error(
        cli("build", "--source", str(release.root), "--out", str(tmp_path / "o"), "--workers", "10000")
    )
    assert "--workers" in line and str(4 * (os.cpu_count() or 1)) in line
    assert time.monotonic() - started < 20
    assert not (tmp_path / "o").exists()


def _session(sid: int) -> dict[int, int]:
    """pid -> ppid of the live processes of a session."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            found[int(pid)] = int(fields[1])
    return found


@pytest.fixture
def stoppable(tmp_path: Path) -> Iterator[dict]:
    """A build of 2 workers in a session of its own; on exit, whatever is left of it is killed."""
    release = write_sample(
        tmp_path / "rel", SampleSpec(classes=4, train_per_class=60, val_per_class=10, seed=2)
    )
    argv = [sys.executable, "-m", "imagenet_prep", "build", "--source", str(release.root), "--out"]
    argv += [str(tmp_path / "out"), "--workers", "2", "--size", "32", "--quiet"]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env
    )
    state: dict = {"proc": proc, "out": tmp_path / "out"}
    try:
        yield state
    finally:
        for pid in _session(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.wait(timeout=10)


def test_sigterm_with_a_stopped_worker_exits_within_seconds(stoppable):
    proc, out = stoppable["proc"], stoppable["out"]
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while proc.poll() is None and time.monotonic() < deadline:
        tree = _session(proc.pid)
        workers = [pid for pid, ppid in tree.items() if ppid != proc.pid and pid != proc.pid]
        if len(workers) >= 2 and (out / STATE_DIR / "state.json").is_file():  # planned: units are queued
            break
        time.sleep(0.005)
    assert proc.poll() is None and len(workers) >= 2, "the build ended before its workers could be stopped"
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)  # like a worker stuck on a hung network file system
    time.sleep(0.3)
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("the build hung after SIGTERM with a stopped worker")
    elapsed = time.monotonic() - sent
    assert proc.returncode == 130, stderr
    assert elapsed < 8, f"took {elapsed:.1f} s"
    assert "Interrupted" in stderr and "Traceback" not in stderr
    time.sleep(0.5)
    assert not [pid for pid in workers if pid in _session(proc.pid)], "a stopped worker was left behind"
