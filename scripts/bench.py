#!/usr/bin/env python3
"""Benchmark `imagenet-prep build` against the Pillow floor and a naive extract-then-resize script.

What is timed, per run and per workload (shorter-256 q90, square-64 q90), with the same worker count:

- build: the library's ``build()`` (quiet progress, a fresh OUT each run) on a realistic sample release;
- floor: the same Pillow operations (``imaging.floor_process``) on the same image bytes, already in each
  worker's memory (loaded before timing), no file I/O, a pool of the same size;
- naive: extract every tar to disk (outer, each class tar, val), then a pool of
  open -> convert('RGB') -> resize (same geometry and filter, no draft mode) -> save JPEG (same quality); an image
  that needs no resize is copied, as the build passes it through. The time includes the extraction;
- build with 1 worker (for the scaling figure), and the CLI in a fresh process (start-up included, for reference).

Variants are interleaved within each run (their order rotates from run to run) so that they share the noise of
a busy machine; ratios are taken within a run, and medians over runs are reported. Nothing is deleted between
timed runs: on a journal-less ext4 (as here) the kernel will not reuse an inode freed in the last 60 s (360 s
while its inode table block is not yet written back), and it finds that out by reading each such free inode's
deletion time as it looks for one to allocate (``recently_deleted`` in fs/ext4/ialloc.c; ``perf record`` shows
it and ``find_get_block`` on top of a slow create). So, for some minutes after thousands of files were deleted
in a block group, each file created there costs 0.1-0.8 ms of system time instead of 0.02-0.05 ms. The bench
waits (``--max-wait``) until a probe creates files cheaply before its timed runs. Run folders are deleted at
the end (unless --keep); the sample releases are kept in OUT for the next invocation.

Also measured: peak RSS per worker (VmHWM of the pool processes, polled), and the subset cost: bytes read from
the archives when building 1 class of a 100-class release with a cold index (from build.json "bytes_read").

Example:

    python scripts/bench.py --images 2000 --runs 3 --workers 2 --out bench-out/

Results go to OUT/results.json; a summary is printed. ``--quick`` instead runs one short pass with a figure for
each performance item (OUT/results-quick.json; see docs/performance.md, "Quick bench"); ``--sources``,
``--winter21``, ``--outputs``, ``--generative``, ``--scale`` and ``--remote`` run one section each.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import gzip
import io
import itertools
import json
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image, features

from imagenet_prep import __version__, classes
from imagenet_prep.build import build
from imagenet_prep.config import BuildConfig
from imagenet_prep.image import process as imaging
from imagenet_prep.image.process import ImageOptions, floor_process, target_size
from imagenet_prep.io import tar, tar_index
from imagenet_prep.sample import SampleSpec, write_sample

WORKLOADS: dict[str, dict[str, Any]] = {
    "shorter-256": {"resize": "shorter", "size": 256, "quality": 90},
    "square-64": {"resize": "square", "size": 64, "quality": 90},
}
# Issue 5's targets: (workload, what, minimum).
TARGETS = {
    "shorter-256": {"build/floor": 0.9, "build/naive": 1.8},
    "square-64": {"build/floor": 0.8, "build/naive": 3.5},
}
TARGET_RSS_MB = 300
TARGET_SCALING = 1.8
TARGET_SUBSET_FRACTION = 0.02
TARGET_FAST = 1.5
PSNR_SAMPLE = 300  # images compared for the fast resizer's PSNR
SLOW_CREATE_MS = 0.15  # clean: 0.02-0.05 ms per file here; minutes after deleting thousands: 0.3-1 ms
VAL_PER_CLASS = 5
REPO = Path(__file__).resolve().parent.parent
SUBSET_CLASSES = 100


# ------------------------------------------------------------------------------------------- release
def ensure_release(folder: Path, spec: SampleSpec) -> Path:
    """Write the sample release once; reuse it while its spec matches (stored beside it)."""
    stamp = folder / "bench-spec.json"
    wanted = json.dumps({**asdict(spec), "version": __version__}, sort_keys=True)
    if stamp.exists() and stamp.read_text() == wanted and (folder / "MD5SUMS").exists():
        return folder
    write_sample(folder, spec, overwrite=True)
    stamp.write_text(wanted)
    return folder


def ensure_layouts(folder: Path, spec: SampleSpec, layouts: tuple[str, ...]) -> Path:
    """The same sample release in ``layouts`` (``folder/<layout>``), written once; reused while its spec
    matches (stored beside it)."""
    from imagenet_prep.sample.repack import write_layouts

    stamp = folder / "bench-spec.json"
    wanted = json.dumps({**asdict(spec), "version": __version__, "layouts": layouts}, sort_keys=True)
    if not (stamp.exists() and stamp.read_text() == wanted):
        shutil.rmtree(folder, ignore_errors=True)
        write_layouts(folder, spec, layouts)
        stamp.write_text(wanted)
    return folder


def clear_index_caches(folder: Path) -> None:
    for path in folder.glob("*.index.json"):
        path.unlink()


def write_blob(release: Path, blob: Path) -> list[int]:
    """Every image the build processes (all train classes, all val), as stored in the archives, end to end in
    one file; returns the offsets (n + 1). Streamed: this process must stay small, its pools fork from it."""
    offsets = [0]
    with open(blob, "wb") as handle:
        with tar_index.TrainArchive(release / "ILSVRC2012_img_train.tar") as train:
            members = [(train.source, m) for wnid in train.classes() for m in train.members(wnid)]
            for source, member in members:
                offsets.append(offsets[-1] + handle.write(tar.read_member(source, member)))
        with tar_index.ValArchive(release / "ILSVRC2012_img_val.tar") as val:
            for member in val.members():
                offsets.append(offsets[-1] + handle.write(tar.read_member(val.source, member)))
    return offsets


# -------------------------------------------------------------------------------------- RSS watcher
def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                kids.extend(int(x) for x in handle.read().split())
    except OSError:
        pass
    return kids


def _status(pid: int) -> tuple[int, str] | None:
    """(VmHWM in kB, cmdline) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            hwm = next((int(line.split()[1]) for line in handle if line.startswith("VmHWM:")), 0)
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmd = handle.read().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return None
    return hwm, cmd


class WorkerWatcher:
    """Polls the peak RSS (VmHWM) of the pool workers below this process: the children, and the children of
    a forkserver; the forkserver itself, the resource tracker and subprocess CLIs' helpers are told apart by
    their command lines."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> WorkerWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def _poll(self) -> None:
        me = os.getpid()
        for child in _children(me):
            info = _status(child)
            if info is None or "resource_tracker" in info[1]:
                continue
            if "forkserver" in info[1]:  # its children are the build's workers
                for worker in _children(child):
                    winfo = _status(worker)
                    if winfo is not None:
                        self.peaks[worker] = max(self.peaks.get(worker, 0), winfo[0])
            elif "imagenet_prep" not in info[1]:  # not a CLI subprocess: a fork-pool worker
                self.peaks[child] = max(self.peaks.get(child, 0), info[0])

    @property
    def max_mb(self) -> float | None:
        return max(self.peaks.values()) / 1024 if self.peaks else None


# ------------------------------------------------------------------------------------------ CPU meter
_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """CPU seconds of a process and of its children it has waited for (a forkserver reaps the workers)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / _TICK  # utime, stime, cutime, cstime


def _forkservers() -> list[int]:
    return [pid for pid in _children(os.getpid()) if "forkserver" in (_status(pid) or (0, ""))[1]]


def _system_busy() -> float:
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    return (
        sum(values[:3]) + sum(values[5:8])
    ) / _TICK  # user nice system irq softirq steal (not idle, iowait)


class CpuMeter:
    """CPU seconds used by this process, its waited-for children and its forkserver's workers, and the cores
    the rest of the machine kept busy meanwhile (``other_cores``: the noise of this measurement)."""

    def _read(self) -> tuple[float, float, dict[int, float], float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        servers = {pid: _proc_cpu(pid) for pid in _forkservers()}
        return (
            time.perf_counter(),
            me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
            servers,
            _system_busy(),
        )

    def __enter__(self) -> CpuMeter:
        self._start = self._read()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._read()
        wall = end[0] - self._start[0]
        servers = sum(cpu - self._start[2].get(pid, 0.0) for pid, cpu in end[2].items())
        self.cpu = end[1] - self._start[1] + servers
        self.other_cores = max(0.0, (end[3] - self._start[3] - self.cpu) / wall) if wall > 0 else 0.0


# ----------------------------------------------------------------------------------------- variants
_FLOOR: dict[str, Any] = {}


def _floor_init(blob_path: str, offsets: list[int], options: ImageOptions, barrier: Any) -> None:
    _FLOOR["blob"] = Path(blob_path).read_bytes()  # this worker's own copy: bytes in memory before timing
    _FLOOR["offsets"] = offsets
    _FLOOR["options"] = options
    barrier.wait()


def _floor_one(index: int) -> float:
    """Process one image; returns the CPU seconds it took in this worker."""
    started = time.process_time()
    offsets = _FLOOR["offsets"]
    floor_process(_FLOOR["blob"][offsets[index] : offsets[index + 1]], _FLOOR["options"])
    return time.process_time() - started


def run_floor(blob: Path, offsets: list[int], options: ImageOptions, workers: int) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(workers + 1)
    count = len(offsets) - 1
    with WorkerWatcher() as watcher:
        pool = context.Pool(workers, initializer=_floor_init, initargs=(str(blob), offsets, options, barrier))
        try:
            barrier.wait()  # every worker holds the bytes: start the clock
            before = _pool_cpu(pool)
            with CpuMeter() as meter:
                started = time.perf_counter()
                cpu = sum(pool.map(_floor_one, range(count), chunksize=8))
                seconds = time.perf_counter() - started
                # The workers' whole CPU while timed (the pool's IPC included, loading the bytes not), and this
                # process's (the pool's threads, the RSS watcher): what the build's CPU figure counts too.
                whole = _pool_cpu(pool) - before
        finally:
            pool.close()
            pool.join()
    return {
        "seconds": seconds, "images": count, "peak_rss_mb": watcher.max_mb, "cpu": whole + meter.cpu,
        "cpu_images_only": cpu, "other_cores": max(0.0, meter.other_cores - whole / seconds),
    }  # fmt: skip


def _pool_cpu(pool: Any) -> float:
    """CPU seconds the live workers of a multiprocessing pool have used so far."""
    return sum(_proc_cpu(process.pid) for process in pool._pool)


def _naive_one(job: tuple[str, str, dict[str, Any]]) -> None:
    src, dst, opts = job
    options = ImageOptions(**opts)
    im = Image.open(src)
    out = target_size(im.size[0], im.size[1], options)
    if out is None:  # nothing to resize: copy it (what the build's pass-through writes, too)
        im.close()
        shutil.copyfile(src, dst)
        return
    im = im.convert("RGB").resize(out, options.filter.pillow)
    im.save(dst, "JPEG", quality=options.quality)


def run_naive(release: Path, work: Path, options: ImageOptions, workers: int) -> dict[str, Any]:
    """Extract everything, then resize with a Pool: the common ImageNet prep script."""
    opts = {"resize": options.resize.value, "size": options.size, "quality": options.quality}
    context = multiprocessing.get_context("fork")  # Pool()'s default on Linux
    val_label = dict(enumerate(classes.val_labels(), 1))
    with WorkerWatcher() as watcher, CpuMeter() as meter:
        started = time.perf_counter()
        extracted = work / "extracted"
        with tarfile.open(release / "ILSVRC2012_img_train.tar") as tar:
            tar.extractall(extracted / "train-tars", filter="data")
        jobs = []
        for class_tar in sorted((extracted / "train-tars").glob("*.tar")):
            folder = extracted / "train" / class_tar.stem
            with tarfile.open(class_tar) as tar:
                tar.extractall(folder, filter="data")
            (work / "out" / "train" / class_tar.stem).mkdir(parents=True)
            jobs.extend(
                (str(p), str(work / "out" / "train" / class_tar.stem / p.name), opts)
                for p in folder.iterdir()
            )
        with tarfile.open(release / "ILSVRC2012_img_val.tar") as tar:
            tar.extractall(extracted / "val", filter="data")
        for path in sorted((extracted / "val").iterdir()):
            wnid = val_label[int(path.stem.rsplit("_", 1)[1])]
            dest = work / "out" / "val" / wnid
            dest.mkdir(parents=True, exist_ok=True)
            jobs.append((str(path), str(dest / path.name), opts))
        extract_seconds = time.perf_counter() - started
        with context.Pool(workers) as pool:
            pool.map(_naive_one, jobs)
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds, "images": len(jobs), "peak_rss_mb": watcher.max_mb, "cpu": meter.cpu,
        "other_cores": meter.other_cores, "extract_seconds": extract_seconds,
    }  # fmt: skip


def _build_config(release: Path, out: Path, options: ImageOptions, workers: int, **extra: Any) -> BuildConfig:
    return BuildConfig(source=release, out=out, workers=workers, image=options, **extra)


def run_build(release: Path, out: Path, options: ImageOptions, workers: int, **extra: Any) -> dict[str, Any]:
    """The library's build (``extra``: other config keys, e.g. an output), timed with its CPU and worker RSS."""
    with WorkerWatcher() as watcher, CpuMeter() as meter:
        started = time.perf_counter()
        result = build(_build_config(release, out, options, workers, **extra), progress=lambda n: None)
        seconds = time.perf_counter() - started
    record = json.loads((out / "build.json").read_text())
    return {
        "seconds": seconds,
        "images": result.images_written + len(result.skipped),
        "peak_rss_mb": watcher.max_mb if workers > 1 else None,  # 1 worker runs in this process
        "cpu": meter.cpu,
        "other_cores": meter.other_cores,
        "timings": record.get("timings"),
    }


def cli_environment(bytecode_cache: Path | None) -> dict[str, str]:
    """The CLI's environment. With ``bytecode_cache``, Python may write and read compiled modules there
    (``PYTHONPYCACHEPREFIX``), as an installed package has them (pip compiles at install; an editable install
    writes __pycache__ on first use); without, it runs as this environment says (a ``PYTHONDONTWRITEBYTECODE=1``
    here makes every fresh process compile the package's ~80 modules: ~0.1-0.2 s of CPU in the CLI and again
    in its forkserver)."""
    env = dict(os.environ)
    if bytecode_cache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache)
    return env


def _become_subreaper() -> bool:
    """Have the CLI's orphans (its forkserver, whose CPU includes the workers', and resource tracker) reparented
    to this process, so that waiting for them adds their CPU to RUSAGE_CHILDREN (Linux only)."""
    try:
        import ctypes

        return ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def run_cli(
    release: Path, out: Path, options: ImageOptions, workers: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "imagenet_prep", "build", "--source", str(release), "--out", str(out),
        "--resize", options.resize.value, "--size", str(options.size), "--quality", str(options.quality),
        "--workers", str(workers), "--quiet",
    ]  # fmt: skip
    reaper = _become_subreaper()
    mine = set(_children(os.getpid()))
    # The RSS watcher too (its /proc polling is CPU of this process), as for the in-process build it is compared to.
    with WorkerWatcher(), CpuMeter() as meter:
        started, started_at = time.perf_counter(), time.time()
        subprocess.run(command, check=True, capture_output=True, env=env)
        seconds = time.perf_counter() - started
        ended_at = time.time()
        for orphan in set(_children(os.getpid())) - mine:  # the CLI's forkserver and resource tracker
            with contextlib.suppress(ChildProcessError):
                os.waitpid(orphan, 0)  # they exit once the CLI has: its end of their pipes closed
    record = json.loads((out / "build.json").read_text())
    images = sum(split["images"] for split in record["counts"].values())
    # The CLI's timeline from the images' mtimes: what comes before the first image (start-up and plan), the
    # images phase (compared with the floor's time), and what follows the last one (manifests, exit).
    stamps = sorted(path.stat().st_mtime for split in ("train", "val") for path in (out / split).rglob("*.*"))
    timeline = (
        {
            "first_image_s": stamps[0] - started_at,
            "images_span_s": stamps[-1] - stamps[0],
            "after_last_image_s": ended_at - stamps[-1],
        }  # fmt: skip
        if stamps
        else None
    )
    return {
        "seconds": seconds,
        "images": images,
        "timeline": timeline,
        "peak_rss_mb": None,
        "cpu": meter.cpu
        if reaper
        else None,  # the CLI, its forkserver and workers (reaped by the forkserver)
        "other_cores": meter.other_cores,
    }


def wait_for_cheap_creates(work: Path, max_wait: float) -> float:
    """Creating a file right after many deletions costs 10-30x more here (see the module doc): wait, within
    limits, until it is cheap again, so that the build and the naive script are not charged for it."""
    waited = 0.0
    while True:
        cost = create_cost_ms(work / f"probe-{int(waited)}")
        print(f"file-create cost here now: {cost:.2f} ms", flush=True)
        if cost <= SLOW_CREATE_MS or waited >= max_wait:
            return cost
        time.sleep(20)
        waited += 20


def create_cost_ms(folder: Path, dirs: int = 40, per_dir: int = 5) -> float:
    """Kernel time to create a small file here now, in new folders like the build's class folders (ext4
    spreads new folders over block groups, and the slowness is per group). The files stay until the end."""
    started = time.perf_counter()
    for d in range(dirs):
        sub = folder / f"d{d}"
        sub.mkdir(parents=True)
        for i in range(per_dir):
            fd = os.open(sub / f"probe-{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"x" * 4096)
            os.close(fd)
    return (time.perf_counter() - started) / (dirs * per_dir) * 1000


def fast_psnr(
    blob: Path, offsets: list[int], options: ImageOptions, sample: int = PSNR_SAMPLE
) -> dict[str, float]:
    """PSNR of the fast resizer's pixels against Pillow's (same decode, before encoding) over a sample."""
    import numpy as np

    fast = dataclasses.replace(options, resizer="fast")
    values = []
    with open(blob, "rb") as handle:
        for index in range(0, len(offsets) - 1, max(1, (len(offsets) - 1) // sample)):
            handle.seek(offsets[index])
            data = handle.read(offsets[index + 1] - offsets[index])
            images = []
            for opts in (options, fast):
                im = Image.open(io.BytesIO(data))
                out = target_size(im.size[0], im.size[1], opts)
                if out is None:
                    break
                images.append(np.asarray(imaging._decode_resized(im, out, opts), dtype=np.float64))
            if len(images) == 2:
                mse = float(((images[0] - images[1]) ** 2).mean())
                values.append(99.0 if mse == 0 else 10 * np.log10(255**2 / mse))
    return {"min": min(values), "median": statistics.median(values), "images": len(values)}


# ------------------------------------------------------------------------------------------- subset
def subset_cost(out: Path, work: Path) -> dict[str, Any]:
    """Bytes read from the archives to build 1 class (1%) of a 100-class release, cold index."""
    release = ensure_release(
        out / f"release-{SUBSET_CLASSES}",
        SampleSpec(classes=SUBSET_CLASSES, train_per_class=10, val_per_class=VAL_PER_CLASS, realistic=True),
    )
    clear_index_caches(release)
    wnid = sorted(tar_index.TrainArchive(release / "ILSVRC2012_img_train.tar").classes())[0]
    clear_index_caches(release)  # listing the classes above wrote nothing, but be sure the build starts cold
    dest = work / "subset"
    build(_build_config(release, dest, ImageOptions(), 1, classes=(wnid,)))
    record = json.loads((dest / "build.json").read_text())
    read = record["bytes_read"]
    index, images = (read["index"], read["images"]) if isinstance(read, dict) else (None, read)
    total = sum(
        (release / name).stat().st_size for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
    )
    got = (index or 0) + images
    return {
        "classes": f"1 of {SUBSET_CLASSES}",
        "archive_bytes": total,
        "bytes_read_index": index,
        "bytes_read_images": images,
        "fraction": got / total,
        "index_counted": index is not None,
    }


# ---------------------------------------------------------------------------------------- scale out (issue 12)
def _tree(out: Path) -> dict[str, bytes]:
    """Every output file but build.json and the state folder (what must be byte-identical)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".imagenet-prep" not in p.relative_to(out).parts and p.name != "build.json"
    }


def scale_section(out: Path, workers: int, runs: int) -> dict[str, Any]:
    """Dask LocalCluster vs the local pool (shorter-256), N shards + finalize vs one build, and a remote
    Imagenette subset over HTTP (bytes transferred, index requests per class tar)."""
    import distributed

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

    from imagenet_prep.build.orchestrator import finalize

    results: dict[str, Any] = {}
    release = ensure_release(
        out / "release-scale",
        SampleSpec(classes=8, train_per_class=35, val_per_class=5, realistic=True, seed=12),
    )
    work = out / f"scale-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    options = ImageOptions()  # shorter-256 q90
    # 1. Dask vs the local pool: images-phase throughput (build.json timings), interleaved runs, one cluster.
    with distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    ) as cluster:
        ratios, local_s, dask_s = [], [], []
        reference = None
        for run in range(runs):
            timings = {}
            for name, extra in (
                ("local", {}),
                ("dask", {"executor": "dask", "scheduler": cluster.scheduler_address}),
            ):
                dest = work / f"{name}-{run}"
                result = build(_build_config(release, dest, options, workers, **extra))
                timings[name] = json.loads((dest / "build.json").read_text())["timings"]["images"]
                tree = _tree(dest)
                reference = reference or tree
                assert tree == reference, f"{name} build differs from the local build"
                images = result.images_written
            local_s.append(timings["local"])
            dask_s.append(timings["dask"])
            ratios.append(timings["local"] / timings["dask"])
    results["dask_vs_local"] = {
        "images": images,
        "workers": workers,
        "local_images_seconds": median(local_s),
        "dask_images_seconds": median(dask_s),
        "throughput_ratio": median(ratios),
        "target": ">= 0.85",
        "same_bytes": True,
    }
    # 2. Three shard processes at once (1 worker each) + finalize vs one build (``workers`` workers).
    one = work / "one"
    started = time.perf_counter()
    build(_build_config(release, one, options, workers))
    one_s = time.perf_counter() - started
    sharded = work / "sharded"
    command = [
        sys.executable,
        "-m",
        "imagenet_prep",
        "build",
        "--source",
        str(release),
        "--out",
        str(sharded),
    ]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*command, "--workers", "1", "--quiet", "--num-shards", "3", "--shard-index", str(i)]
        )
        for i in range(3)
    ]
    assert all(proc.wait() == 0 for proc in procs)
    shards_s = time.perf_counter() - started
    finalize(sharded)
    total_s = time.perf_counter() - started
    assert _tree(sharded) == _tree(one), "shards + finalize differ from one build"
    results["shards_vs_one"] = {
        "one_build_seconds": round(one_s, 2),
        "three_shards_seconds": round(shards_s, 2),
        "shards_plus_finalize_seconds": round(total_s, 2),
        "same_bytes": True,
        "note": "each shard process pays the CLI start-up and plans the whole build (index cache shared)",
    }
    # 3. Remote Imagenette from full-layout train + val archives.
    results.update(remote_subset_section(out, workers))
    shutil.rmtree(work, ignore_errors=True)
    return results


def remote_subset_section(out: Path, workers: int) -> dict[str, Any]:
    """Imagenette over HTTP from full-layout train + val archives of 1000 classes with realistic image sizes
    (~80 KB: the per-header index reads weigh what they weigh on the real release), counted by the loopback
    server: bytes transferred vs the archives' size, the tree vs the local build's, index requests per class tar.
    The release (4,000 realistic images, ~330 MB) is written once and reused."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from http_server import ArchiveServer

    results: dict[str, Any] = {}
    work = out / f"remote-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    big = ensure_release(
        out / "release-1000-realistic",
        SampleSpec(classes=1000, train_per_class=3, val_per_class=1, realistic=True, seed=2),
    )
    files = {p.name: p.read_bytes() for p in big.iterdir() if p.is_file() and p.name.startswith("ILSVRC2012")}
    local = work / "imagenette-local"
    build(_build_config(big, local, ImageOptions(size=64), workers, subset="imagenette"))
    archives = len(files["ILSVRC2012_img_train.tar"]) + len(files["ILSVRC2012_img_val.tar"])
    saved_cache = os.environ.get("IMAGENET_PREP_CACHE")
    try:
        for label, spool in (("remote_imagenette", None), ("remote_imagenette_no_spool", "0")):
            os.environ["IMAGENET_PREP_CACHE"] = str(work / f"cache-{label}")  # cold: index and spool anew
            if spool is not None:
                os.environ["IMAGENET_PREP_SPOOL_MAX"] = spool
            with ArchiveServer(files) as server:
                remote = work / label
                build(_build_config(server.url, remote, ImageOptions(size=64), workers, subset="imagenette"))  # type: ignore[arg-type]
                served = sum(s.body_bytes for s in server.seen if "devkit" not in s.path)
                requests = sum(1 for s in server.seen if "devkit" not in s.path)
                assert _tree(remote) == _tree(local), "the remote build differs from the local build"
                results[label] = {
                    "archive_bytes": archives,
                    "bytes_transferred": served,
                    "fraction": served / archives,
                    "requests": requests,
                    "target": "<= 0.02",
                    "same_tree_as_local": True,
                }
                if spool is None:
                    before = len(server.seen)
                    with tar_index.TrainArchive(
                        server.url + "ILSVRC2012_img_train.tar", cache_dir=work / "idx"
                    ) as archive:
                        listed = archive.classes()
                        for wnid in sorted(listed)[:50]:
                            archive.members(wnid)
                    index_requests = len(server.seen) - before
                    results[label]["index_requests_outer_1000_plus_inner_50"] = index_requests
                    results[label]["index_requests_per_class_tar"] = (index_requests - 1000) / 50 + 1
                    results[label]["target_index"] = "<= 3 per class tar + a constant"
    finally:
        os.environ.pop("IMAGENET_PREP_SPOOL_MAX", None)
        if saved_cache is None:
            os.environ.pop("IMAGENET_PREP_CACHE", None)
        else:
            os.environ["IMAGENET_PREP_CACHE"] = saved_cache
    # The same reads on the real release (sizes from formats.md): the index costs are per header (1,000 class
    # tars, 50,000 val images, 513 bytes each), the subset's class tars cross once (the spool), its val images
    # once, plus a one-byte version check per unit.
    real_archives = 147_897_477_120 + 6_744_924_160
    real_read = 1000 * 513 + 50_000 * 513 + 10 * 1300 * 110_000 + 500 * 128_000 + 12
    results["remote_imagenette"]["real_release_model_fraction"] = real_read / real_archives
    shutil.rmtree(work, ignore_errors=True)
    return results


# ------------------------------------------------------------------------------------------ sources
# Issue 10's targets: build rate from a layout / from the official tars, in the same run.
SOURCE_TARGETS = {
    "hf-tar": 0.85,
    "kaggle-zip": 0.95,
    "kaggle": 0.95,
    "imagefolder": 0.95,
    "blurred": 0.85,  # issue 25: a split's stream is cut into units, built on every core
}
# A real streamed build cuts each stream into units of 250 samples (thousands of units); this release of a few
# hundred images would have one or two per stream, which measures how two units balance, not the per-worker
# cursors: units of 30 here, as in the winter21 section (ignored by versions that build one unit per stream).
STREAM_UNIT_SIZE = 30
SOURCE_LAYOUTS = ("ilsvrc", "kaggle", "kaggle-zip", "hf-tar", "hf-parquet", "blurred", "imagefolder")


def bench_sources(args: argparse.Namespace, out: Path) -> int:
    """Builds of one realistic release from every layout (shorter-256, interleaved, ratios per run)."""
    from imagenet_prep.sample.repack import write_layouts

    train_per_class = max(1, -(-(args.images - args.classes * VAL_PER_CLASS) // args.classes))
    spec = SampleSpec(
        classes=args.classes, train_per_class=train_per_class, val_per_class=VAL_PER_CLASS, realistic=True
    )
    print(f"sample release in {len(SOURCE_LAYOUTS)} layouts ...", flush=True)
    folder = ensure_layouts(out / "sources-release", spec, SOURCE_LAYOUTS)
    from imagenet_prep.sources import streamed

    streamed.StreamedSource.UNIT_SIZE = STREAM_UNIT_SIZE
    work = out / f"sources-runs-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    work.mkdir()
    runs = interleaved(
        layout_builds(folder, SOURCE_LAYOUTS, args.workers),
        work,
        args.runs,
        lambda r, record: print(
            f"run {r + 1}/{args.runs}: " + ", ".join(f"{k} {v['per_s']:.0f}/s" for k, v in record.items())
        ),
    )
    ratios = {
        layout: median([run_[layout]["per_s"] / run_["ilsvrc"]["per_s"] for run_ in runs])
        for layout in SOURCE_LAYOUTS
        if layout != "ilsvrc"
    }
    # The same ratios in CPU time (build process + workers), which other processes on a busy machine barely move.
    cpu_ratios = {
        layout: median([run_["ilsvrc"]["cpu"] / run_[layout]["cpu"] for run_ in runs])
        for layout in SOURCE_LAYOUTS
        if layout != "ilsvrc"
    }
    busy = median([v["other_cores"] for run_ in runs for v in run_.values()])
    # Subset cost from the zip: 1 class of a 100-class release, cold (the zip listing is not cached).
    subset_spec = SampleSpec(
        classes=SUBSET_CLASSES, train_per_class=10, val_per_class=VAL_PER_CLASS, realistic=True
    )
    subset_folder = out / f"sources-release-{SUBSET_CLASSES}"
    if not (subset_folder / "kaggle-zip").exists():
        write_layouts(subset_folder, subset_spec, ("kaggle-zip",))
    zip_path = subset_folder / "kaggle-zip" / "imagenet-object-localization-challenge.zip"
    wnid = sorted(classes.subset_wnids("imagenette"))[0]
    dest = work / "subset-zip"
    build(_build_config(subset_folder / "kaggle-zip", dest, ImageOptions(), 1, classes=(wnid,)))
    read = json.loads((dest / "build.json").read_text())["bytes_read"]
    subset = {
        "classes": f"1 of {SUBSET_CLASSES}",
        "zip_bytes": zip_path.stat().st_size,
        "bytes_read_index": read["index"],
        "bytes_read_images": read["images"],
        "fraction": (read["index"] + read["images"]) / zip_path.stat().st_size,
    }
    checks = [
        (f"{layout}/ilsvrc >= {minimum}", ratios[layout], ratios[layout] >= minimum)
        for layout, minimum in SOURCE_TARGETS.items()
    ]
    checks.append(
        (f"1% subset from the zip reads <= {TARGET_SUBSET_FRACTION:.0%}", subset["fraction"],
         subset["fraction"] <= TARGET_SUBSET_FRACTION)
    )  # fmt: skip
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "images": spec.classes * (spec.train_per_class + spec.val_per_class),
        "workers": args.workers,
        "runs": runs,
        "ratios_to_ilsvrc": ratios,
        "cpu_ratios_to_ilsvrc": cpu_ratios,
        "other_cores_busy": busy,
        "subset_from_zip": subset,
        "targets": [{"target": t, "value": v, "met": met} for t, v, met in checks],
    }
    (out / "results-sources.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"\nshorter-256, {results['images']} images, {args.workers} workers, {args.runs} runs (medians; other "
        f"processes kept {busy:.2f} cores busy):"
    )
    for layout, ratio in ratios.items():
        rate = median([run_[layout]["per_s"] for run_ in runs])
        print(
            f"  {layout:12s} {rate:6.0f} img/s  {ratio:.2f}x the official-tar build "
            f"(CPU time: {cpu_ratios[layout]:.2f}x)"
        )
    print(f"  1% subset from the zip read {subset['fraction']:.2%} of its bytes")
    for target, value, met in checks:
        print(f"  {'MET ' if met else 'MISS'} {target}: {value:.3f}")
    if not args.keep:
        shutil.rmtree(work)
    return 0


def bench_winter21(args: argparse.Namespace, out: Path) -> int:
    """winter21_whole.tar.gz read in place vs the same images from its extracted folder of class tars."""
    from imagenet_prep.sample import render_image
    from imagenet_prep.sample.common import gzip_bytes, tar_bytes
    from imagenet_prep.sample.imagenet21k import DEFAULT_21K_CLASSES, names_21k
    from imagenet_prep.sources import open_source, winter21

    per_class = max(1, args.images // len(DEFAULT_21K_CLASSES))
    folder = out / "winter21-release"
    stamp = folder / "bench-spec.json"
    wanted = json.dumps({"per_class": per_class, "version": __version__})
    if not (stamp.exists() and stamp.read_text() == wanted):
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "gz").mkdir(parents=True)
        print(
            f"winter21 sample: {len(DEFAULT_21K_CLASSES)} classes x {per_class} realistic images ...",
            flush=True,
        )
        members = []
        for w in DEFAULT_21K_CLASSES:
            images = [(n, render_image(0, w, n, True)) for n in names_21k(w, per_class, 0)]
            members.append((f"winter21_whole/{w}.tar", tar_bytes(images)))
        (folder / "gz" / "winter21_whole.tar.gz").write_bytes(gzip_bytes(tar_bytes(members)))
        with tarfile.open(folder / "gz" / "winter21_whole.tar.gz") as archive:
            archive.extractall(folder / "extracted", filter="data")
        stamp.write_text(wanted)
    sources = {"winter21": folder / "gz", "class-tars": folder / "extracted" / "winter21_whole"}
    archive = folder / "gz" / "winter21_whole.tar.gz"
    archive_bytes = archive.stat().st_size
    # A real build has ~44,000 units of 250 images; this release of a few hundred images would have two, which
    # measures how two units balance, not the per-worker cursor: units of 30 here (as many as the class tars).
    winter21.Winter21Source.UNIT_SIZE = 30
    # The cold index pass: one decompression of the whole archive, headers parsed (then cached), against a
    # plain gunzip of the same archive.
    started = time.perf_counter()
    with gzip.open(archive) as stream:
        while stream.read(1 << 20):
            pass
    gunzip_seconds = time.perf_counter() - started
    clear_index_caches(sources["winter21"])
    started = time.perf_counter()
    source = open_source(sources["winter21"])
    index = source.index("train", source.classes("train"), None)
    index_seconds = time.perf_counter() - started
    n_images = sum(len(files) for files in index.files.values())
    work = out / f"winter21-runs-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    work.mkdir()
    options = ImageOptions(**WORKLOADS["shorter-256"])
    counter = iter(range(1_000_000))

    def one(layout: str, workers: int) -> dict[str, Any]:
        dest = work / f"{next(counter):03d}-{layout}-{workers}"
        with WorkerWatcher() as watcher, CpuMeter() as meter:
            started = time.perf_counter()
            build(
                _build_config(sources[layout], dest, options, workers, splits=("train",)),
                progress=lambda n: None,
            )
            seconds = time.perf_counter() - started
        record = json.loads((dest / "build.json").read_text())
        return {
            "seconds": seconds,
            "per_s": n_images / seconds,
            "cpu": meter.cpu,
            "other_cores": meter.other_cores,
            "bytes_read_images": record["bytes_read"]["images"],
            "units": record["units"]["total"],
            "peak_rss_mb": watcher.max_mb if workers > 1 else None,  # 1 worker runs in this process
        }

    variants = [("class-tars", args.workers), ("winter21", args.workers), ("class-tars", 1), ("winter21", 1)]
    for layout, workers in variants:  # warm-up (untimed): index caches, page cache, imports
        one(layout, workers)
    runs: list[dict[str, Any]] = []
    for r in range(args.runs):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        record = {f"{layout}/{workers}w": one(layout, workers) for layout, workers in order}
        runs.append(record)
        print(
            f"run {r + 1}/{args.runs}: "
            + ", ".join(f"{k} {v['per_s']:.0f}/s" for k, v in sorted(record.items()))
        )
    keys = sorted(runs[0])
    ratio = {
        w: median([run_[f"winter21/{w}w"]["per_s"] / run_[f"class-tars/{w}w"]["per_s"] for run_ in runs])
        for w in sorted({args.workers, 1})
    }
    cpu_ratio = {
        w: median([run_[f"class-tars/{w}w"]["cpu"] / run_[f"winter21/{w}w"]["cpu"] for run_ in runs])
        for w in sorted({args.workers, 1})
    }
    busy = median([v["other_cores"] for run_ in runs for v in run_.values()])
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "images": n_images,
        "archive_bytes": archive_bytes,
        "cold_index": {
            "seconds": index_seconds,
            "mb_per_s": archive_bytes / 1e6 / index_seconds,
            "plain_gunzip_seconds": gunzip_seconds,
        },
        "unit_size": winter21.Winter21Source.UNIT_SIZE,
        "workers": args.workers,
        "runs": runs,
        "winter21_over_class_tars": ratio,
        "cpu_class_tars_over_winter21": cpu_ratio,
        "other_cores_busy": busy,
    }
    (out / "results-winter21.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"\nshorter-256, {n_images} images ({archive_bytes / 1e6:.1f} MB archive), {args.runs} runs (medians; other "
        f"processes kept {busy:.2f} cores busy):"
    )
    print(
        f"  cold index pass: {index_seconds:.2f} s ({archive_bytes / 1e6 / index_seconds:.0f} MB/s of archive); "
        f"a plain gunzip of it: {gunzip_seconds:.2f} s ({index_seconds / gunzip_seconds:.2f}x)"
    )
    for key in keys:
        rate = median([run_[key]["per_s"] for run_ in runs])
        read = median([run_[key]["bytes_read_images"] for run_ in runs])
        rss = median([run_[key]["peak_rss_mb"] for run_ in runs])
        shown = f", worker peak RSS {rss:.0f} MB" if rss else ""
        print(
            f"  {key:14s} {rate:6.0f} img/s   image pass read {read / archive_bytes:.2f}x the archive{shown}"
        )
    for w in ratio:
        print(
            f"  winter21.tar.gz / class-tars, {w} worker(s): {ratio[w]:.2f}x speed (CPU time: {cpu_ratio[w]:.2f}x)"
        )
    if not args.keep:
        shutil.rmtree(work)
    return 0


# -------------------------------------------------------------------------------------- quick (issue 25)
# --quick: one figure for each of the performance items in one short run (<= 2 minutes here once the sample
# releases exist; they are written once into OUT and reused).
QUICK_IMAGES = 400
QUICK_PLAN_SCALE = 0.1  # of the full release: ~133,000 members in the real 1000 class tars + val
QUICK_PSNR_SAMPLE = 60
QUICK_LAYOUTS = ("ilsvrc", "blurred")
SQUARE_64 = WORKLOADS["square-64"]
Variant = Callable[[Path], dict[str, Any]]


def interleaved(
    variants: dict[str, Variant], work: Path, runs: int, report: Callable[[int, dict], None] | None = None
) -> list[dict[str, dict[str, Any]]]:
    """One untimed warm-up of each variant (imports, forkserver, index and page caches), then ``runs`` runs of
    all of them, the order rotating from run to run so that they share a busy machine's noise; each variant
    gets a fresh folder in ``work`` and its record an images-per-second ``per_s``."""
    counter = itertools.count()
    names = list(variants)

    def one(name: str) -> dict[str, Any]:
        record = variants[name](work / f"{next(counter):03d}-{name}")
        record["per_s"] = record["images"] / record["seconds"]
        return record

    for name in names:
        one(name)
    results = []
    for r in range(runs):
        order = names[r % len(names) :] + names[: r % len(names)]
        record = {name: one(name) for name in order}
        results.append(record)
        if report is not None:
            report(r, record)
    return results


def layout_builds(folder: Path, layouts: tuple[str, ...], workers: int) -> dict[str, Variant]:
    """A shorter-256 build of ``folder/<layout>`` for each layout (the same images in each)."""
    options = ImageOptions(**SHORTER_256)
    return {
        layout: (lambda dest, layout=layout: run_build(folder / layout, dest, options, workers))
        for layout in layouts
    }


QUIET_THRESHOLD = 0.25  # --quiet-threshold: other processes' busy cores above which a measurement is "noisy"


def _quiet(runs: list[dict], a: str, b: str) -> list[dict]:
    """The runs in which other processes stayed quiet (at most QUIET_THRESHOLD cores busy) while both a and b
    were measured, when there are 2 or more of them; else every run."""
    quiet = [
        r for r in runs if max(r[a].get("other_cores", 0.0), r[b].get("other_cores", 0.0)) <= QUIET_THRESHOLD
    ]
    return quiet if len(quiet) >= 2 else runs


def _speed(runs: list[dict], a: str, b: str) -> float | None:
    """Median over the quiet runs of a's images per second over b's (a's speed as a multiple of b's)."""
    return median([run_[a]["per_s"] / run_[b]["per_s"] for run_ in _quiet(runs, a, b)])


def _cpu(runs: list[dict], a: str, b: str) -> float | None:
    """The same in CPU time per image (b's over a's), which other processes on the machine barely move."""
    if any(run_[v].get("cpu") is None for run_ in runs for v in (a, b)):
        return None
    return median(
        [(r[b]["cpu"] / r[b]["images"]) / (r[a]["cpu"] / r[a]["images"]) for r in _quiet(runs, a, b)]
    )


def run_floor_in(python: str, blob: Path, offsets: list[int], workload: str, workers: int) -> dict[str, Any]:
    """The floor in another interpreter (e.g. a venv where Pillow-SIMD replaces Pillow): the same images, the
    same pool size, timed there by the same code (this script, ``--floor-child``)."""
    return _child(python, {"blob": str(blob), "offsets": offsets, "workload": workload, "workers": workers})


def build_in(python: str, release: Path, out: Path, workload: str, workers: int) -> dict[str, Any]:
    """The library's build in another interpreter (``--floor-child``), timed there as ``run_build`` times it."""
    spec = {"release": str(release), "out": str(out), "workload": workload, "workers": workers}
    return _child(python, spec)


def pixels_in(python: str, blob: Path, offsets: list[int], workload: str, sample: int) -> dict[str, float]:
    """PSNR of another interpreter's decoded and resized pixels (before encoding) against this one's, over a
    sample of the images: what replacing Pillow there changes in the output."""
    import numpy as np

    picks = list(range(0, len(offsets) - 1, max(1, (len(offsets) - 1) // sample)))
    theirs = _child(python, {"blob": str(blob), "offsets": offsets, "workload": workload, "pixels": picks})
    options = ImageOptions(**WORKLOADS[workload])
    values, data = [], blob.read_bytes()
    for index, (size, raw) in zip(picks, theirs["pixels"], strict=True):
        mine = _pixels(data[offsets[index] : offsets[index + 1]], options)
        if mine is None:
            continue
        assert mine.size == tuple(size), (index, mine.size, size)
        mse = float(((np.asarray(mine, float) - np.frombuffer(bytes.fromhex(raw), np.uint8).reshape(
            size[1], size[0], -1)) ** 2).mean())  # fmt: skip
        values.append(99.0 if mse == 0 else float(10 * np.log10(255**2 / mse)))
    return {"min": min(values), "median": statistics.median(values), "images": len(values),
            "pillow": theirs["pillow"]}  # fmt: skip


def _pixels(data: bytes, options: ImageOptions) -> Image.Image | None:
    im = Image.open(io.BytesIO(data))
    out = target_size(im.size[0], im.size[1], options)
    return None if out is None else imaging._decode_resized(im, out, options)


def _child(python: str, spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [python, str(Path(__file__).resolve()), "--floor-child", json.dumps(spec)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{python} --floor-child failed: {done.stderr.strip().splitlines()[-3:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def floor_child(text: str) -> int:
    """``--floor-child SPEC``: the floor, the build (``release``) or some images' pixels (``pixels``) in this
    interpreter."""
    spec = json.loads(text)
    options = ImageOptions(**WORKLOADS[spec["workload"]])
    if "pixels" in spec:
        data, offsets, pixels = Path(spec["blob"]).read_bytes(), spec["offsets"], []
        for index in spec["pixels"]:
            im = _pixels(data[offsets[index] : offsets[index + 1]], options)
            pixels.append((im.size, im.tobytes().hex()) if im is not None else (None, ""))
        print(json.dumps({"pixels": pixels, "pillow": Image.__version__}))
        return 0
    if "release" in spec:
        record = run_build(Path(spec["release"]), Path(spec["out"]), options, spec["workers"])
    else:
        record = run_floor(Path(spec["blob"]), spec["offsets"], options, spec["workers"])
    print(json.dumps({**record, "pillow": Image.__version__}))
    return 0


def quick_images(folder: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Items 1 and 4: the builds against the floor (square-64 ImageFolder and wds, the CLI at shorter-256),
    the fast resizer's build and floor against the stock floor, and Pillow-SIMD's floor (--simd-python)."""
    release = folder / "ilsvrc"
    work.mkdir(parents=True)
    blob = work / "images.bin"
    offsets = write_blob(release, blob)
    s256, s64 = ImageOptions(**SHORTER_256), ImageOptions(**SQUARE_64)
    fast256 = dataclasses.replace(s256, resizer="fast")
    cli_env = cli_environment(None if args.cli_no_bytecode else args.out.resolve() / "bytecode-cache")
    variants: dict[str, Variant] = {
        "imagefolder-64": lambda dest: run_build(release, dest, s64, args.workers),
        "wds-64": lambda dest: run_build(
            release, dest, s64, args.workers, output="wds", shard_size=SHARD_SAMPLES
        ),
        "floor-64": lambda dest: run_floor(blob, offsets, s64, args.workers),
        "cli-256": lambda dest: run_cli(release, dest, s256, args.workers, cli_env),
        "floor-256": lambda dest: run_floor(blob, offsets, s256, args.workers),
    }
    fast = imaging.fast_resizer_available()
    if fast:
        variants["fast-256"] = lambda dest: run_build(release, dest, fast256, args.workers)
        variants["floor-fast-256"] = lambda dest: run_floor(blob, offsets, fast256, args.workers)
    if args.simd_python:
        for name in ("256", "64"):
            workload = {"256": "shorter-256", "64": "square-64"}[name]
            variants[f"floor-simd-{name}"] = lambda dest, w=workload: run_floor_in(
                args.simd_python, blob, offsets, w, args.workers
            )
        variants["build-simd-256"] = lambda dest: build_in(
            args.simd_python, release, dest, "shorter-256", args.workers
        )
    runs = interleaved(variants, work, args.runs)
    figures: dict[str, Any] = {
        "images": len(offsets) - 1,
        "mean_image_kb": round(offsets[-1] / (len(offsets) - 1) / 1024, 1),
        "img_per_s": {name: median([run_[name]["per_s"] for run_ in runs]) for name in variants},
        "imagefolder-64/floor": _speed(runs, "imagefolder-64", "floor-64"),
        "wds-64/floor": _speed(runs, "wds-64", "floor-64"),
        "cli-256/floor": _speed(runs, "cli-256", "floor-256"),
        "cpu imagefolder-64/floor": _cpu(runs, "imagefolder-64", "floor-64"),
        "cpu wds-64/floor": _cpu(runs, "wds-64", "floor-64"),
        "cpu cli-256/floor": _cpu(runs, "cli-256", "floor-256"),
    }
    fast_figures: dict[str, Any] = {"available": fast}
    if fast:
        fast_figures["fast build/stock floor"] = _speed(runs, "fast-256", "floor-256")
        fast_figures["fast floor/stock floor"] = _speed(runs, "floor-fast-256", "floor-256")
        fast_figures["cpu fast build/stock floor"] = _cpu(runs, "fast-256", "floor-256")
        fast_figures["cpu fast floor/stock floor"] = _cpu(runs, "floor-fast-256", "floor-256")
        fast_figures["psnr db"] = fast_psnr(blob, offsets, s256, QUICK_PSNR_SAMPLE)
    if args.simd_python:
        fast_figures["pillow-simd floor/stock floor 256"] = _speed(runs, "floor-simd-256", "floor-256")
        fast_figures["pillow-simd floor/stock floor 64"] = _speed(runs, "floor-simd-64", "floor-64")
        fast_figures["pillow-simd build/stock floor 256"] = _speed(runs, "build-simd-256", "floor-256")
        for key, (a, b) in {
            "cpu pillow-simd floor/stock floor 256": ("floor-simd-256", "floor-256"),
            "cpu pillow-simd floor/stock floor 64": ("floor-simd-64", "floor-64"),
            "cpu pillow-simd build/stock floor 256": ("build-simd-256", "floor-256"),
        }.items():
            fast_figures[key] = _cpu(runs, a, b)
        fast_figures["pillow-simd psnr db"] = pixels_in(
            args.simd_python, blob, offsets, "shorter-256", QUICK_PSNR_SAMPLE
        )
    figures["other cores busy"] = median([v["other_cores"] for run_ in runs for v in run_.values()])
    return {"per_image": figures, "fast_path": fast_figures, "runs": runs}


def quick_planning(out: Path, workers: int, scale: float) -> dict[str, Any]:
    """Item 2 at a reduced scale, measured by scripts/make_full_release.py's own functions (fresh processes):
    a cold index + plan, a warm plan, the Imagenette plan; projected to the full release's member count."""
    full = _full_release_script()
    release = out / f"plan-release-{scale:g}"
    stamp = release / "bench-spec.json"
    wanted = json.dumps({"scale": scale, "version": __version__})
    if not (stamp.exists() and stamp.read_text() == wanted):
        shutil.rmtree(release, ignore_errors=True)
        with contextlib.redirect_stdout(io.StringIO()):  # its progress lines: the bench prints its own table
            full.write_release(release, scale)
        stamp.write_text(wanted)
    # Measured from a small helper process, not from here: Linux hands a process's peak RSS (ru_maxrss) on to
    # the programs its children exec, so a plan child forked from this process (hundreds of MB by now) would
    # report this process's peak as its own.
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE_PLANS, full.__file__, str(release), str(workers), str(out / "plan-cache")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"planning measurement failed: {done.stderr.strip().splitlines()[-3:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    members = measured["cold-index"]["images"]
    factor = (full.TRAIN_IMAGES + full.VAL_IMAGES) / members
    # The projection: the Imagenette plan (10 classes) stands for the fixed part (interpreter, imports, the index
    # header), the rest grows with the member count.
    fixed = measured["imagenette"]
    results: dict[str, Any] = {"release": str(release), "scale": scale, "members": members, "factor": factor}
    for key, value in measured.items():
        grows = key != "imagenette"
        # At a tiny scale a whole-set plan can time below the Imagenette one (noise): its growing part is >= 0.
        results[key] = {
            "seconds": value["seconds"],
            "cpu": value.get("cpu"),  # when the script's child reports it
            "rss_mb": value["rss_mb"],
            "projected_seconds": fixed["seconds"] + max(0.0, value["seconds"] - fixed["seconds"]) * factor
            if grows else value["seconds"],
            "projected_rss_mb": fixed["rss_mb"] + max(0.0, value["rss_mb"] - fixed["rss_mb"]) * factor
            if grows else value["rss_mb"],
        }  # fmt: skip
    return results


_MEASURE_PLANS = """
import importlib.util, json, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("make_full_release", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
only = ["cold", "warm", "imagenette"]
print(json.dumps(module.measure(Path(sys.argv[2]), int(sys.argv[3]), cache_dir=Path(sys.argv[4]), only=only)))
"""


def _full_release_script() -> Any:
    """scripts/make_full_release.py as a module (its measurements are reused, not copied)."""
    import importlib.util

    path = Path(__file__).resolve().parent / "make_full_release.py"
    spec = importlib.util.spec_from_file_location("make_full_release", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quick_streamed(folder: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Item 3: the blurred release (one stream per split) against the official tars, same images, shorter-256.
    Streams are cut into units of STREAM_UNIT_SIZE so that this small release has as many units per worker as
    the real one has with 250 (older code ignores the setting)."""
    from imagenet_prep.sources import streamed

    streamed.StreamedSource.UNIT_SIZE = STREAM_UNIT_SIZE
    variants = layout_builds(folder, QUICK_LAYOUTS, args.workers)
    runs = interleaved(variants, work, args.runs)
    return {
        "images": runs[0]["ilsvrc"]["images"],
        "workers": args.workers,
        "img_per_s": {name: median([run_[name]["per_s"] for run_ in runs]) for name in variants},
        "blurred/official": _speed(runs, "blurred", "ilsvrc"),
        "cpu blurred/official": _cpu(runs, "blurred", "ilsvrc"),
        "other cores busy": median([v["other_cores"] for run_ in runs for v in run_.values()]),
    }


def bench_quick(args: argparse.Namespace, out: Path) -> int:
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    n_classes = max(2, min(args.classes, args.images // 10))
    train_per_class = max(1, -(-(args.images - n_classes * VAL_PER_CLASS) // n_classes))
    spec = SampleSpec(
        classes=n_classes, train_per_class=train_per_class, val_per_class=VAL_PER_CLASS, realistic=True
    )
    folder = ensure_layouts(out / "quick-release", spec, QUICK_LAYOUTS)
    work = out / f"quick-runs-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    work.mkdir()
    # Item 1's ImageFolder and CLI builds create a file per image: on a journal-less ext4 that is slow for
    # minutes after thousands of deletions (see the module doc), which is the file system's state, not the
    # build's cost. Wait (up to --max-wait) until it is cheap, as the full bench does; the wait is not counted.
    waiting = time.perf_counter()
    create_ms = wait_for_cheap_creates(work / "probe", args.max_wait)
    waited = time.perf_counter() - waiting
    images = quick_images(folder, work / "images", args)
    create_after_ms = create_cost_ms(work / "probe-after")
    planning = quick_planning(out, args.workers, args.plan_scale)
    streamed = quick_streamed(folder, work / "streamed", args)
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "pillow": Image.__version__,
        },
        "workers": args.workers,
        "runs": args.runs,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "file_create_ms": round(create_ms, 3),
        "file_create_ms_after_item_1": round(create_after_ms, 3),
        "waited_for_cheap_creates_s": round(waited, 1),
        "seconds": None,
        "per_image": images["per_image"],
        "planning": planning,
        "streamed": streamed,
        "fast_path": images["fast_path"],
        "raw_runs": images["runs"],
    }
    results["seconds"] = round(time.perf_counter() - started - waited, 1)
    text = json.dumps(results, indent=2) + "\n"
    (out / f"results-quick-{work.name.removeprefix('quick-runs-')}.json").write_text(text)
    (out / "results-quick.json").write_text(text)
    print_quick(results)
    if not args.keep:
        shutil.rmtree(work)
    return 0


def print_quick(results: dict[str, Any]) -> None:
    img, plan, stream, fast = (
        results["per_image"],
        results["planning"],
        results["streamed"],
        results["fast_path"],
    )

    def x(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    print(
        f"quick bench {results['date']}: {img['images']} images ({img['mean_image_kb']} KB mean), "
        f"{results['workers']} workers, {results['runs']} runs (medians), {results['seconds']} s; load average "
        f"{results['load_before']:.2f} before, {results['load_after']:.2f} after"
    )
    print(
        f"creating a file: {results['file_create_ms']:.3f} ms before item 1 (waited "
        f"{results['waited_for_cheap_creates_s']:g} s for it to be below {SLOW_CREATE_MS} ms; not counted above), "
        f"{results['file_create_ms_after_item_1']:.3f} ms after"
    )
    rows = [
        (
            "1",
            "ImageFolder square-64 / floor",
            x(img["imagefolder-64/floor"]),
            x(img["cpu imagefolder-64/floor"]),
        ),
        ("1", "wds square-64 / floor", x(img["wds-64/floor"]), x(img["cpu wds-64/floor"])),
        ("1", "CLI shorter-256 / floor", x(img["cli-256/floor"]), x(img["cpu cli-256/floor"])),
    ]
    for key, label in (("cold-index", "cold index + plan"), ("warm-plan", "warm plan"),
                       ("imagenette", "Imagenette plan")):  # fmt: skip
        entry = plan[key]
        rows.append((
            "2", f"{label} ({plan['members']:,} members)",
            f"{entry['seconds']:.2f} s {entry['rss_mb']:.0f} MB",
            f"full: ~{entry['projected_seconds']:.1f} s ~{entry['projected_rss_mb']:.0f} MB",
        ))  # fmt: skip
    rows.append(("3", f"blurred / official tars, {stream['workers']} workers", x(stream["blurred/official"]),
                 x(stream["cpu blurred/official"])))  # fmt: skip
    if fast["available"]:
        psnr = fast["psnr db"]
        rows.append(
            (
                "4",
                "fast build shorter-256 / stock floor",
                x(fast["fast build/stock floor"]),
                f"{x(fast['cpu fast build/stock floor'])} (PSNR vs Pillow min {psnr['min']:.1f} dB)",
            )
        )
        rows.append(("4", "fast floor / stock floor", x(fast["fast floor/stock floor"]),
                     x(fast["cpu fast floor/stock floor"])))  # fmt: skip
    else:
        rows.append(("4", "fast resizer", "not installed", "pip install 'imagenet-prep[fast]'"))
    if "pillow-simd psnr db" in fast:
        psnr = fast["pillow-simd psnr db"]
        simd = f"Pillow {psnr['pillow']}"
        for what, key in (("floor / stock floor, 256", "floor/stock floor 256"),
                          ("floor / stock floor, 64", "floor/stock floor 64"),
                          ("build / stock floor, 256", "build/stock floor 256")):  # fmt: skip
            note = x(fast[f"cpu pillow-simd {key}"])
            if key == "floor/stock floor 256":
                note += f" (PSNR vs this Pillow min {psnr['min']:.1f} dB)"
            rows.append(("4", f"{simd} {what}", x(fast[f"pillow-simd {key}"]), note))
    print(f"{'item':<5}{'figure':<44}{'value':>18}  {'CPU time / note'}")
    for item, label, value, note in rows:
        print(f"{item:<5}{label:<44}{value:>18}  {note}")
    print(
        f"planning: a generated release at scale {plan['scale']:g} in {plan['release']} (kept for the next run); "
        f"'full' projects it to {plan['factor'] * plan['members']:,.0f} members (the Imagenette plan taken "
        "as the fixed part)"
    )


# -------------------------------------------------------------------------------------------- main
def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Example: python scripts/bench.py --images 2000 --runs 3 --workers 2 --out bench-out/",
    )
    parser.add_argument(
        "--images",
        type=int,
        help=f"images in the sample release (default 2000; with --quick {QUICK_IMAGES})",
    )
    parser.add_argument(
        "--classes",
        type=int,
        default=40,
        help="classes in the sample release, one build unit each (default 40)",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs; medians are reported (default 3)")
    parser.add_argument(
        "--quiet-threshold",
        type=float,
        default=0.25,
        help="a run counts as quiet when other processes kept at most this many cores busy during each of its "
        "measurements; medians use the quiet runs when there are 2 or more (default 0.25)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes for every variant (default 2)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench-out"), help="results and scratch (default bench-out/)"
    )
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of {', '.join(WORKLOADS)}"
    )
    parser.add_argument("--no-scaling", action="store_true", help="skip the 1-worker build runs")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI (fresh process) runs")
    parser.add_argument(
        "--cli-no-bytecode",
        action="store_true",
        help="run the CLI without a bytecode cache when the environment forbids one (PYTHONDONTWRITEBYTECODE): "
        "every fresh process then compiles the package; by default the CLI gets a cache in OUT, as an "
        "installed package has its compiled modules",
    )
    parser.add_argument(
        "--no-fast",
        action="store_true",
        help="skip the build with the optional fast resizer (run when cykooz-resizer is installed)",
    )
    parser.add_argument("--no-subset", action="store_true", help="skip the subset-cost measurement")
    parser.add_argument(
        "--sources",
        action="store_true",
        help="only the source layouts (issue 10): shorter-256 builds of the same release from every layout, "
        "as ratios to the official-tar build in the same run, and a 1%%-of-classes subset from the Kaggle zip",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run folders (outputs, extracted files)")
    parser.add_argument(
        "--winter21",
        action="store_true",
        help="only winter21_whole.tar.gz (issue 13): shorter-256 train builds read from the .tar.gz in place vs "
        "the same images from its extracted class tars (--images images over 7 classes), and the cold index pass",
    )
    parser.add_argument(
        "--outputs",
        action="store_true",
        help="run only the shard-output section (issue 11): wds and parquet vs ImageFolder at shorter-256, "
        "the repack (--resize none --output wds), peak RSS per worker with 1 GB shards",
    )
    parser.add_argument(
        "--generative",
        action="store_true",
        help="run only the generative presets: --resize adm vs center-crop at 256 (PNG), the EDM2 zip, and "
        "Downsampled-ImageNet npz at 32 vs ImageFolder at 32 and the floor",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="run only the scale-out section: Dask vs the local pool, shards vs one build, a remote subset",
    )
    parser.add_argument(
        "--remote",
        action="store_true",
        help="run only the remote-subset part of --scale: Imagenette over HTTP from a 1000-class release of "
        "realistic image sizes (bytes transferred, with and without the spool)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one short run (<= 2 minutes on 2 cores once its releases exist) with a figure for each "
        "performance item: square-64 ImageFolder and wds builds and the shorter-256 CLI against the floor; "
        "cold, warm and Imagenette planning on a generated release (--plan-scale) projected to full scale; "
        "blurred vs the official tars; the fast resizer (and --simd-python) against the stock floor",
    )
    parser.add_argument(
        "--plan-scale",
        type=float,
        default=QUICK_PLAN_SCALE,
        help=f"with --quick: the planning release's size, a fraction of the full one (default {QUICK_PLAN_SCALE})",
    )
    parser.add_argument(
        "--simd-python",
        metavar="PYTHON",
        help="with --quick: also time the floor in this interpreter (e.g. a venv where Pillow-SIMD replaces "
        "Pillow), on the same images with the same workers, and its pixels against this one's",
    )
    parser.add_argument("--floor-child", help=argparse.SUPPRESS)  # run_floor_in's child
    parser.add_argument(
        "--max-wait",
        type=float,
        default=360,
        help="wait up to this many seconds for file creation to be cheap again after recent deletions "
        f"(> {SLOW_CREATE_MS} ms per file; default 360, 0 = do not wait)",
    )
    args = parser.parse_args(argv)
    if args.floor_child:
        return floor_child(args.floor_child)
    if args.images is None:
        args.images = QUICK_IMAGES if args.quick else 2000
    if not 0 < args.plan_scale <= 1:
        parser.error("--plan-scale is a fraction of the full release: more than 0, at most 1")
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown or args.runs < 1 or args.workers < 1 or args.images < args.classes:
        parser.error(f"bad arguments (unknown workloads: {unknown})" if unknown else "bad numbers")

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.remote:
        remote = remote_subset_section(out, args.workers)
        (out / "results-remote.json").write_text(json.dumps(remote, indent=2) + "\n")
        print(json.dumps(remote, indent=2))
        return 0
    if args.scale:
        scale = scale_section(out, args.workers, args.runs)
        (out / "results-scale.json").write_text(json.dumps(scale, indent=2) + "\n")
        print(json.dumps(scale, indent=2))
        return 0
    if args.quick:
        global QUIET_THRESHOLD
        QUIET_THRESHOLD = args.quiet_threshold
        return bench_quick(args, out)
    if args.sources:
        return bench_sources(args, out)
    if args.winter21:
        return bench_winter21(args, out)
    train_per_class = max(1, -(-(args.images - args.classes * VAL_PER_CLASS) // args.classes))
    spec = SampleSpec(
        classes=args.classes, train_per_class=train_per_class, val_per_class=VAL_PER_CLASS, realistic=True
    )
    print(
        f"sample release: {args.classes} classes x ({train_per_class} train + {VAL_PER_CLASS} val) ...",
        flush=True,
    )
    release = ensure_release(out / "release", spec)
    work = out / f"runs-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    work.mkdir()
    blob = work / "images.bin"
    offsets = write_blob(release, blob)
    n_images = len(offsets) - 1
    mean_kb = offsets[-1] / n_images / 1024
    print(f"{n_images} images, {mean_kb:.0f} KB mean; work folder {work}", flush=True)

    if args.outputs:
        return outputs_section(release, work, args, n_images, offsets[-1])
    if args.generative:
        return generative_section(release, work, args, blob, offsets)

    variants = ["build", "floor", "naive"]
    if not args.no_scaling and args.workers > 1:
        variants.append("build-1w")
    if not args.no_cli:
        variants.append("cli")
    if not args.no_fast and imaging.fast_resizer_available():
        variants += ["build-fast", "floor-fast"]
    counter = iter(range(1_000_000))
    cli_env = cli_environment(None if args.cli_no_bytecode else out / "bytecode-cache")

    def run(variant: str, options: ImageOptions) -> dict[str, Any]:
        folder = work / f"{next(counter):03d}-{variant}"
        if variant == "build":
            return run_build(release, folder, options, args.workers)
        if variant == "build-1w":
            return run_build(release, folder, options, 1)
        if variant == "build-fast":
            return run_build(release, folder, dataclasses.replace(options, resizer="fast"), args.workers)
        if variant == "floor-fast":
            return run_floor(blob, offsets, dataclasses.replace(options, resizer="fast"), args.workers)
        if variant == "cli":
            return run_cli(release, folder, options, args.workers, cli_env)
        if variant == "floor":
            return run_floor(blob, offsets, options, args.workers)
        folder.mkdir()
        return run_naive(release, folder, options, args.workers)

    results: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "pillow": Image.__version__,
            "libjpeg_turbo": features.version("jpg") if features.check_feature("libjpeg_turbo") else None,
            "platform": platform.platform(),
        },
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "images": n_images,
        "mean_image_kb": round(mean_kb, 1),
        "workers": args.workers,
        "runs": args.runs,
        "cli_no_bytecode": args.cli_no_bytecode,
        "workloads": {},
    }
    results["create_cost_ms_before"] = round(wait_for_cheap_creates(work, args.max_wait), 3)

    # Warm-up (untimed): imports, the forkserver, the archive index cache, the page cache.
    for name in workloads:
        options = ImageOptions(**WORKLOADS[name])
        run("build", options)
        run("floor", options)
    if "cli" in variants:  # and the CLI's bytecode cache
        run("cli", ImageOptions(**WORKLOADS[workloads[0]]))

    for name in workloads:
        results["workloads"][name] = {"runs": []}
    for r in range(args.runs):
        for name in workloads:
            options = ImageOptions(**WORKLOADS[name])
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            record: dict[str, Any] = {}
            for variant in order:
                record[variant] = run(variant, options)
                record[variant]["per_s"] = record[variant]["images"] / record[variant]["seconds"]
            results["workloads"][name]["runs"].append(record)
            rates = ", ".join(f"{v} {record[v]['per_s']:.0f}/s" for v in variants)
            print(f"run {r + 1}/{args.runs} {name}: {rates}", flush=True)
    results["create_cost_ms_after"] = round(create_cost_ms(work / "probe-after"), 3)

    summary: dict[str, Any] = {}
    for name in workloads:
        all_runs = results["workloads"][name]["runs"]
        # Another process busy on a 2-core machine skews wall-clock ratios: keep the runs during which the
        # rest of the machine stayed quiet (when at least 2 of them did; else all, and say so).
        quiet = [r for r in all_runs if max(v["other_cores"] for v in r.values()) <= args.quiet_threshold]
        runs = quiet if len(quiet) >= 2 else all_runs
        results["workloads"][name]["runs_used"] = [all_runs.index(r) + 1 for r in runs]
        entry: dict[str, Any] = {v: median([run_[v]["per_s"] for run_ in runs]) for v in variants}
        entry["build/floor"] = median([run_["build"]["per_s"] / run_["floor"]["per_s"] for run_ in runs])
        entry["build/naive"] = median([run_["build"]["per_s"] / run_["naive"]["per_s"] for run_ in runs])
        # The same ratios in CPU time (what contention from other processes barely moves).
        entry["cpu build/floor"] = median([run_["floor"]["cpu"] / run_["build"]["cpu"] for run_ in runs])
        entry["cpu build/naive"] = median([run_["naive"]["cpu"] / run_["build"]["cpu"] for run_ in runs])
        entry["cpu ms/img"] = {
            v: median([1000 * run_[v]["cpu"] / run_[v]["images"] for run_ in runs])
            for v in variants
            if runs[0][v].get("cpu") is not None
        }
        entry["other cores busy"] = median([run_[v]["other_cores"] for run_ in runs for v in variants])
        # What build/naive would be if the build were exactly as fast as the floor.
        entry["ceiling build/naive"] = median(
            [run_["floor"]["per_s"] / run_["naive"]["per_s"] for run_ in runs]
        )
        entry["naive extract share"] = median(
            [run_["naive"]["extract_seconds"] / run_["naive"]["seconds"] for run_ in runs]
        )
        entry["build outside images phase s"] = median(
            [run_["build"]["seconds"] - run_["build"]["timings"]["images"] for run_ in runs]
        )
        # Without planning and finishing (index and devkit reads, hashing the sources for build.json): what
        # a long build converges to, where those fixed costs are amortised.
        entry["images phase build/floor"] = median(
            [run_["floor"]["seconds"] / run_["build"]["timings"]["images"] for run_ in runs]
        )
        if "cli" in variants:
            entry["cli/floor"] = median([run_["cli"]["per_s"] / run_["floor"]["per_s"] for run_ in runs])
            entry["cli/naive"] = median([run_["cli"]["per_s"] / run_["naive"]["per_s"] for run_ in runs])
            # What a fresh process adds to the in-process build (interpreter, imports, option parsing, a cold
            # plan, the forkserver's start, exit), in wall seconds and in CPU seconds.
            entry["cli fixed cost s"] = median(
                [run_["cli"]["seconds"] - run_["build"]["seconds"] for run_ in runs]
            )
            if all(run_["cli"]["cpu"] is not None for run_ in runs):
                entry["cli fixed cpu s"] = median(
                    [run_["cli"]["cpu"] - run_["build"]["cpu"] for run_ in runs]
                )
            if all(run_["cli"].get("timeline") for run_ in runs):
                # The CLI split in three: before its first image, its images (against the floor), after.
                lines = [run_["cli"]["timeline"] for run_ in runs]
                entry["cli first image s"] = median([line["first_image_s"] for line in lines])
                entry["cli after last image s"] = median([line["after_last_image_s"] for line in lines])
                entry["cli images phase floor/span"] = median(
                    [run_["floor"]["seconds"] / run_["cli"]["timeline"]["images_span_s"] for run_ in runs]
                )
        entry["floor per-image cpu ms/img"] = median(
            [1000 * run_["floor"]["cpu_images_only"] / run_["floor"]["images"] for run_ in runs]
        )
        if "build-1w" in variants:
            entry["scaling"] = median([run_["build"]["per_s"] / run_["build-1w"]["per_s"] for run_ in runs])
        if "build-fast" in variants:
            # The stretch: the fast resizer's build against the stock-Pillow floor, and its pixels against Pillow's.
            entry["fast/floor"] = median(
                [run_["build-fast"]["per_s"] / run_["floor"]["per_s"] for run_ in runs]
            )
            entry["fast floor/floor"] = median(
                [run_["floor-fast"]["per_s"] / run_["floor"]["per_s"] for run_ in runs]
            )
            entry["fast psnr db"] = fast_psnr(blob, offsets, ImageOptions(**WORKLOADS[name]))
        for variant in ("build", "floor", "naive"):
            entry[f"rss_mb_{variant}"] = max(
                (run_[variant]["peak_rss_mb"] or 0 for run_ in runs), default=None
            )
        summary[name] = entry
    results["summary"] = summary
    if not args.no_subset:
        print("subset cost: building 1 class of a 100-class release ...", flush=True)
        results["subset"] = subset_cost(out, work)

    checks = []
    for name, entry in summary.items():
        for key, minimum in TARGETS[name].items():
            checks.append((f"{name} {key} >= {minimum}", entry[key], entry[key] >= minimum))
        if "scaling" in entry:
            checks.append(
                (
                    f"{name} build {args.workers}w/1w >= {TARGET_SCALING}",
                    entry["scaling"],
                    entry["scaling"] >= TARGET_SCALING,
                )
            )
        checks.append(
            (
                f"{name} build peak RSS/worker <= {TARGET_RSS_MB} MB",
                entry["rss_mb_build"],
                entry["rss_mb_build"] <= TARGET_RSS_MB,
            )
        )
    stretch = summary.get("shorter-256", {}).get("fast/floor")
    if stretch is not None:
        checks.append(
            (
                f"stretch: shorter-256 fast build / stock floor >= {TARGET_FAST}",
                stretch,
                stretch >= TARGET_FAST,
            )
        )
    if "subset" in results:
        fraction = results["subset"]["fraction"]
        checks.append(
            (f"1% subset reads <= {TARGET_SUBSET_FRACTION:.0%}", fraction, fraction <= TARGET_SUBSET_FRACTION)
        )
    results["targets"] = [{"target": t, "value": v, "met": met} for t, v, met in checks]

    text = json.dumps(results, indent=2) + "\n"
    result_path = out / f"results-{work.name.removeprefix('runs-')}.json"
    result_path.write_text(text)
    (out / "results.json").write_text(text)  # the latest
    print_summary(results, variants)
    print(f"\nresults: {result_path}")
    if not args.keep:
        shutil.rmtree(work)
    return 0


# ---------------------------------------------------------------------------------- shard outputs (issue 11)
SHORTER_256 = WORKLOADS["shorter-256"]
# variant -> (output, image options, writer options). Timed variants use shards of SHARD_SAMPLES samples: a
# bench release is tiny, and its shards must still outnumber the workers as ImageNet's 1 GB shards do (~140
# train shards), or one worker would build a whole split alone.
SHARD_SAMPLES = "50"
REPACK = {"resize": "none", "size": None, "verify": False}
SHARD_VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "imagefolder-256": ("imagefolder", SHORTER_256, {}),
    "wds-256": ("wds", SHORTER_256, {"shard_size": SHARD_SAMPLES}),
    "parquet-256": ("parquet", SHORTER_256, {"shard_size": SHARD_SAMPLES}),
    "repack-wds": ("wds", REPACK, {"shard_size": SHARD_SAMPLES}),
    "repack-wds-verify": ("wds", {"resize": "none", "size": None}, {"shard_size": SHARD_SAMPLES}),
    "tfrecord-256": ("tfrecord", SHORTER_256, {"shard_size": SHARD_SAMPLES}),
    "tfds-256": ("tfds", SHORTER_256, {"shard_size": SHARD_SAMPLES}),
    "mds-256": ("mds", SHORTER_256, {"shard_size": SHARD_SAMPLES}),
    "repack-tfrecord": ("tfrecord", REPACK, {"shard_size": SHARD_SAMPLES}),
    "repack-mds": ("mds", REPACK, {"shard_size": SHARD_SAMPLES}),
}
# Run once, for the peak RSS per worker: 1 GB shards, larger than the bench's whole train split, so a worker
# holding its shard in memory would show (the repack writes the largest images).
RSS_VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "rss-repack-wds-1GB": ("wds", REPACK, {"shard_size": "1GB"}),
    "rss-repack-parquet-1GB": ("parquet", REPACK, {"shard_size": "1GB"}),
}
SHARD_TARGETS = {
    "wds-256/imagefolder-256": 0.95,
    "parquet-256/imagefolder-256": 0.95,
    "tfrecord-256/imagefolder-256": 0.95,
    "tfds-256/imagefolder-256": 0.95,
    "mds-256/imagefolder-256": 0.95,
    "repack/256": 5.0,
    "repack-tfrecord/tfrecord-256": 5.0,
    "repack-mds/mds-256": 5.0,
}


# The generative presets (--generative): the ADM crop (full decode, no draft) vs center-crop at 256, both PNG;
# the EDM2 zip; Downsampled-ImageNet npz at 32 vs an ImageFolder of the same images and the floor.
DOWNSAMPLED_32 = {"resize": "downsampled", "filter": "box", "size": 32, "format": "png"}
GENERATIVE_VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "center-crop-256": ("imagefolder", {"resize": "center-crop", "size": 256, "format": "png"}, {}),
    "adm-256": ("imagefolder", {"resize": "adm", "size": 256, "format": "png"}, {}),
    "adm-256-zip": ("zip", {"resize": "adm", "size": 256, "format": "png"}, {}),
    "imagefolder-32": ("imagefolder", DOWNSAMPLED_32, {}),
    "npz-32": ("npz", DOWNSAMPLED_32, {}),
}


def generative_section(
    release: Path, work: Path, args: argparse.Namespace, blob: Path, offsets: list[int]
) -> int:
    """Interleaved runs of GENERATIVE_VARIANTS and the floor of DOWNSAMPLED_32; medians of per-run ratios."""
    variants = list(GENERATIVE_VARIANTS)
    counter = iter(range(1_000_000))

    def run(variant: str) -> dict[str, Any]:
        if variant == "floor-32":
            record = run_floor(blob, offsets, ImageOptions(**DOWNSAMPLED_32), args.workers)
        else:
            record = run_output_build(release, work / f"{next(counter):03d}-{variant}", variant, args.workers)
        record["per_s"] = record["images"] / record["seconds"]
        return record

    variants.append("floor-32")
    for variant in variants:  # warm-up
        run(variant)
    runs = []
    for r in range(args.runs):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        record = {variant: run(variant) for variant in order}
        runs.append(record)
        print(f"run {r + 1}/{args.runs}: " + ", ".join(f"{v} {record[v]['per_s']:.0f}/s" for v in variants))

    def ratio(a: str, b: str) -> float | None:
        return median([run_[a]["per_s"] / run_[b]["per_s"] for run_ in runs])

    summary: dict[str, Any] = {v: median([run_[v]["per_s"] for run_ in runs]) for v in variants}
    summary["adm-256/center-crop-256"] = ratio("adm-256", "center-crop-256")
    summary["adm-256-zip/adm-256"] = ratio("adm-256-zip", "adm-256")
    summary["npz-32/imagefolder-32"] = ratio("npz-32", "imagefolder-32")
    summary["npz-32/floor-32"] = ratio("npz-32", "floor-32")
    summary["other cores busy"] = median([r[v]["other_cores"] for r in runs for v in variants])
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "images": len(offsets) - 1,
        "workers": args.workers,
        "runs": runs,
        "summary": summary,
    }
    (args.out.resolve() / "results-generative.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{len(offsets) - 1} images, {args.workers} workers, {args.runs} runs")
    for key, value in summary.items():
        print(f"  {key}: {round(value, 3) if value is not None else None}")
    if not args.keep:
        shutil.rmtree(work)
    return 0


def run_output_build(release: Path, out: Path, variant: str, workers: int) -> dict[str, Any]:
    output, image, writer = {**SHARD_VARIANTS, **RSS_VARIANTS, **GENERATIVE_VARIANTS}[variant]
    config = BuildConfig(
        source=release, out=out, workers=workers, image=ImageOptions(**image), output=output, **writer
    )
    with WorkerWatcher() as watcher, CpuMeter() as meter:
        started = time.perf_counter()
        result = build(config, progress=lambda n: None)
        seconds = time.perf_counter() - started
    record = json.loads((out / "build.json").read_text())
    written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and ".imagenet-prep" not in p.parts)
    return {
        "seconds": seconds,
        "images_phase_s": record["timings"]["images"],
        "images": result.images_written + len(result.skipped),
        "bytes_read": record["bytes_read"]["images"],
        "bytes_written": written,
        "peak_rss_mb": watcher.max_mb if workers > 1 else None,
        "cpu": meter.cpu,
        "other_cores": meter.other_cores,
    }


def outputs_section(release: Path, work: Path, args: argparse.Namespace, n_images: int, n_bytes: int) -> int:
    """Interleaved runs of SHARD_VARIANTS (order rotating per run), medians of per-run ratios."""
    variants = list(SHARD_VARIANTS)
    counter = iter(range(1_000_000))

    def run(variant: str) -> dict[str, Any]:
        return run_output_build(release, work / f"{next(counter):03d}-{variant}", variant, args.workers)

    for variant in variants:  # warm-up: imports, forkserver, index cache, page cache
        run(variant)
    runs: list[dict[str, Any]] = []
    for r in range(args.runs):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        record = {variant: run(variant) for variant in order}
        for value in record.values():
            value["per_s"] = value["images"] / value["seconds"]
        runs.append(record)
        print(f"run {r + 1}/{args.runs}: " + ", ".join(f"{v} {record[v]['per_s']:.0f}/s" for v in variants))

    def ratio(a: str, b: str, key: str = "per_s") -> float | None:
        return median([run_[a][key] / run_[b][key] for run_ in runs])

    def cpu_ratio(a: str, b: str) -> float | None:  # CPU per image of b over a: a's speed-up in CPU terms
        return median([run_[b]["cpu"] / run_[a]["cpu"] for run_ in runs])

    summary: dict[str, Any] = {v: median([run_[v]["per_s"] for run_ in runs]) for v in variants}
    summary["wds-256/imagefolder-256"] = ratio("wds-256", "imagefolder-256")
    summary["parquet-256/imagefolder-256"] = ratio("parquet-256", "imagefolder-256")
    summary["repack/256"] = ratio("repack-wds", "imagefolder-256")
    for fmt in ("tfrecord", "tfds", "mds"):
        summary[f"{fmt}-256/imagefolder-256"] = ratio(f"{fmt}-256", "imagefolder-256")
    summary["repack-tfrecord/tfrecord-256"] = ratio("repack-tfrecord", "tfrecord-256")
    summary["repack-mds/mds-256"] = ratio("repack-mds", "mds-256")
    summary["repack/wds-256"] = ratio("repack-wds", "wds-256")
    summary["repack-verify/256"] = ratio("repack-wds-verify", "imagefolder-256")
    # The images phase alone (without planning and finishing, fixed costs a full build amortises): what a long
    # build converges to; the repack's images phase is short, so its fixed costs weigh most in a small bench.
    summary["images phase repack/256"] = median(
        [r["imagefolder-256"]["images_phase_s"] / r["repack-wds"]["images_phase_s"] for r in runs]
    )
    summary["images phase wds-256/imagefolder-256"] = median(
        [r["imagefolder-256"]["images_phase_s"] / r["wds-256"]["images_phase_s"] for r in runs]
    )
    summary["images phase parquet-256/imagefolder-256"] = median(
        [r["imagefolder-256"]["images_phase_s"] / r["parquet-256"]["images_phase_s"] for r in runs]
    )
    summary["cpu wds-256/imagefolder-256"] = cpu_ratio("wds-256", "imagefolder-256")
    summary["cpu parquet-256/imagefolder-256"] = cpu_ratio("parquet-256", "imagefolder-256")
    summary["cpu repack/256"] = cpu_ratio("repack-wds", "imagefolder-256")
    summary["repack MB/s read"] = median(
        [r["repack-wds"]["bytes_read"] / r["repack-wds"]["seconds"] / 1e6 for r in runs]
    )
    summary["repack MB/s written"] = median(
        [r["repack-wds"]["bytes_written"] / r["repack-wds"]["seconds"] / 1e6 for r in runs]
    )
    summary["repack images-phase MB/s read"] = median(
        [r["repack-wds"]["bytes_read"] / r["repack-wds"]["images_phase_s"] / 1e6 for r in runs]
    )
    summary["peak rss mb"] = {v: max((r[v]["peak_rss_mb"] or 0) for r in runs) for v in variants}
    for variant in RSS_VARIANTS:
        summary["peak rss mb"][variant] = run(variant)["peak_rss_mb"]
    summary["other cores busy"] = median([r[v]["other_cores"] for r in runs for v in variants])
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "images": n_images,
        "source_mb": round(n_bytes / 1e6, 1),
        "workers": args.workers,
        "runs": runs,
        "summary": summary,
        "targets": [
            {"target": f"{key} >= {minimum}", "value": summary[key], "met": summary[key] >= minimum}
            for key, minimum in SHARD_TARGETS.items()
        ]
        + [
            {
                "target": f"{v} peak RSS/worker <= {TARGET_RSS_MB} MB (1 GB shards)",
                "value": summary["peak rss mb"][v],
                "met": summary["peak rss mb"][v] <= TARGET_RSS_MB,
            }
            for v in summary["peak rss mb"]
        ],
    }
    text = json.dumps(results, indent=2) + "\n"
    (args.out.resolve() / "results-outputs.json").write_text(text)
    print(
        f"\n{n_images} images ({n_bytes / 1e6:.0f} MB of source JPEGs), {args.workers} workers, {args.runs} runs"
    )
    for key, value in summary.items():
        print(f"  {key}: {value if isinstance(value, dict) else round(value, 3)}")
    for check in results["targets"]:
        print(f"{'MET ' if check['met'] else 'MISS'}  {check['target']}: {check['value']:.3f}")
    if not args.keep:
        shutil.rmtree(work)
    return 0


def print_summary(results: dict[str, Any], variants: list[str]) -> None:
    m = results["machine"]
    print(
        f"\n{results['date']}  {m['cores']} cores, Python {m['python']}, Pillow {m['pillow']} "
        f"(libjpeg-turbo {m['libjpeg_turbo']}); {results['images']} images, {results['mean_image_kb']} KB mean; "
        f"{results['workers']} workers; {results['runs']} runs"
    )
    for name, data in results["workloads"].items():
        print(
            f"{name}: medians of runs {data['runs_used']} (the runs during which other processes stayed quiet)"
        )
    print(
        f"file-create cost: {results['create_cost_ms_before']:.2f} ms before, "
        f"{results['create_cost_ms_after']:.2f} ms after"
    )
    header = f"{'workload':<12}" + "".join(f"{v + ' img/s':>18}" for v in variants)
    print(header)
    for name, entry in results["summary"].items():
        print(f"{name:<12}" + "".join(f"{entry[v]:>18.0f}" for v in variants))
    print()
    for name, entry in results["summary"].items():
        parts = [f"build/floor {entry['build/floor']:.2f}", f"build/naive {entry['build/naive']:.2f}"]
        if "cli/floor" in entry:
            parts += [f"cli/floor {entry['cli/floor']:.2f}", f"cli/naive {entry['cli/naive']:.2f}"]
        if "scaling" in entry:
            parts.append(f"scaling {entry['scaling']:.2f}")
        if "fast/floor" in entry:
            psnr = entry["fast psnr db"]
            parts.append(
                f"fast build / stock floor {entry['fast/floor']:.2f}, fast floor / stock floor "
                f"{entry['fast floor/floor']:.2f} (PSNR vs Pillow: min {psnr['min']:.1f}, "
                f"median {psnr['median']:.1f} dB)"
            )
        parts.append(
            "peak RSS/worker MB: "
            + ", ".join(f"{v} {entry[f'rss_mb_{v}']:.0f}" for v in ("build", "floor", "naive"))
        )
        print(f"{name:<12}" + "; ".join(parts))
        if "cli fixed cost s" in entry:
            cpu_fixed = entry.get("cli fixed cpu s")
            print(
                f"{'':<12}CLI in a fresh process minus the in-process build: {entry['cli fixed cost s']:.2f} s wall"
                + (f", {cpu_fixed:.2f} s CPU" if cpu_fixed is not None else "")
                + (" (no bytecode cache)" if results.get("cli_no_bytecode") else " (bytecode cache)")
            )
        if "cli first image s" in entry:
            print(
                f"{'':<12}CLI timeline (output mtimes): first image at {entry['cli first image s']:.2f} s, images "
                f"phase {entry['cli images phase floor/span']:.2f}x the floor's speed, "
                f"{entry['cli after last image s']:.2f} s after the last image"
            )
        cpu = ", ".join(f"{v} {ms:.2f}" for v, ms in entry["cpu ms/img"].items())
        print(
            f"{'':<12}CPU ms/img (all processes, the floor's pool and this process included; the floor's "
            f"per-image calls alone {entry['floor per-image cpu ms/img']:.2f}): {cpu}; "
            f"cpu build/floor {entry['cpu build/floor']:.2f}, cpu build/naive "
            f"{entry['cpu build/naive']:.2f}; floor/naive (the ceiling of build/naive) "
            f"{entry['ceiling build/naive']:.2f}; naive extraction {entry['naive extract share']:.0%} of its time; "
            f"build outside its images phase {entry['build outside images phase s']:.2f} s (images phase alone: "
            f"build/floor {entry['images phase build/floor']:.2f}); other processes kept "
            f"{entry['other cores busy']:.2f} cores busy (median)"
        )
    if "subset" in results:
        s = results["subset"]
        print(
            f"\nsubset {s['classes']} classes: read {s['fraction']:.2%} of {s['archive_bytes']:,} archive bytes "
            f"(index {s['bytes_read_index']}, images {s['bytes_read_images']:,})"
        )
    print()
    for check in results["targets"]:
        print(f"{'MET ' if check['met'] else 'MISS'}  {check['target']}: {check['value']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
