#!/usr/bin/env python3
"""Write a full-scale ILSVRC2012 release of tiny images, and measure planning on it (benchmark only).

The archives have the real layout and the real member counts: ``ILSVRC2012_img_train.tar`` holds 1000 class
tars with 1,281,167 images in all (1300 per class, fewer in a seeded tenth of the classes, 732 at the least,
like the real release: the exact per-class counts are not reproduced), ``ILSVRC2012_img_val.tar`` the 50,000
``ILSVRC2012_val_%08d.JPEG`` files, and the devkit the real validation ground truth. Every image is one of a
few dozen tiny JPEGs (~1 KB; 2.5 KB a member with its tar header and padding), so the release is
~3.4 GB and is written in about five minutes.

``--scale 0.25`` writes a quarter of the images (every class, a quarter of its members; val likewise).

``--measure`` then times, each in a fresh process (wall seconds and the parent's peak RSS):

- cold index: planning the whole set with no index cache (indexing runs in the pool);
- warm plan: planning the whole set again (index cache warm);
- imagenette: planning the Imagenette subset from the full (warm) index.

``--measure-only --only scan`` times the tar header scan alone (CPU per header, against tarfile's scan).
``--cache-dir DIR`` keeps the index caches in DIR (wiped before a cold index) instead of beside the archives,
so a shared release folder is left alone; with it, or with ``--only``, no ``plan-bench.txt`` is written
there either (results are printed only).

Example:

    python scripts/make_full_release.py /tmp/full-release --measure
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

TRAIN_IMAGES = 1_281_167
LIST_RUNS = ("simclr-1pct", "simclr-10pct")  # --only NAME: plan --images NAME from the warm index
VAL_IMAGES = 50_000
MIN_PER_CLASS = 732
FULL_PER_CLASS = 1300


def class_counts(wnids: list[str], seed: int = 0) -> dict[str, int]:
    """1300 per class but for a seeded tenth of the classes that share the shortfall (>= 732 each)."""
    rng = random.Random(seed)
    counts = dict.fromkeys(wnids, FULL_PER_CLASS)
    short = rng.sample(wnids, len(wnids) // 10)
    missing = FULL_PER_CLASS * len(wnids) - TRAIN_IMAGES
    for i, wnid in enumerate(short):
        share = missing // (len(short) - i)
        take = min(FULL_PER_CLASS - MIN_PER_CLASS, max(0, share + rng.randint(-share // 2, share // 2)))
        if i == len(short) - 1:
            take = missing
        counts[wnid] -= take
        missing -= take
    assert sum(counts.values()) == TRAIN_IMAGES and min(counts.values()) >= MIN_PER_CLASS
    return counts


def tiny_jpegs(count: int = 48) -> list[bytes]:
    from PIL import Image

    rng = random.Random(1)
    images = []
    for i in range(count):
        width, height = rng.randint(24, 48), rng.randint(24, 48)
        im = Image.effect_noise((width, height), 40 + i).convert("RGB")
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        images.append(buf.getvalue())
    return images


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 1_330_000_000
    info.mode = 0o644
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _member(name: str, data: bytes) -> bytes:
    pad = -len(data) % 512
    return _header(name, len(data)) + data + b"\0" * pad


def listed_names(lists: list[str]) -> dict[str, set[int]]:
    """wnid -> the train image numbers the image lists name (``--include-list``; bundled names or files)."""
    from imagenet_prep.taxonomy.image_lists import load_spec

    numbers: dict[str, set[int]] = {}
    for spec in lists:
        for listed in load_spec(spec):
            for image in listed.images:
                if image.source_split == "train" and image.wnid is not None:
                    numbers.setdefault(image.wnid, set()).add(int(image.key.rsplit("_", 1)[1]))
    return numbers


def write_release(dest: Path, scale: float = 1.0, include: list[str] | None = None) -> dict[str, int]:
    from imagenet_prep.fetch.catalog import DEVKIT_TAR, TRAIN_TAR, VAL_TAR
    from imagenet_prep.sample.ilsvrc import _devkit_tar_gz
    from imagenet_prep.taxonomy import classes

    dest.mkdir(parents=True, exist_ok=True)
    wnids = sorted(info.wnid for info in classes.all_classes())
    counts = {w: max(1, round(n * scale)) for w, n in class_counts(wnids).items()}
    blobs = tiny_jpegs()
    rng = random.Random(2)
    listed = listed_names(include or [])
    train_names: dict[str, tuple[str, ...]] = {}
    started = time.perf_counter()
    k = 0
    with open(dest / (TRAIN_TAR + ".part"), "wb") as outer:
        for ci, wnid in enumerate(wnids):
            numbers = sorted(rng.sample(range(1, 60_000), counts[wnid]))
            if wnid in listed:  # the listed names, and as many drawn ones as keep the class's count
                drawn = [n for n in numbers if n not in listed[wnid]]
                keep = max(0, counts[wnid] - len(listed[wnid]))
                numbers = sorted(listed[wnid] | set(rng.sample(drawn, min(keep, len(drawn)))))
            names = tuple(f"{wnid}_{n}.JPEG" for n in numbers)
            train_names[wnid] = names
            parts = []
            for name in names:
                parts.append(_member(name, blobs[k % len(blobs)]))
                k += 1
            parts.append(b"\0" * 1024)
            inner = b"".join(parts)
            inner += b"\0" * (-len(inner) % 10240)
            outer.write(_member(f"{wnid}.tar", inner))
            if ci % 100 == 99:
                print(
                    f"train: {ci + 1} of 1000 class tars, {time.perf_counter() - started:.0f} s", flush=True
                )
        outer.write(b"\0" * 1024)
    os.replace(dest / (TRAIN_TAR + ".part"), dest / TRAIN_TAR)
    n_val = max(1, round(VAL_IMAGES * scale))
    with open(dest / (VAL_TAR + ".part"), "wb") as flat:
        for number in range(1, n_val + 1):
            flat.write(_member(f"ILSVRC2012_val_{number:08d}.JPEG", blobs[number % len(blobs)]))
        flat.write(b"\0" * 1024)
    os.replace(dest / (VAL_TAR + ".part"), dest / VAL_TAR)
    (dest / DEVKIT_TAR).write_bytes(_devkit_tar_gz(train_names))
    print(f"wrote {dest} in {time.perf_counter() - started:.0f} s", flush=True)
    return {"train": sum(counts.values()), "val": n_val}


_PLAN_CHILD = """
import json, os, resource, sys, time
from pathlib import Path
t = time.perf_counter()
from imagenet_prep.config import build_config
from imagenet_prep.executors import make_executor
from imagenet_prep.plan import make_plan
options = json.loads(sys.argv[1])
cache_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else None
config = build_config({}, options)
executor = make_executor("local", config.worker_count)

def cpu_now():
    # this process, its reaped children, and the pool's live workers (forkserver children are not ours,
    # so rusage never counts them): read from /proc before the pool closes
    usage, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime
    for process in (getattr(getattr(executor, "pool", None), "_processes", None) or {}).values():
        try:
            fields = open(f"/proc/{process.pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total

try:
    plan = make_plan(config, runner=executor.map, cache_dir=cache_dir)
    images = sum(len(u.samples) for u in plan.units)
    cpu = cpu_now()
finally:
    executor.close()
seconds = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_mb": rss, "images": images, "units": len(plan.units)}))
"""


def _wipe_caches(dest: Path, cache_dir: Path | None) -> None:
    if cache_dir is not None:  # the index caches go there: the release folder is not written
        shutil.rmtree(cache_dir, ignore_errors=True)
    else:
        for cache in dest.glob("*.json"):
            cache.unlink()


def header_scan(dest: Path, every: int = 10) -> dict[str, float]:
    """CPU per tar header, in this process: the plain-header scan (what indexing uses) against tarfile's
    scan, alternately over every ``every``-th class tar, then the val tar (the ratio is what to compare)."""
    from imagenet_prep.fetch.catalog import TRAIN_TAR, VAL_TAR
    from imagenet_prep.io import tar
    from imagenet_prep.io.bytesource import FileByteSource

    train, val = FileByteSource(dest / TRAIN_TAR), FileByteSource(dest / VAL_TAR)
    class_tars, _ = tar.scan_tar(train, 0, train.size, "train", tolerate_cut_last=False)
    spans = [(train, m.offset, m.size) for m in class_tars[::every]] + [(val, 0, val.size)]
    cpu = {"fast": 0.0, "tarfile": 0.0}
    headers = 0
    for source, start, length in spans:
        started = time.process_time()
        members, _ = tar.scan_tar(source, start, length, "t", tolerate_cut_last=False)
        cpu["fast"] += time.process_time() - started
        started = time.process_time()
        tar._scan_tarfile(source, start, length, "t", tolerate_cut_last=False, flat=True)
        cpu["tarfile"] += time.process_time() - started
        headers += len(members)
    result = {
        "headers": headers,
        "fast_us": cpu["fast"] / headers * 1e6,
        "tarfile_us": cpu["tarfile"] / headers * 1e6,
    }
    print(f"header scan  {result['fast_us']:.1f} us a header (tarfile: {result['tarfile_us']:.1f} us, "
          f"{result['tarfile_us'] / result['fast_us']:.1f}x) over {headers:,} headers", flush=True)  # fmt: skip
    return result


def measure(
    dest: Path, workers: int, cache_dir: Path | None = None, only: list[str] | None = None
) -> dict[str, dict]:
    def run(label: str, **options: object) -> dict:
        options = {"source": str(dest), "out": str(dest.parent / "unused-out"), "workers": workers, **options}
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _PLAN_CHILD,
                json.dumps(options),
                *([str(cache_dir)] if cache_dir else []),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{label} failed: {done.stderr.strip().splitlines()[-1:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        cpu = f"  CPU {result['cpu']:6.2f} s" if "cpu" in result else ""
        print(f"{label:<12} {result['seconds']:6.2f} s{cpu}  parent RSS {result['rss_mb']:6.0f} MB  "
              f"{result['images']:,} images in {result['units']} units", flush=True)  # fmt: skip
        return result

    if only is not None:  # --only: these measurements, in order (the cache is wiped before "cold")
        runs: dict[str, tuple[str, dict]] = {
            "cold": ("cold-index", {}),
            "warm": ("warm-plan", {}),
            "imagenette": ("imagenette", {"subset": "imagenette"}),
        }
        for listed in LIST_RUNS:  # an image list's plan (a release written with --include-list NAME)
            runs[listed] = (listed, {"images": listed, "allow_missing": True})
        results = {}
        for name in only:
            if name == "scan":
                results["header-scan"] = header_scan(dest)
                continue
            if name == "cold":
                _wipe_caches(dest, cache_dir)
            key, options = runs[name]
            results[key] = run(key.replace("-", " "), **options)
        return results
    _wipe_caches(dest, cache_dir)
    results = {"cold-index": run("cold index")}
    results["warm-plan"] = run("warm plan")
    results["imagenette"] = run("imagenette", subset="imagenette")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="folder to write the release into (~3.4 GB at scale 1)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the images (default 1)")
    parser.add_argument("--measure", action="store_true", help="then time planning on it (fresh processes)")
    parser.add_argument("--measure-only", action="store_true", help="time planning on an existing release")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="pool size for indexing")
    parser.add_argument(
        "--cache-dir", type=Path, help="keep the index caches there (wiped before a cold index), not in DEST"
    )
    parser.add_argument(
        "--warm-only",
        action="store_true",
        help="the same as --only warm --only imagenette (keeps the caches)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=["cold", "warm", "imagenette", *LIST_RUNS, "scan"],
        help="with --measure-only: just these measurements, in order (repeatable; cold wipes --cache-dir; "
        "simclr-1pct / simclr-10pct: plan that --images list (release written with --include-list "
        "simclr-10pct); scan: CPU per tar header, the plain-header scan vs tarfile's, in this process)",
    )
    parser.add_argument(
        "--include-list",
        action="append",
        metavar="LIST",
        help="the train names include those of this image list (a bundled --images name such as simclr-10pct, "
        "or a file; repeatable), so list builds can be measured on the release",
    )
    args = parser.parse_args(argv)
    if not args.measure_only:
        write_release(args.dest, args.scale, args.include_list)
    if args.warm_only:
        args.only = [*(args.only or []), "warm", "imagenette"]
    if args.measure or args.measure_only:
        results = measure(args.dest, args.workers, args.cache_dir, args.only)
        if args.cache_dir is None and args.only is None:  # --cache-dir / --only: DEST is not written to
            (args.dest / "plan-bench.txt").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
