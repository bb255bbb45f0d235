"""The fixed cost of a build (issue 14 item 6): a single-threaded process forks its workers (no forkserver, no
resource tracker); one running other threads starts the forkserver before planning when the build may need the
pool, with SIGINT blocked; both give the same bytes; the config's upper bound of images; done markers written
field by field hold exactly what dataclasses.asdict gave."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from support import build_argv

from imagenet_prep.build.state import marker_path, read_marker, write_marker
from imagenet_prep.config import BuildConfig
from imagenet_prep.records import ImageIssue, ManifestRow, UnitResult, WorkUnit


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from imagenet_prep.sample import SampleSpec, write_sample

    # 66 images: more than IN_PROCESS_MAX, so a build of all of them runs the pool
    spec = SampleSpec(classes=3, train_per_class=20, val_per_class=2, seed=5)
    return write_sample(tmp_path_factory.mktemp("imgphase"), spec)


def _config(**values) -> BuildConfig:
    return BuildConfig(source=Path("/nonexistent-src"), out=Path("/nonexistent-out"), **values)


def test_images_at_most_is_an_upper_bound_only_when_the_config_says_enough():
    assert _config(subset="imagenette", train_per_class=1, val_per_class=1).images_at_most() == 20
    assert _config(subset="imagenette", splits=("val",), val_per_class=3).images_at_most() == 30
    assert (
        _config(classes=("n01440764", "goldfish", " "), train_per_class=5, val_per_class=2).images_at_most()
        == 14
    )
    assert _config(subset="imagenette", train_per_class=1).images_at_most() is None  # val unbounded
    assert _config(train_per_class=1, val_per_class=1).images_at_most() is None  # every class
    assert _config(under="dog.n.01", train_per_class=1, val_per_class=1).images_at_most() is None
    assert _config(subset="no-such-subset", train_per_class=1, val_per_class=1).images_at_most() is None


def test_images_at_most_of_a_class_file_is_unknown(tmp_path):
    listed = tmp_path / "classes.txt"
    listed.write_text("n01440764\nn02102040\n")
    assert _config(classes=(str(listed),), train_per_class=1, val_per_class=1).images_at_most() is None


_PROBE = """
import json, os, signal, sys, threading
from multiprocessing import forkserver
from pathlib import Path
from imagenet_prep.build import orchestrator
from imagenet_prep.config import BuildConfig
from imagenet_prep.executors import local

source, out, per_class, threaded = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == "1"
if threaded:  # what a notebook kernel or a Dask client runs beside the build
    threading.Thread(target=threading.Event().wait, daemon=True).start()

seen = []
plan = orchestrator.make_plan
def traced(*args, **kwargs):
    seen.append(forkserver._forkserver._forkserver_pid)  # the forkserver, as planning starts
    return plan(*args, **kwargs)
orchestrator.make_plan = traced

def _ppid(pid):
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])

pools = []
run_units = local.LocalExecutor.run_units
def recorded(self, *args, **kwargs):
    for result in run_units(self, *args, **kwargs):
        if not pools and self.pool is not None:  # the workers, while they run: their start method and parent
            workers = self.pool._processes.values()
            pools.append((self.pool._mp_context.get_start_method(), sorted({_ppid(p.pid) for p in workers})))
        yield result
local.LocalExecutor.run_units = recorded

config = BuildConfig(source=Path(source), out=Path(out), workers=2, **per_class)
result = orchestrator.build(config)
pid = seen[0]
blocked = None
if pid is not None:
    with open(f"/proc/{pid}/status") as handle:
        mask = next(int(line.split()[1], 16) for line in handle if line.startswith("SigBlk:"))
    blocked = bool(mask & (1 << (signal.SIGINT - 1)))
print(json.dumps({
    "pid_at_plan": pid,
    "forkserver_sigint_blocked": blocked,
    "parent_sigint_blocked": signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []),
    "images": result.images_written,
    "pool": pools[0] if pools else None,
    "me": os.getpid(),
    "forkserver_after": forkserver._forkserver._forkserver_pid,
}))
"""


def _probe(release, tmp_path, name: str, threaded: bool = False, **per_class) -> dict:
    argv = [sys.executable, "-c", _PROBE, str(release.root), str(tmp_path / name), json.dumps(per_class)]
    done = subprocess.run([*argv, "1" if threaded else "0"], capture_output=True, text=True, check=True)
    assert done.stderr == ""  # no warning from the resource tracker or the forkserver
    return json.loads(done.stdout)


def _tree(out: Path) -> dict[str, str]:
    import hashlib

    return {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file() and ".imagenet-prep" not in path.parts and path.name != "build.json"
    }


def test_a_small_build_starts_no_forkserver(release, tmp_path):
    wnid = release.wnids[0]
    got = _probe(release, tmp_path, "small", classes=[wnid], train_per_class=2, val_per_class=1)
    assert got["images"] == 3
    assert got["pid_at_plan"] is None
    assert got["parent_sigint_blocked"] is False


def test_a_threaded_process_starts_the_forkserver_before_planning(release, tmp_path):
    got = _probe(release, tmp_path, "big", threaded=True)  # no per-class limit: unknown before planning
    assert got["images"] == 3 * (20 + 2)
    assert isinstance(got["pid_at_plan"], int)
    assert got["forkserver_sigint_blocked"] is True  # a Ctrl-C never reaches its imports
    assert got["parent_sigint_blocked"] is False  # the parent's own mask is restored
    assert got["pool"][0] == "forkserver"
    assert got["pool"][1] == [got["pid_at_plan"]]  # the workers are the forkserver's children


def test_a_single_threaded_process_forks_its_workers_and_starts_no_forkserver(release, tmp_path):
    got = _probe(release, tmp_path, "forked")
    assert got["images"] == 3 * (20 + 2)
    assert got["pid_at_plan"] is None and got["forkserver_after"] is None  # never started
    assert got["pool"] == ["fork", [got["me"]]]  # the workers are this process's children
    assert got["parent_sigint_blocked"] is False  # blocked only while the workers were forked
    # Same input, same bytes, whichever way the workers started.
    threaded = _probe(release, tmp_path, "threaded", threaded=True)
    assert threaded["pool"][0] == "forkserver"
    assert _tree(tmp_path / "forked") == _tree(tmp_path / "threaded") != {}


def test_marker_rows_and_issues_are_what_asdict_gave(tmp_path):
    unit = WorkUnit("train", "train-n01440764", "ilsvrc", ())
    rows = (
        ManifestRow("train/n01440764/a.JPEG", 0, "n01440764", 256, 341),
        ManifestRow(
            "train/n01440764/b.JPEG",
            0,
            "n01440764",
            64,
            64,
            extra=(("real_labels", "0 3"),),
            boxes=(("n01440764", 1.5, 2.0, 30.25, 40.0),),
        ),
    )
    result = UnitResult(
        "train",
        unit.unit_id,
        rows,
        (ImageIssue("train/n01440764/c.JPEG", "truncated image"),),
        (ImageIssue("train/n01440764/d.JPEG", "cmyk-to-rgb"),),
        1234,
        0.5,
        (("boxes_kept", 1),),
        1,
        (("train/n01440764/a.JPEG", 10), ("train/n01440764/b.JPEG", 20)),
    )
    (tmp_path / ".imagenet-prep" / "done").mkdir(parents=True)
    write_marker(tmp_path, unit, result)
    written = json.loads(marker_path(tmp_path, unit.unit_id).read_text())
    assert written["rows"] == json.loads(
        json.dumps([{k: v for k, v in asdict(row).items() if v != ()} for row in rows])
    )
    assert list(written["rows"][0]) == ["path", "label", "wnid", "width", "height"]
    assert written["skipped"] == [asdict(issue) for issue in result.skipped]
    assert written["repaired"] == [asdict(issue) for issue in result.repaired]
    assert read_marker(tmp_path, unit) == result


def test_a_refused_build_with_the_forkserver_started_prints_only_its_error(release, tmp_path):
    out = tmp_path / "refused"
    command = build_argv(release.root, out, "--workers", "2", "--quiet")
    subprocess.run(command, check=True, capture_output=True)
    refused = subprocess.run([*command, "--size", "64"], capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "different configuration" in refused.stderr


def test_workers_of_the_console_script_do_not_import_the_cli_again(tmp_path):
    """Run from the ``imagenet-prep`` script, multiprocessing re-ran that script in every worker (importing the
    CLI and Typer there); with ``__main__`` given the package's spec, only the parent imports the CLI."""
    import os
    import shutil

    from imagenet_prep.sample import SampleSpec, write_sample

    script = shutil.which("imagenet-prep")
    assert script is not None, "the package's console script is installed (pip install -e .)"
    release = write_sample(
        tmp_path / "rel", SampleSpec(classes=3, train_per_class=20, val_per_class=2, seed=6)
    )
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    argv = [script, "build", "--source", str(release.root), "--out", str(tmp_path / "out"), "--size", "32"]
    done = subprocess.run(
        [*argv, "--workers", "2", "-q"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imports = [
        line for line in done.stderr.splitlines() if line.rstrip().endswith("imagenet_prep.cli.build_cmd")
    ]
    assert (tmp_path / "out" / "build.json").is_file()
    assert len(imports) == 1, imports  # the parent's; 3 before (the parent and each of the 2 workers)


_FORK_PROBE = """
import json, os, sys
from pathlib import Path
from imagenet_prep.build.state import output_lock
from imagenet_prep.errors import OutputLockedError
from imagenet_prep.io import http
from imagenet_prep.sources import streamed

out = Path(sys.argv[1])
http.session_for("http://127.0.0.1:9/archive.tar")  # a keep-alive session (no request made)
streamed._cursors()["archive"] = object()  # a kept cursor (an open file in real use)
to_parent, from_child = os.pipe()
to_child, from_parent = os.pipe()
with output_lock(out):
    pid = os.fork()
    if pid == 0:  # a worker, as a fork pool makes it
        seen = {"sessions": len(http._SESSIONS), "cursors": len(streamed._cursors())}
        os.write(from_child, json.dumps(seen).encode())
        os.read(to_child, 1)  # alive until the parent has tried the lock again
        os._exit(0)
    report = json.loads(os.read(to_parent, 1000))
try:  # the parent let go of OUT while its worker lives on: the next build must get in
    with output_lock(out):
        report["relocked"] = True
except OutputLockedError as exc:
    report["relocked"] = str(exc)
os.write(from_parent, b"x")
os.waitpid(pid, 0)
report["parent_sessions"] = len(http._SESSIONS)
print(json.dumps(report))
"""


def test_a_forked_worker_keeps_no_connection_cursor_or_lock_of_its_parent(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _FORK_PROBE, str(tmp_path / "out")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == {"sessions": 0, "cursors": 0, "relocked": True, "parent_sessions": 1}


def test_a_build_on_a_terminal_draws_its_bar_and_still_forks_its_workers(release, tmp_path):
    """tqdm's monitor thread would make the CLI a threaded process (and its workers forkserver children).
    The release's index and devkit caches are made first: parsing meta.mat imports numpy, whose BLAS threads
    rightly keep a cold first build on the forkserver."""
    import contextlib
    import fcntl
    import os
    import pty
    import struct
    import termios
    import time

    warm = build_argv(release.root, tmp_path / "warm", "--size", "32", "-q")
    subprocess.run(warm, check=True, capture_output=True)
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal's size
    argv = build_argv(release.root, tmp_path / "out", "--size", "32", "--workers", "2")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    helpers: set[str] = set()
    seen = b""
    os.set_blocking(primary, False)
    while proc.poll() is None:
        for entry in os.listdir("/proc"):  # the CLI's children: its workers, or a forkserver and tracker
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as handle:
                        parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                    with open(f"/proc/{entry}/cmdline", "rb") as handle:
                        cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
                except (OSError, ValueError, IndexError):
                    continue
                if parent == proc.pid:
                    helpers.add(cmdline[:160])
        with contextlib.suppress(BlockingIOError, OSError):
            seen += os.read(primary, 65536)
        time.sleep(0.01)
    while True:  # what the terminal holds after the exit
        try:
            chunk = os.read(primary, 65536)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert proc.returncode == 0
    assert b"img" in seen  # a tqdm bar was drawn on the terminal
    assert helpers, "the CLI's workers were seen"
    assert not any("forkserver" in line or "resource_tracker" in line for line in helpers), helpers
