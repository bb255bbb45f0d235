"""The Kaggle zip's central directory at the real size: write a zip of ~2M entries with the Kaggle download's
names (train and val images, test images, the XML annotations, the LOC_* files; every member stored and empty,
so the zip is ~0.4 GB), then time a fresh process listing it (what every command does first: ``splits``,
``missing``, the train classes) without a cache (the first parse, which writes the cache) and with it (a no-op
re-run). With ``--plan``, also a whole-set ``build --dry-run`` (train and val planned from the cached directory:
what a no-op re-run costs before it finds every unit done), CPU and peak RSS counted over the process and its
workers. Reports wall time, CPU time (user + sys) and peak RSS of each; runs against whatever
``imagenet_prep`` PYTHONPATH selects, so the same command measures the code before and after a change.

Example: python scripts/bench_zip_directory.py --zip /tmp/hard26-zip --runs 3 --plan
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

ZIP_NAME = "imagenet-object-localization-challenge.zip"
TRAIN_PER_CLASS = 1281  # 1,281,000 train images: the real set has 1,281,167
ANNOTATED_PER_CLASS = 544  # the real set has 544,546 train annotations
VAL, TEST = 50_000, 100_000


def _names(wnids: list[str]):
    """The member names, in the order the Kaggle zip stores them (annotations, then data, then the LOC files)."""
    for wnid in wnids:
        for n in range(ANNOTATED_PER_CLASS):
            yield f"ILSVRC/Annotations/CLS-LOC/train/{wnid}/{wnid}_{n}.xml"
    for n in range(1, VAL + 1):
        yield f"ILSVRC/Annotations/CLS-LOC/val/ILSVRC2012_val_{n:08d}.xml"
    for n in range(1, TEST + 1):
        yield f"ILSVRC/Data/CLS-LOC/test/ILSVRC2012_test_{n:08d}.JPEG"
    for wnid in wnids:
        for n in range(TRAIN_PER_CLASS):
            yield f"ILSVRC/Data/CLS-LOC/train/{wnid}/{wnid}_{n}.JPEG"
    for n in range(1, VAL + 1):
        yield f"ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_{n:08d}.JPEG"


def make_zip(path: Path) -> int:
    """Write the zip by hand (zipfile keeps a ZipInfo per member: ~1 GB at this size); returns its entries."""
    from imagenet_prep.taxonomy import classes

    wnids = [c.wnid for c in classes.all_classes()]
    mapping = "".join(f"{c.wnid} {c.name}\n" for c in classes.all_classes()).encode()
    solution = "ImageId,PredictionString\n" + "".join(
        f"ILSVRC2012_val_{n:08d},{wnids[n % 1000]} 1 1 2 2 \n" for n in range(1, VAL + 1)
    )
    texts = {"LOC_synset_mapping.txt": mapping, "LOC_val_solution.csv": solution.encode()}
    central = bytearray()
    count = 0
    with open(path, "wb") as out:

        def member(name: str, data: bytes) -> None:
            nonlocal count
            import zlib

            raw = name.encode()
            crc = zlib.crc32(data)
            offset = out.tell()
            out.write(
                struct.pack(
                    "<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data), len(raw), 0
                )
            )
            out.write(raw)
            out.write(data)
            central.extend(
                struct.pack(
                    "<4s6H3L5H2L",
                    b"PK\x01\x02",
                    20,
                    20,
                    0,
                    0,
                    0,
                    0,
                    crc,
                    len(data),
                    len(data),
                    len(raw),
                    0,
                    0,
                    0,
                    0,
                    0o100644 << 16,
                    offset,
                )
            )
            central.extend(raw)
            count += 1

        for name in _names(wnids):
            member(name, b"")
        for name, data in texts.items():
            member(name, data)
        start = out.tell()
        out.write(central)
        end = out.tell()
        # ZIP64 end records: more than 65,535 entries.
        out.write(
            struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), start)
        )
        out.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1))
        out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    return count


def _list(folder: str, cache: str) -> None:
    """One fresh process: what every command asks of the zip first."""
    started = time.perf_counter()
    from imagenet_prep.sources.kaggle import KaggleZipSource

    source = KaggleZipSource(Path(folder), Path(cache))
    splits = source.splits()
    missing = source.missing()
    train = source.classes("train")
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": usage.ru_utime + usage.ru_stime,
                "rss_mb": usage.ru_maxrss / 1024,
                "splits": splits,
                "missing": missing,
                "classes": len(train),
            }
        )
    )


def _run(folder: Path, cache: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--list", str(folder), str(cache)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _plan(folder: Path, cache: Path) -> dict:
    """A fresh whole-set ``build --dry-run`` (planning from the cached directory), in a child process."""
    out = folder / "dry-out"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "IMAGENET_PREP_CACHE": str(cache)}
    argv = [sys.executable, "-m", "imagenet_prep", "build", "--source", str(folder), "--out", str(out)]
    started = time.perf_counter()
    pid = subprocess.Popen(
        [*argv, "--dry-run", "--workers", "2", "--quiet"], env=env, stdout=subprocess.DEVNULL
    ).pid
    _pid, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"build --dry-run failed (status {status})")
    # ru_maxrss of wait4: the largest of the process and the children it waited for (its workers)
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--zip", type=Path, help="scratch folder for the zip (kept and reused)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--plan", action="store_true", help="also time a whole-set build --dry-run")
    parser.add_argument("--list", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.list:
        _list(*args.list)
        return 0
    if args.zip is None:
        parser.error("--zip is required")
    folder = args.zip
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / ZIP_NAME).exists():
        started = time.perf_counter()
        count = make_zip(folder / ZIP_NAME)
        print(f"wrote {count:,} entries in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    cache = folder / "cache"
    for run in range(args.runs):
        shutil.rmtree(cache, ignore_errors=True)
        first = _run(folder, cache)
        again = _run(folder, cache)
        for what, result in (("first parse", first), ("no-op re-run", again)):
            print(
                f"run {run}: {what}: {result['seconds']:.2f} s wall, {result['cpu']:.2f} s CPU, "
                f"{result['rss_mb']:.0f} MB peak RSS ({result['classes']} train classes, splits {result['splits']})"
            )
        if args.plan:
            plan = _plan(folder, cache)
            print(
                f"run {run}: whole-set build --dry-run: {plan['seconds']:.2f} s wall, {plan['cpu']:.2f} s CPU, "
                f"{plan['rss_mb']:.0f} MB peak RSS"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
