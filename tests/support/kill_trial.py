"""What the kill -9 tests share: the live processes of a session, and the trial that starts a build in a
session of its own, kills its whole process group as soon as one unit is done, and tries again when the kill
came too late (a loaded machine polled after every unit had finished, so nothing was killed mid-build)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from imagenet_prep.build import STATE_DIR
from imagenet_prep.io.atomic import TMP_MARK


def finished_markers(out: Path) -> list[Path]:
    """Done markers written in full (not one still under its temporary name)."""
    return [p for p in (out / STATE_DIR).glob("done/*.json") if not p.name.startswith(TMP_MARK)]


def kill_after_first_unit(argv: list[str], out: Path, units: int, tries: int = 3) -> bool:
    """Run ``argv`` into a fresh ``out`` and kill -9 it once a unit is done; True when the last try killed a
    running build (fewer than ``units`` units done)."""
    killed = False
    for _ in range(tries):
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if finished_markers(out):
                    break
                time.sleep(0.005)
            killed = proc.poll() is None
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        if len(finished_markers(out)) < units:
            break
    return killed


def session_processes(sid: int) -> list[str]:
    """Live (not zombie) processes of a session: the CLI, the forkserver, workers, the resource tracker."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            found.append(f"{pid} {stat.split(' (', 1)[1].split(')')[0]}")
    return found


def wait_until_gone(sid: int, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := session_processes(sid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left
