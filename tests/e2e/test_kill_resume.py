"""Crash-resume, Ctrl-C, one build per OUT and a full disk: real `imagenet-prep build` processes, killed, stopped,
interrupted and starved of space, then resumed (issue 6 items 1, 4 and 5).

Every scenario ends with the same proof: the tree, manifests and label maps are byte-identical to an
uninterrupted build's (all files but build.json and the state folder), no temporary file is left anywhere in
OUT, and `imagenet-prep check OUT --decode` passes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from support import build_argv as cli_build_argv
from support import snapshot
from support.kill_trial import wait_until_gone

from imagenet_prep.build import STATE_DIR, output_lock
from imagenet_prep.errors import InputError
from imagenet_prep.io.atomic import TMP_MARK
from imagenet_prep.outputs.imagefolder_check import check_tree
from imagenet_prep.sample import SampleSpec, write_sample

# 6 classes x 50 train + 50 val = 600 small images; 8 work units (6 train classes, 2 val chunks of 250 + 50).
# Two workers need ~0.6 s for the images: wide enough for kills to land anywhere, short enough for 10+ trials.
SPEC = SampleSpec(classes=6, train_per_class=50, val_per_class=50, seed=11)
BUILD_OPTIONS = ("--workers", "2", "--resize", "shorter", "--size", "32", "--quiet")
TOTAL_IMAGES = 6 * 50 * 2
UNITS = 6 + 2
RESUME_HINT = "run the same command again"


# --------------------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module", autouse=True)
def private_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A killed build leaves Python's multiprocessing socket folder (pymp-*) in $TMPDIR: keep those here."""
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("tmpdir"))
    yield
    if saved is None:
        del os.environ["TMPDIR"]
    else:
        os.environ["TMPDIR"] = saved


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(tmp_path_factory.mktemp("reliability-release"), SPEC)


def build_argv(release, out: Path) -> list[str]:
    return cli_build_argv(release.root, out, *BUILD_OPTIONS)


def run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def start(release, out: Path, capture: bool = False) -> subprocess.Popen:
    # A session of its own: its process group holds the CLI, the forkserver and the workers, like a shell job.
    # Not captured unless asked: a pipe held open by an orphaned worker would hang communicate().
    stream = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        build_argv(release, out), stdout=stream, stderr=stream, text=True, start_new_session=True
    )


def temp_files(out: Path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(root, name), out)
        for root, dirs, files in os.walk(out)
        for name in files + dirs
        if name.startswith(TMP_MARK)
    )


def images_written(out: Path) -> int:
    """Images under final names (what a kill point is chosen by)."""
    count = 0
    for split in ("train", "val"):
        with contextlib.suppress(FileNotFoundError):
            for class_dir in os.scandir(out / split):
                with contextlib.suppress(FileNotFoundError):
                    count += sum(1 for e in os.scandir(class_dir.path) if not e.name.startswith(TMP_MARK))
    return count


def stop_all(proc: subprocess.Popen) -> None:
    """Test cleanup: kill whatever is left of this build's process group (only processes this test started)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


def kill_at(proc: subprocess.Popen, out: Path, images: int | None, delay: float, whole_group: bool) -> int:
    """SIGKILL the build once ``images`` are written (or after ``delay`` s, or at its first image if that comes
    sooner: a kill by time is meant for start-up, planning and the pool's start, and a build on a quick
    machine may be past them early); returns images written then."""
    started = time.monotonic()
    while proc.poll() is None and time.monotonic() - started < 60:
        if images is None and (time.monotonic() - started >= delay or images_written(out) >= 1):
            break
        if images is not None and images_written(out) >= images:
            break
        time.sleep(0.002)
    written = images_written(out)
    if whole_group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return written


def assert_complete(out: Path, reference: dict[str, bytes], *, cli_check: bool = True) -> None:
    assert temp_files(out) == []
    tree = snapshot(out)
    assert sorted(tree) == sorted(reference), "the resumed tree lists other files than the reference"
    differing = [rel for rel in reference if tree[rel] != reference[rel]]
    assert differing == [], f"files differ from the uninterrupted build: {differing[:5]}"
    if cli_check:
        checked = run([sys.executable, "-m", "imagenet_prep", "check", str(out), "--decode"])
        assert checked.returncode == 0, checked.stderr
    else:
        assert check_tree(out, decode=True).ok


@pytest.fixture(scope="module")
def reference_out(release, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted build (do not modify: copy it)."""
    out = tmp_path_factory.mktemp("reference") / "out"
    done = run(build_argv(release, out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def reference_seconds(reference_out: Path, release, tmp_path_factory: pytest.TempPathFactory) -> float:
    """How long an uninterrupted build takes from the command's start with the archive index cached (as in
    every trial): kills by time land within it."""
    started = time.monotonic()
    done = run(build_argv(release, tmp_path_factory.mktemp("timed") / "out"))
    assert done.returncode == 0, done.stderr
    return time.monotonic() - started


@pytest.fixture(scope="module")
def reference(reference_out: Path) -> dict[str, bytes]:
    """What every scenario must reproduce byte for byte."""
    tree = snapshot(reference_out)
    images = [rel for rel in tree if rel.endswith(".JPEG")]
    assert len(images) == TOTAL_IMAGES
    for name in ("labels.txt", "class_index.json", "classes.csv", "train.csv", "val.csv"):
        assert name in tree
    return tree


# ------------------------------------------------------------------------------------------------ kill -9
# Seeded kill points: by images written (spread over the whole image phase and both splits: the big val unit
# runs first, then the train classes and the small val unit), by time (a fraction of the uninterrupted build's
# duration: start-up, planning, pool start), and
# one as the last image lands (markers, manifests and build.json are written then). Three trials are killed a
# second time while they resume. Odd trials kill the CLI process only (the OOM killer's
# choice): its workers must not carry on writing into OUT.
def _trials(count: int = 10, seed: int = 20240605) -> list[tuple[int, str, int | None, float, bool, bool]]:
    rng = random.Random(seed)
    trials = []
    for i in range(count):
        by_time = i in (0, 5)
        images = None if by_time else rng.randint(1, TOTAL_IMAGES - 1)
        if i == 9:
            images = TOTAL_IMAGES  # the moment the last image lands: markers, manifests, build.json follow
        trials.append(
            (i, "group" if i % 2 == 0 else "parent", images, rng.uniform(0.05, 0.9), i in (2, 5, 8), by_time)
        )
    return trials


@pytest.mark.parametrize(
    ("trial", "target", "images", "delay", "kill_resume_too", "by_time"),
    _trials(),
    ids=[f"trial{t[0]}-{t[1]}-{'t' if t[5] else t[2]}" for t in _trials()],
)
def test_kill_9_at_random_points_then_resume_gives_the_reference_tree(
    release, reference, reference_seconds, tmp_path, trial, target, images, delay, kill_resume_too, by_time
):
    out = tmp_path / "out"
    whole_group = target == "group"
    if by_time:
        delay *= reference_seconds  # a fraction of the build: fast machines finish a small build in < 1 s
    proc = start(release, out)
    try:
        written = kill_at(proc, out, images, delay, whole_group)
        assert proc.returncode == -signal.SIGKILL, "the kill must land before the build finishes"
        # Workers die with their parent even when only the parent was killed (nothing keeps writing into OUT).
        assert wait_until_gone(proc.pid, 3.0) == []
    finally:
        stop_all(proc)
    if images != TOTAL_IMAGES:  # (at the very end the kill may land after build.json, in the teardown)
        assert not (out / "build.json").exists()
    if images is not None:
        assert written >= images
    if kill_resume_too:
        again = start(release, out)
        try:
            # Second kill: a few more images into the resume (or its planning, when all were done).
            kill_at(again, out, min(TOTAL_IMAGES, images_written(out) + 40), 0.0, whole_group)
            assert wait_until_gone(again.pid, 3.0) == []
        finally:
            stop_all(again)
    resumed = run(build_argv(release, out))
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "build.json").exists()
    # `imagenet-prep check --decode` through the CLI on some trials, the same check in-process on the others.
    assert_complete(out, reference, cli_check=trial % 5 == 0)


# ------------------------------------------------------------------------------------------- Ctrl-C, SIGTERM
@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c-to-the-job", "sigterm-to-the-cli"],
)
def test_interrupt_stops_promptly_with_a_resume_hint_then_resumes(
    release, reference, tmp_path, signum, whole_group
):
    out = tmp_path / "out"
    proc = start(release, out, capture=True)
    try:
        done = out / STATE_DIR / "done"
        while proc.poll() is None and len([p for p in done.glob("*.json") if not p.name.startswith(".")]) < 2:
            time.sleep(0.002)
        assert proc.poll() is None, "the build finished before it could be interrupted"
        sent = time.monotonic()
        if whole_group:
            os.killpg(proc.pid, signum)  # what Ctrl-C in a shell does: the whole foreground job gets it
        else:
            os.kill(proc.pid, signum)
        _, stderr = proc.communicate(timeout=30)
        elapsed = time.monotonic() - sent
        assert wait_until_gone(proc.pid, 3.0) == []
    finally:
        stop_all(proc)
    assert elapsed < 5.0, f"took {elapsed:.1f} s to stop"
    assert proc.returncode == 130
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("imagenet-prep: error: ") and RESUME_HINT in lines[0]
    assert "Traceback" not in stderr
    assert not (out / "build.json").exists()
    assert temp_files(out) == []  # the interrupted run cleaned up after its workers
    resumed = run(build_argv(release, out))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout
    assert_complete(out, reference, cli_check=False)


# ----------------------------------------------------------------------------------------------- power loss
def test_after_a_lost_write_check_finds_it_and_redoing_the_unit_repairs_it(
    release, reference, reference_out, tmp_path
):
    """No per-file fsync: after a power cut a file of a finished unit may come back empty. `check --decode`
    finds it; removing that unit's done marker and re-running redoes exactly that unit."""
    out = tmp_path / "out"
    shutil.copytree(reference_out, out)
    victim = next(rel for rel in sorted(reference) if rel.startswith("train/") and rel.endswith(".JPEG"))
    (out / victim).write_bytes(b"")  # what a lost delayed allocation looks like
    checked = run([sys.executable, "-m", "imagenet_prep", "check", str(out), "--decode"])
    assert checked.returncode == 1 and Path(victim).name in checked.stderr
    wnid = Path(victim).parent.name
    (out / STATE_DIR / "done" / f"train-{wnid}.json").unlink()
    resumed = run(build_argv(release, out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed {UNITS - 1} of {UNITS} units" in resumed.stdout
    assert_complete(out, reference)


# -------------------------------------------------------------------------------------- one build per OUT
def test_a_second_build_into_the_same_out_is_refused_naming_the_first(release, reference, tmp_path):
    out = tmp_path / "out"
    first = start(release, out, capture=True)
    lock = out / STATE_DIR / "lock"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and first.poll() is None:
            if (
                images_written(out) >= 1
                and lock.is_file()
                and lock.read_text().split()[:1] == [str(first.pid)]
            ):
                break
            time.sleep(0.002)
        # Freeze the first build (and its workers) mid-way so the second surely meets it running.
        os.killpg(first.pid, signal.SIGSTOP)
        assert first.poll() is None and not (out / "build.json").exists()
        second = run(build_argv(release, out))
        os.killpg(first.pid, signal.SIGCONT)
        first_out, first_err = first.communicate(timeout=60)
    finally:
        stop_all(first)
    assert second.returncode == 2
    line = second.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert f"pid {first.pid}" in line and str(out) in line
    # The refused build touched nothing: the first one finishes to the reference tree.
    assert first.returncode == 0, first_err
    assert_complete(out, reference, cli_check=False)


def test_a_file_system_without_locks_is_refused_with_a_clear_error(tmp_path, monkeypatch):
    """Lustre mounted without -o flock answers flock() with an error (simulated: it cannot be mounted here)."""

    def no_locks(fd: object, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with (
        pytest.raises(InputError, match="does not support file locks") as raised,
        output_lock(tmp_path / "out"),
    ):
        pass
    assert str(tmp_path / "out") in str(raised.value)


# ------------------------------------------------------------------------------------------------ disk full
@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip(
            "disk-full test needs root to mount a small tmpfs (run the suite as root, e.g. in CI's container)"
        )
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "imagenet-prep-test", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"disk-full test: cannot mount a tmpfs here ({mounted.stderr.strip() or 'mount failed'})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def fill(path: Path, leave: int) -> None:
    """Write a ballast file so that about ``leave`` bytes stay free."""
    ballast = path / "ballast"
    with open(ballast, "wb") as handle, contextlib.suppress(OSError):
        handle.write(b"\0" * max(0, free_bytes(path) - leave))


def test_disk_full_fails_cleanly_and_resumes_once_space_is_freed(release, reference, reference_out, tmp_path):
    """A tmpfs with a ballast file: the build meets ENOSPC at several points (state file, mid-images, near the
    end); each time one clear line and exit 1, no broken file under a final name; after the ballast is removed
    the same command completes to the reference tree."""
    with small_tmpfs(tmp_path / "disk", "24m") as disk:
        # Measure what a whole build needs on this file system (tmpfs charges whole pages per file).
        before = free_bytes(disk)
        shutil.copytree(reference_out, disk / "probe")
        needed = before - free_bytes(disk)
        shutil.rmtree(disk / "probe")
        page = os.statvfs(disk).f_frsize
        assert needed > 100 * page
        failures = []
        for leave in (0, needed // 2, needed - 8 * page):
            out = disk / f"out-{leave}"
            fill(disk, leave)
            failed = run(build_argv(release, out))
            assert failed.returncode == 1, (leave, failed.stderr)
            line = failed.stderr.strip()
            assert len(line.splitlines()) == 1 and "Traceback" not in line, line
            assert "full" in line and str(disk) in line and RESUME_HINT in line, line
            failures.append(line)
            # Nothing broken under a final name: every image there decodes and equals the reference's bytes.
            assert temp_files(out) == [] if out.exists() else True
            for rel, data in snapshot(out).items() if out.exists() else ():
                if rel.endswith(".JPEG"):
                    assert data == reference[rel], rel
                    with Image.open(io.BytesIO(data)) as image:
                        image.load()
            (disk / "ballast").unlink()
            resumed = run(build_argv(release, out))
            assert resumed.returncode == 0, resumed.stderr
            assert_complete(out, reference, cli_check=leave == 0)
            shutil.rmtree(out)
        assert len(set(failures)) >= 1
