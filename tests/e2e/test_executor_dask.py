"""The Dask executor on a real `distributed.LocalCluster` (2 worker processes, issue 12 item 1): the same bytes
as a local build; a worker killed mid-unit has its unit run again elsewhere and the build still gives the same
bytes; a worker that cannot see a source file fails the build at once, naming the worker and the path."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import build_argv, snapshot
from support.kill_trial import finished_markers, session_processes, wait_until_gone

from imagenet_prep.build import STATE_DIR, build
from imagenet_prep.config import build_config
from imagenet_prep.errors import UsageError
from imagenet_prep.executors.dask import DaskExecutor
from imagenet_prep.io.atomic import TMP_MARK
from imagenet_prep.outputs.imagefolder_check import check_tree
from imagenet_prep.records import ByteLocation, Sample, WorkUnit
from imagenet_prep.sample import SampleSpec, write_sample

distributed = pytest.importorskip(
    "distributed", reason="needs the dask extra (distributed)"
)  # in the test extra: never skipped here

# 60 images per class unit: wide enough to kill a worker mid-unit.
SPEC = SampleSpec(classes=4, train_per_class=60, val_per_class=2, seed=5)
IMAGES = 4 * 60 + 4 * 2


def options(release, out: Path, **extra: object) -> dict[str, object]:
    return {"source": release.root, "out": out, "resize": "shorter", "size": 64, **extra}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(tmp_path_factory.mktemp("dask-release"), SPEC)


@pytest.fixture(scope="module")
def reference(release, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("dask-reference") / "out"
    assert build(build_config({}, options(release, out, workers=1))).ok
    tree = snapshot(out)
    assert sum(name.endswith(".JPEG") for name in tree) == IMAGES
    return tree


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    ) as started:
        yield started


def test_a_dask_build_gives_the_bytes_of_a_local_build(cluster, release, reference, tmp_path):
    out = tmp_path / "out"
    seen: list[int] = []
    result = build(
        build_config({}, options(release, out, executor="dask", scheduler=cluster.scheduler_address)),
        progress=seen.append,
    )
    assert result.ok and result.images_written == IMAGES
    assert sum(seen) == IMAGES, "progress must count every image, from the futures"
    assert snapshot(out) == reference


def test_a_worker_that_cannot_see_a_source_file_fails_fast_naming_it(cluster, tmp_path):
    executor = DaskExecutor(1, scheduler=cluster.scheduler_address)
    try:
        (tmp_path / STATE_DIR).mkdir()
        ghost = str(tmp_path / "elsewhere" / "ILSVRC2012_img_train.tar")
        sample = Sample("train", "k", "n01440764", 0, "k.JPEG", ByteLocation(ghost, 0, 1))
        unit = WorkUnit("train", "train-n01440764", "ilsvrc", (sample,))
        with pytest.raises(UsageError) as caught:
            executor.preflight([unit], str(tmp_path))
        message = str(caught.value)
        assert "Dask worker tcp://127.0.0.1:" in message and ghost in message and "\n" not in message
        with pytest.raises(UsageError, match="output folder"):
            executor.preflight([], str(tmp_path / "not-there"))
    finally:
        executor.close()


def test_a_worker_killed_mid_unit_has_its_unit_redone_elsewhere_with_the_same_bytes(
    cluster, release, reference, tmp_path
):
    out = tmp_path / "out"
    client = distributed.Client(cluster.scheduler_address)
    outcome: list[object] = []

    def run() -> None:
        try:
            config = build_config(
                {}, options(release, out, executor="dask", scheduler=cluster.scheduler_address)
            )
            outcome.append(build(config))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline and thread.is_alive():
        # A worker in the middle of a unit: it holds a unit task, and that unit's first images are written.
        busy = {
            w: keys for w, keys in client.processing().items() if any("imagenet-prep-" in k for k in keys)
        }
        written = sum(1 for _ in (out / "train").rglob("*.JPEG")) if (out / "train").is_dir() else 0
        if busy and written >= 5:
            worker = sorted(busy)[0]
            pids = client.run(os.getpid, workers=[worker])
            os.kill(pids[worker], signal.SIGKILL)
            killed = worker
        else:
            time.sleep(0.02)
    thread.join(timeout=120)
    client.close()
    assert killed is not None, "the build finished before a worker could be killed mid-unit"
    assert len(outcome) == 1 and not isinstance(outcome[0], BaseException), outcome
    assert outcome[0].images_written == IMAGES  # type: ignore[attr-defined]
    assert snapshot(out) == reference
    leftovers = [p for p in out.rglob("*") if p.name.startswith(TMP_MARK)]
    assert leftovers == []
    assert check_tree(out, decode=True).ok


def test_a_kill_9_of_the_cli_leaves_no_cluster_process_behind_and_the_same_command_finishes(
    release, reference, tmp_path
):
    """``--scheduler local:N`` starts the LocalCluster in the CLI's process: killed with -9 mid-build, its
    worker processes must not outlive it (nothing left writing into OUT), and the same command then finishes
    with the bytes of an uninterrupted build."""
    import subprocess

    out = tmp_path / "out"
    options = ["--resize", "shorter", "--size", "64", "--executor", "dask", "--scheduler", "local:2", "-q"]
    command = build_argv(release.root, out, *options)
    # A session of its own: the LocalCluster's processes (nannies, workers) are in it, whatever their parent.
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        seen: list[str] = []
        while time.monotonic() < deadline and proc.poll() is None:
            cluster = [line for line in session_processes(proc.pid) if not line.startswith(f"{proc.pid} ")]
            seen = max(seen, cluster, key=len)
            if finished_markers(out):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the build finished before it could be killed"
        assert len(seen) >= 2, f"the LocalCluster's worker processes were not seen: {seen}"
        proc.kill()  # the CLI only, not its process group: its cluster must not outlive it
        proc.wait()
        assert wait_until_gone(proc.pid, 30) == [], "cluster processes outlived the killed build"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert snapshot(out) != reference  # it was killed mid-build
    finished = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert finished.returncode == 0, finished.stderr
    assert snapshot(out) == reference


def _cluster_workers(cli_pid: int) -> list[int]:
    """The LocalCluster's worker processes: the CLI's children started by multiprocessing's spawn."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == cli_pid and b"spawn_main" in command and fields[0] not in ("Z", "X"):
            found.append(int(pid))
    return found


@pytest.mark.parametrize("when", ["starting", "mid-build"])
def test_a_local_cluster_worker_killed_leaves_no_traceback_and_a_rerun_gives_the_same_bytes(
    cluster, release, reference, tmp_path, when
):
    """``--scheduler local:2``, one worker process killed with -9 while the cluster starts, or mid-build: the
    build finishes (the unit runs again elsewhere) or fails in one line, never a traceback on stderr; the
    same command then gives the bytes of an uninterrupted build. ``cluster``: another cluster on this machine
    (it holds Dask's default HTTP port), whose presence must not print anything either."""
    import subprocess

    out = tmp_path / "out"
    options = ["--resize", "shorter", "--size", "64", "--executor", "dask", "--scheduler", "local:2", "-q"]
    command = build_argv(release.root, out, *options)
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    killed: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while not killed and time.monotonic() < deadline and proc.poll() is None:
            written = sum(1 for _ in (out / "train").rglob("*.JPEG")) if (out / "train").is_dir() else 0
            workers = _cluster_workers(proc.pid)
            if workers and (when == "starting" or written >= 5):
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
            else:
                time.sleep(0.01)
        _, stderr = proc.communicate(timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert killed, "no cluster worker was seen"
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    if proc.returncode != 0:
        assert len(stderr.strip().splitlines()) == 1, stderr
    else:
        assert snapshot(out) == reference
    again = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert snapshot(out) == reference
