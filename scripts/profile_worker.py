#!/usr/bin/env python3
"""Measure the worker's per-image cost against the Pillow floor: CPU time per image, 1 worker, in-process.

Each measurement runs in a fresh child process whose ``PYTHONPATH`` is one of the ``--code`` trees, so the same
command compares two checkouts of the package (``--code before=/work/wt/base --code after=.``) interleaved: every
run goes through every (workload, variant, code) in turn, in an order that rotates from run to run, and the
medians over runs are reported. A variant is ``floor`` (``process.floor_process`` on the images' bytes already in
memory: no file I/O) or an output format (``imagefolder``, ``wds``, ``parquet``, ...: ``build()`` with
``workers=1``, which runs the unit in the measuring process). CPU is the child's user + system time
(``getrusage``) over the timed part only: the build's whole call (its plan included, a few percent of a few
thousand images), the floor's loop. New run folders each time; nothing is deleted until the end (on some file
systems creating files right after deleting thousands is slow for minutes).

``--profile WORKLOAD:VARIANT`` instead runs one build under cProfile (the first ``--code``) and prints the top
functions by own time.

Example:

    python scripts/profile_worker.py --images 3000 --runs 3 --code before=/work/wt/base --code after=.
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

WORKLOADS: dict[str, dict[str, Any]] = {
    "shorter-256": {"resize": "shorter", "size": 256, "quality": 90},
    "square-64": {"resize": "square", "size": 64, "quality": 90},
}
VAL_PER_CLASS = 5


def _release(work: Path, images: int, classes: int) -> Path:
    from imagenet_prep.sample import SampleSpec, write_sample

    folder = work / f"release-{images}-{classes}"
    if (folder / "MD5SUMS").exists():
        return folder
    train = max(1, images // classes - VAL_PER_CLASS)
    spec = SampleSpec(classes=classes, train_per_class=train, val_per_class=VAL_PER_CLASS, realistic=True)
    write_sample(folder, spec, overwrite=True)
    return folder


def _blob(release: Path) -> Path:
    """Every image of the release, end to end in one file, with its offsets (what the floor processes)."""
    from imagenet_prep.io import tar, tar_index

    blob = release.parent / (release.name + ".blob")
    if blob.exists():
        return blob
    offsets = [0]
    with open(blob, "wb") as handle:
        with tar_index.TrainArchive(release / "ILSVRC2012_img_train.tar") as train:
            for wnid in train.classes():
                for member in train.members(wnid):
                    offsets.append(offsets[-1] + handle.write(tar.read_member(train.source, member)))
        with tar_index.ValArchive(release / "ILSVRC2012_img_val.tar") as val:
            for member in val.members():
                offsets.append(offsets[-1] + handle.write(tar.read_member(val.source, member)))
    Path(str(blob) + ".json").write_text(json.dumps(offsets))
    return blob


def _usage() -> tuple[float, float]:
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime, me.ru_stime


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this process (run by the parent with the PYTHONPATH of one ``--code``)."""
    from imagenet_prep.image.process import ImageOptions, floor_process

    options = ImageOptions(**WORKLOADS[args.workload])
    if args.variant == "floor":
        blob = Path(args.blob).read_bytes()
        offsets = json.loads(Path(args.blob + ".json").read_text())
        pieces = [blob[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        user, system = _usage()
        started = time.perf_counter()
        for data in pieces:
            floor_process(data, options)
        wall = time.perf_counter() - started
        images = len(pieces)
        unit_cpu = [0.0, 0.0]
    else:
        from imagenet_prep.build import build, worker
        from imagenet_prep.config import BuildConfig

        # The units' own CPU (1 worker: they run in this process): the per-image path without the plan and the
        # finish, whose fixed cost is not what this script measures.
        unit_cpu = [0.0, 0.0]
        run = worker.UnitJob.run

        def timed_run(self: Any, unit: Any, tick: Any = None) -> Any:
            user, system = _usage()
            try:
                return run(self, unit, tick)
            finally:
                user_end, system_end = _usage()
                unit_cpu[0] += user_end - user
                unit_cpu[1] += system_end - system

        worker.UnitJob.run = timed_run  # type: ignore[method-assign]
        config = BuildConfig(
            source=Path(args.release), out=Path(args.out), workers=1, image=options, output=args.variant
        )
        if args.loop:
            return _loop(args, config, build, worker, run)
        profiler = None
        if args.profile_to:
            import cProfile

            profiler = cProfile.Profile()
        user, system = _usage()
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        result = build(config, progress=lambda n: None)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile_to)
        wall = time.perf_counter() - started
        images = result.images_written
    user_end, system_end = _usage()
    return {
        "images": images,
        "wall": wall,
        "user": user_end - user,
        "sys": system_end - system,
        "unit_user": unit_cpu[0],
        "unit_sys": unit_cpu[1],
        "load": os.getloadavg()[0],
    }


def _loop(args: argparse.Namespace, config: Any, build: Any, worker: Any, run: Any) -> dict[str, Any]:
    """Build once (capturing the units), then time the same units again and again, each repetition followed by
    the floor on the same images' bytes (read beforehand): best of ``--loop`` repetitions each, in this one
    process, so both share the machine's noise. The per-image path's overhead, without the plan or the finish.

    Each repetition writes into a fresh copy of OUT's folders (no file of an earlier repetition is replaced:
    replacing frees inodes, and on a journal-less ext4 creating files next to recently freed inodes is slow).
    The parts, each timed alone over the same units: ``read`` (the source's reader: header check and read,
    each image's bytes dropped as the next comes) and ``process`` (``process_image`` on the bytes in memory,
    against the floor's ``floor_process``); what the whole unit costs beyond those two is the writer, the
    manifest rows and the done marker."""
    import dataclasses

    from imagenet_prep.image.process import floor_process, process_image
    from imagenet_prep.sources import source_class

    captured: list[tuple[Any, Any]] = []

    def capture(self: Any, unit: Any, tick: Any = None) -> Any:
        captured.append((self, unit))
        return run(self, unit, tick)

    worker.UnitJob.run = capture
    build(config, progress=lambda n: None)
    worker.UnitJob.run = run
    samples, pieces = [], []
    for _job, unit in captured:
        reader = source_class(unit.source).open_unit(unit)
        for sample, data in reader:
            samples.append(sample)
            pieces.append(data)
        reader.close()
    options = config.image
    first_out = Path(captured[0][0].out)
    best = {"unit": float("inf"), "floor": float("inf"), "read": float("inf"), "process": float("inf")}

    def timed(part: str, work: Any) -> None:
        started = _usage()
        work()
        ended = _usage()
        best[part] = min(best[part], sum(ended) - sum(started))

    def read_all() -> None:
        for _job, unit in captured:
            reader = source_class(unit.source).open_unit(unit)
            for _ in reader:
                pass
            reader.close()

    for repetition in range(args.loop):
        out = first_out.parent / f"{first_out.name}-loop{repetition}"
        shutil.copytree(first_out, out, ignore=lambda folder, names: [
            name for name in names if not os.path.isdir(os.path.join(folder, name))])  # fmt: skip
        jobs = [(dataclasses.replace(job, out=str(out)), unit) for job, unit in captured]
        timed("unit", lambda jobs=jobs: [run(job, unit) for job, unit in jobs])
        timed("floor", lambda: [floor_process(data, options) for data in pieces])
        timed("read", read_all)
        timed("process", lambda: [process_image(data, options, sample.name)
                                  for sample, data in zip(samples, pieces, strict=True)])  # fmt: skip
    return {
        "images": len(pieces),
        "unit_cpu": best["unit"],
        "floor_cpu": best["floor"],
        "read_cpu": best["read"],
        "process_cpu": best["process"],
        "load": os.getloadavg()[0],
    }


def _per(result: dict[str, Any], scope: str = "", part: str = "") -> float:
    """CPU seconds per image: ``scope`` "unit" = the units' (the floor's loop), "" = the whole call; ``part``
    "sys" = system time only, "" = user + system."""
    if scope == "unit" and not result["unit_user"] and not result["unit_sys"]:
        scope = ""  # the floor: its loop is all it times
    prefix = f"{scope}_" if scope else ""
    parts = [part] if part else ["user", "sys"]
    return sum(result[prefix + name] for name in parts) / result["images"]


def _spawn(code: Path, argv: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(code.resolve())}
    done = subprocess.run(
        [sys.executable, __file__, "--child", *argv], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"child failed ({code}, {argv}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("Example:")[1]
    )
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--classes", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workloads", default="square-64,shorter-256")
    parser.add_argument("--variants", default="floor,imagefolder,wds", help="floor and/or output formats")
    parser.add_argument(
        "--code", action="append", default=[], help="NAME=TREE: a checkout to measure (repeatable)"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/perfworker-profile"))
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    parser.add_argument("--profile", help="WORKLOAD:VARIANT: one cProfile'd build, top functions printed")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--loop",
        type=int,
        default=0,
        help="N: per variant, one process times the build's units N times and the floor on the same bytes N "
        "times, alternating, and reports the best of each (the per-image overhead with the least noise)",
    )
    # child-only
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--release", help=argparse.SUPPRESS)
    parser.add_argument("--blob", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0

    codes = dict(item.split("=", 1) for item in args.code) or {"this": "."}
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    release = _release(work, args.images, args.classes)
    blob = _blob(release)
    runs_dir = work / f"runs-{os.getpid()}"
    counter = 0

    def measure(workload: str, variant: str, code: str, profile_to: str = "") -> dict[str, Any]:
        nonlocal counter
        counter += 1
        child_argv = ["--workload", workload, "--variant", variant, "--release", str(release)]
        child_argv += ["--blob", str(blob), "--out", str(runs_dir / f"{counter}-{code}-{variant}-{workload}")]
        if args.loop:
            child_argv += ["--loop", str(args.loop)]
        if profile_to:
            child_argv += ["--profile-to", profile_to]
        return _spawn(Path(codes[code]), child_argv)

    try:
        if args.profile:
            workload, variant = args.profile.split(":")
            stats_path = str(work / "profile.stats")
            result = measure(workload, variant, next(iter(codes)), stats_path)
            print(json.dumps(result))
            import pstats

            pstats.Stats(stats_path).sort_stats("tottime").print_stats(args.top)
            return 0
        if args.loop:
            for workload in args.workloads.split(","):
                for variant in args.variants.split(","):
                    if variant == "floor":
                        continue
                    for code in codes:
                        got = measure(workload, variant, code)
                        unit, floor = got["unit_cpu"] / got["images"], got["floor_cpu"] / got["images"]
                        parts = ""
                        if "read_cpu" in got:  # this script's own loop (older copies report no parts)
                            read, process = (
                                got["read_cpu"] / got["images"],
                                got["process_cpu"] / got["images"],
                            )
                            rest = unit - read - process
                            parts = (
                                f" [read {read * 1e6:.0f} us, process-floor {(process - floor) * 1e6:.0f} us, "
                                f"write+rows+marker {rest * 1e6:.0f} us]"
                            )
                        print(
                            f"{workload:12} {variant:12} {code:8} units {unit * 1000:.3f} ms/img floor "
                            f"{floor * 1000:.3f} ms/img overhead {(unit - floor) * 1e6:.0f} us/img "
                            f"floor/units {floor / unit:.3f}{parts} load {got['load']:.2f}",
                            flush=True,
                        )
            return 0
        cells = [
            (workload, variant, code)
            for workload in args.workloads.split(",")
            for variant in args.variants.split(",")
            for code in (codes if variant != "floor" else [next(iter(codes))])
        ]
        results: dict[tuple[str, str, str], list[dict[str, Any]]] = {cell: [] for cell in cells}
        for run in range(args.runs):
            order = cells[run % len(cells) :] + cells[: run % len(cells)]
            for cell in order:
                got = measure(*cell)
                results[cell].append(got)
                print(
                    f"run {run} {cell[0]:12} {cell[1]:12} {cell[2]:8} units {_per(got, 'unit') * 1000:.3f} ms/img "
                    f"(sys {_per(got, 'unit', 'sys') * 1000:.3f}) whole {_per(got) * 1000:.3f} ms/img "
                    f"wall {got['wall']:.2f} s load {got['load']:.2f}",
                    flush=True,
                )
        print(
            "\nmedians over runs, CPU ms per image (user+sys): the units' (the floor: its loop), their system "
            "part, the whole build's; floor/units and floor/whole (CPU ratios); wall s; load"
        )
        for workload in args.workloads.split(","):
            floor = [r for (w, v, _), rs in results.items() if w == workload and v == "floor" for r in rs]
            floor_cpu = statistics.median(_per(r, "unit") for r in floor) if floor else None
            for (w, variant, code), rs in results.items():
                if w != workload:
                    continue
                unit = statistics.median(_per(r, "unit") for r in rs)
                system = statistics.median(_per(r, "unit", "sys") for r in rs)
                whole = statistics.median(_per(r) for r in rs)
                wall = statistics.median(r["wall"] for r in rs)
                load = statistics.median(r["load"] for r in rs)
                ratios = f"{floor_cpu / unit:.3f} {floor_cpu / whole:.3f}" if floor_cpu else "- -"
                print(
                    f"{workload:12} {variant:12} {code:8} {unit * 1000:.3f} {system * 1000:.3f} "
                    f"{whole * 1000:.3f} {ratios} {wall:.2f} {load:.2f}"
                )
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(runs_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
