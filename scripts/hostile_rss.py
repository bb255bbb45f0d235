"""Peak memory of a build over hostile archive members (issue 15): a class tar holding one member that claims
1 GiB or 4 GiB (a JPEG head, then a hole in a sparse file: a few KB of disk), or one just under the member-size
cap (read and decoded). The build runs with --workers 1, i.e. in one process, so the peak RSS of that process
(ru_maxrss of the child) is the whole process tree's.

Example: python scripts/hostile_rss.py --case 1g --case 4g --case undercap
"""

from __future__ import annotations

import argparse
import io
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CLAIMS = {"1g": 1 << 30, "4g": 4 << 30, "undercap": (64 << 20) - 4096}


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 1336003200, 0o644
    return info.tobuf(tarfile.GNU_FORMAT)


def _member(name: str, parts: list) -> list:
    size = sum(p if isinstance(p, int) else len(p) for p in parts)
    return [_header(name, size), *parts, b"\0" * (-size % 512)]


def _members(data: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return [(m.name, archive.extractfile(m).read()) for m in archive if m.isreg()]  # type: ignore[union-attr]


def _write(path: Path, parts: list) -> None:
    with open(path, "wb") as handle:
        for part in parts:
            if isinstance(part, int):
                handle.seek(part, io.SEEK_CUR)  # a hole: the file stays sparse
            else:
                handle.write(part)
        handle.truncate()


def measure(case: str) -> tuple[int, float, str]:
    root = Path(tempfile.mkdtemp(prefix="hostile-rss-"))
    try:
        cli = [sys.executable, "-m", "imagenet_prep"]
        sample = [
            "sample",
            str(root / "base"),
            "--classes",
            "2",
            "--train-per-class",
            "4",
            "--val-per-class",
            "3",
        ]
        subprocess.run(cli + sample, check=True, capture_output=True)
        base, src = root / "base", root / "src"
        src.mkdir()
        outer: list = []
        for i, (name, data) in enumerate(_members((base / "ILSVRC2012_img_train.tar").read_bytes())):
            images = _members(data)
            inner = [part for n, d in images for part in _member(n, [d])]
            if i == 0:
                head = images[0][1][:2000]
                inner = _member(f"{name[:-4]}_666.JPEG", [head, CLAIMS[case] - len(head)]) + inner
            outer += _member(name, inner + [b"\0" * 1024])
        _write(src / "ILSVRC2012_img_train.tar", outer + [b"\0" * 1024])
        for name in ("ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz"):
            shutil.copy(base / name, src / name)
        build = ["build", "--source", str(src), "--out", str(root / "out"), "--workers", "1", "--size", "32"]
        done = subprocess.run(cli + build + ["--quiet", "--allow-skips"], capture_output=True, text=True)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return done.returncode, peak_mb, done.stderr.strip().splitlines()[0] if done.stderr.strip() else ""
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", action="append", choices=sorted(CLAIMS), help="repeatable (default: all)")
    parser.add_argument("--one", choices=sorted(CLAIMS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # in a fresh interpreter: RUSAGE_CHILDREN is the maximum over every child waited for
        code, peak, line = measure(args.one)
        print(f"{args.one}: exit {code}, peak RSS {peak:.0f} MB  {line[:160]}")
        return 0
    for case in args.case or sorted(CLAIMS):
        done = subprocess.run([sys.executable, __file__, "--one", case], capture_output=True, text=True)
        print(done.stdout.strip() or done.stderr.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
