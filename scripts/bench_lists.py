#!/usr/bin/env python3
"""Benchmark an image-list build against the full build of the same release (benchmark only).

A list that touches every class with a few images each (SimCLR's 1%: 1,000 classes, ~13 images a class) runs
1,000 tiny units, so what a unit costs whatever its size (the pool's round trip, opening the class tar, the done
marker, the parent's bookkeeping) decides whether the list costs in proportion to its images. This script writes
(or reuses) a release whose train names include the list's (``make_full_release.py --scale S --include-list
LIST``: 1000 class tars of tiny JPEGs, ``1300 * S`` images a class), then builds, each in a fresh CLI process
and interleaved (the order rotates from run to run):

- ``list``: ``--images LIST``;
- ``full``: every train image (``--splits train``, the list's only split).

For each, wall time, CPU (user + sys of the CLI process and its workers, from ``wait4``), the cores the rest of
the machine kept busy meanwhile, images and source bytes read (build.json: images and index). Reported, as
medians: the list's share of the full build's time and CPU, divided by its share of the images (``cost per
image``: 1.0 = exactly in proportion), and the projection to the real release (1,281,167 train images): the
list build is the same there (the same units and images), and the full build costs the measured cost per image
more for each of the images it adds.

``--code DIR`` (repeatable) runs the builds with ``PYTHONPATH=DIR``, so two checkouts compare in one session
(their runs interleaved too). Nothing is deleted between timed runs (deleting thousands of files makes the next
creates slow on some file systems); the run folders go at the end.

Example (a 326 MB release of 128,116 train images, written in ~10 s):

    python scripts/bench_lists.py /tmp/lists-release --scale 0.1 --runs 3 --workers 2 --code /old/checkout --code .
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REAL_TRAIN_IMAGES = 1_281_167
_TICK = os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    return (sum(values[:3]) + sum(values[5:8])) / _TICK


def ensure_release(dest: Path, scale: float, image_list: str) -> None:
    from imagenet_prep.fetch.catalog import TRAIN_TAR

    if (dest / TRAIN_TAR).exists():
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_full_release import write_release

    write_release(dest, scale, [image_list])


def run_build(code: Path, release: Path, out: Path, workers: int, extra: list[str]) -> dict[str, Any]:
    """One build in a fresh CLI process with ``PYTHONPATH=code``: wall, CPU of its process tree, images, bytes."""
    env = dict(os.environ, PYTHONPATH=str(code))
    argv = [sys.executable, "-m", "imagenet_prep", "build", "--source", str(release), "--out", str(out)]
    argv += ["--workers", str(workers), "--json", *extra]
    busy = _busy_seconds()
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - started
    # The reaped child's usage includes the workers it waited for.
    cpu = _last_child_usage()
    if child.returncode != 0:
        raise SystemExit(f"build failed ({child.returncode}): {stderr.strip()[-800:]}")
    other = max(0.0, (_busy_seconds() - busy - cpu) / wall)
    result = json.loads(stdout)
    record = json.loads((out / "build.json").read_text())
    index_bytes = int(record.get("bytes_read", {}).get("index", 0))
    return {
        "wall": wall,
        "cpu": cpu,
        "other_cores": other,
        "images": result["images"],
        "units": result["units"]["total"],
        "image_bytes": result["bytes_read"],
        "index_bytes": index_bytes,
    }


_children_cpu = 0.0


def _last_child_usage() -> float:
    """CPU (user + sys) of the children reaped since the previous call."""
    global _children_cpu
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    spent, _children_cpu = total - _children_cpu, total
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("release", type=Path, help="the release folder (written there if it holds none)")
    parser.add_argument(
        "--scale", type=float, default=0.1, help="images per class: 1300 x SCALE (default 0.1)"
    )
    parser.add_argument("--list", default="simclr-1pct", help="the --images list (default simclr-1pct)")
    parser.add_argument(
        "--runs", type=int, default=3, help="interleaved runs; medians are reported (default 3)"
    )
    parser.add_argument(
        "--full-runs",
        type=int,
        help="runs that also build the full release (default: every run; the short list build is the noisy one)",
    )
    parser.add_argument(
        "--per-unit",
        action="store_true",
        help="instead: the fixed cost of a unit, from two lists of 1,000 of the list's images, one in each of "
        "1,000 classes against all of each class's images in as few classes (the same images' cost)",
    )
    parser.add_argument("--workers", type=int, default=2, help="--workers of every build (default 2)")
    parser.add_argument(
        "--code",
        type=Path,
        action="append",
        help="a checkout to run the builds with (PYTHONPATH; repeatable; default: the installed package)",
    )
    parser.add_argument("--work", type=Path, help="folder for the run outputs (default: beside the release)")
    parser.add_argument("--json", type=Path, help="also write the results there")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run outputs (default: deleted at the end)"
    )
    args = parser.parse_args(argv)
    ensure_release(args.release, args.scale, args.list)
    codes = [code.resolve() for code in args.code] if args.code else [Path(os.environ.get("PYTHONPATH", "."))]
    work = args.work or args.release.parent / f"{args.release.name}-runs"
    work.mkdir(parents=True, exist_ok=True)
    variants = {"list": ["--images", args.list], "full": ["--splits", "train"]}
    if args.per_unit:
        variants = per_unit_lists(args.list, work)
    jobs = [(code, name) for code in codes for name in variants]
    _last_child_usage()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {str(c): {n: [] for n in variants} for c in codes}
    try:
        full_runs = args.runs if args.full_runs is None else args.full_runs
        for run in range(args.runs):
            shift = run % len(jobs)
            for index, (code, name) in enumerate(jobs[shift:] + jobs[:shift]):
                if name == "full" and run >= full_runs:
                    continue
                out = work / f"run{run}-{index}-{name}"
                got = run_build(code, args.release, out, args.workers, variants[name])
                runs[str(code)][name].append(got)
                print(
                    f"run {run} {code} {name:<4} wall {got['wall']:6.2f} s  cpu {got['cpu']:6.2f} s  "
                    f"{got['images']:,} images in {got['units']} units  read {got['image_bytes']:,} B  "
                    f"(other cores busy: {got['other_cores']:.1f})",
                    flush=True,
                )
        summary = {
            code: (per_unit if args.per_unit else summarise)(by_name) for code, by_name in runs.items()
        }
        for code, figures in summary.items():
            print(f"\n{code}:")
            for key, value in figures.items():
                print(f"  {key:<34} {value}")
        if args.json:
            args.json.write_text(json.dumps({"runs": runs, "summary": summary}, indent=1) + "\n")
    finally:
        if not args.keep:  # (deleting 100,000s of files takes minutes here: the results are out first)
            shutil.rmtree(work, ignore_errors=True)
    return 0


def per_unit_lists(image_list: str, work: Path) -> dict[str, list[str]]:
    """Two --images files of 1,000 images each: one per class over 1,000 classes ("spread"), and every image of
    as few classes ("packed"); their difference is 1,000 units' fixed cost against ~80."""
    from imagenet_prep.taxonomy.image_lists import load_spec

    by_class: dict[str, list[str]] = {}
    for listed in load_spec(image_list):
        for image in listed.images:
            if image.source_split == "train" and image.wnid is not None:
                by_class.setdefault(image.wnid, []).append(image.key)
    spread = [keys[0] for _, keys in sorted(by_class.items())][:1000]
    packed = [key for _, keys in sorted(by_class.items()) for key in keys][: len(spread)]
    files = {}
    for name, keys in (("spread", spread), ("packed", packed)):
        files[name] = work / f"{name}.txt"
        files[name].write_text("".join(f"{key}.JPEG\n" for key in keys))
    return {name: ["--images", str(path)] for name, path in files.items()}


def per_unit(by_name: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The fixed cost of a unit: (spread - packed) / (units of spread - units of packed), medians."""
    spread, packed = by_name["spread"], by_name["packed"]
    units = spread[0]["units"] - packed[0]["units"]
    figures: dict[str, Any] = {"units spread / packed": f"{spread[0]['units']} / {packed[0]['units']}"}
    for what in ("wall", "cpu"):
        a = statistics.median(r[what] for r in spread)
        b = statistics.median(r[what] for r in packed)
        figures[f"{what}: spread s / packed s"] = f"{a:.3f} / {b:.3f}"
        figures[f"{what}: ms per unit"] = round((a - b) / units * 1000, 3)
    return figures


def summarise(by_name: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The list's share of the full build's time and CPU (the median of each), per image share; bytes read."""
    one, full = by_name["list"][0], by_name["full"][0]
    image_share = one["images"] / full["images"]

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 4)

    figures: dict[str, Any] = {
        "images list / full": f"{one['images']:,} / {full['images']:,} ({image_share:.2%})",
        "image bytes read list / full": f"{one['image_bytes']:,} / {full['image_bytes']:,} "
        f"({one['image_bytes'] / full['image_bytes']:.2%})",
        "index bytes read list / full": f"{one['index_bytes']:,} / {full['index_bytes']:,}",
    }
    for what in ("wall", "cpu"):
        listed = median([r[what] for r in by_name["list"]])
        whole = median([r[what] for r in by_name["full"]])
        share = listed / whole
        # The real release: the same list build; the full build costs the measured cost per added image more.
        per_image = (whole - listed) / (full["images"] - one["images"])
        projected = listed / (listed + per_image * (REAL_TRAIN_IMAGES - one["images"]))
        real_share = one["images"] / REAL_TRAIN_IMAGES
        figures[f"{what}: list s / full s (medians)"] = f"{listed} / {whole}"
        figures[f"{what}: list share"] = f"{share:.2%} (cost per image {share / image_share:.2f}x)"
        figures[f"{what}: projected share, real release"] = (
            f"{projected:.2%} (cost per image {projected / real_share:.2f}x)"
        )
    figures["other cores busy (median)"] = median([r["other_cores"] for rs in by_name.values() for r in rs])
    return figures


if __name__ == "__main__":
    sys.exit(main())
