"""Peak memory of a build over hostile archive members (issue 15): a class tar holding one member that claims
1 GiB or 4 GiB (a JPEG head, then a hole in a sparse file: a few KB of disk), or one just under the member-size
cap (read and decoded). The build runs with --workers 1, i.e. in one process, so the peak RSS of that process
(ru_maxrss of the child) is the whole process tree's.

Issue 26 adds source-side cases: ``parquet-300m`` (a Hugging Face Parquet shard holding a 300 MiB image alone in
its row group: ~300 KB on disk), ``parquet-300m-shared`` (the same image in a row group with other rows),
``label-1g`` (a Kaggle tree whose LOC_val_solution.csv claims 1 GiB: a hole), ``fifo`` (an ImageFolder image
that is a FIFO: the build must not wait for a writer), ``zip-overlap`` (500 central-directory entries on one
deflated 60 MiB member, CRC and sizes copied), ``targz-tampered`` (a 1 GiB member of a tar.gz whose cached listing
says 100 bytes).

Example: python scripts/hostile_rss.py --case 1g --case 4g --case undercap --case parquet-300m
"""

from __future__ import annotations

import argparse
import io
import os
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


def _sample(root: Path, layout: str) -> Path:
    cli = [sys.executable, "-m", "imagenet_prep", "sample", str(root / layout), "--layout", layout]
    subprocess.run(
        [*cli, "--classes", "2", "--train-per-class", "4", "--val-per-class", "3"],
        check=True,
        capture_output=True,
    )
    return root / layout


def _parquet(root: Path, shared: bool) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = _sample(root, "hf-parquet")
    shard = sorted((src / "data").glob("train-*.parquet"))[0]
    table = pq.read_table(shard)
    first = table.column("image").combine_chunks()
    wnid = first.field("path")[0].as_py().rsplit("_", 1)[1].split(".")[0]
    image = pa.StructArray.from_arrays(
        [pa.array([b"\xff\xd8" + bytes(300 << 20)], pa.binary()), pa.array([f"n1_666_{wnid}.JPEG"])],
        names=["bytes", "path"],
    )
    huge = pa.table({"image": image, "label": table.column("label").slice(0, 1)}).cast(table.schema)
    with pq.ParquetWriter(shard.with_suffix(".new"), table.schema, compression="zstd") as writer:
        writer.write_table(pa.concat_tables([huge, table]) if shared else huge)
        if not shared:
            writer.write_table(table)
    shard.with_suffix(".new").replace(shard)
    return src


def _label_1g(root: Path) -> Path:
    src = _sample(root, "kaggle")
    with open(src / "LOC_val_solution.csv", "r+b") as handle:
        handle.truncate(1 << 30)
    return src


def _fifo(root: Path) -> Path:
    src = _sample(root, "imagefolder")
    folder = next(p for p in sorted((src / "train").iterdir()) if p.is_dir())
    os.mkfifo(folder / f"{folder.name}_777.JPEG")
    return src


def _zip_overlap(root: Path) -> Path:
    """500 central-directory entries sharing one deflated 60 MiB member (a tiny zip that would cost minutes of
    CPU and 500 inflations if each entry were read)."""
    import zipfile

    src = _sample(root, "kaggle-zip")
    path = src / "imagenet-object-localization-challenge.zip"
    with zipfile.ZipFile(path) as archive:
        wnid = next(n for n in archive.namelist() if "/train/n" in n).split("/")[4]
    head = f"ILSVRC/Data/CLS-LOC/train/{wnid}/{wnid}_99999"
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{head}000.JPEG", b"\xff\xd8" + bytes(60 << 20))
        for i in range(1, 500):
            archive.writestr(f"{head}{i:03d}.JPEG", b"\xff\xd8")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        infos = {i.filename: i for i in archive.infolist()}
    first = infos[f"{head}000.JPEG"]
    cd = _cd_at(data, first.filename)
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_len = int.from_bytes(data[at + 28 : at + 30], "little")
        name = data[at + 46 : at + 46 + name_len].decode()
        if name.startswith(head) and name != first.filename:
            data[at + 16 : at + 28] = data[cd + 16 : cd + 28]
            data[at + 42 : at + 46] = first.header_offset.to_bytes(4, "little")
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    return src


def _targz_tampered(root: Path) -> Path:
    """A val_images.tar.gz holding a 1 GiB member (zeros: ~1 MB gzipped) whose cached listing was edited to say
    100 bytes, so the plan keeps it: the worker must size it from the stream's own tar header."""
    import gzip
    import json
    import tarfile

    src = _sample(root, "hf-tar")
    shard = src / "data" / "val_images.tar.gz"
    with gzip.open(shard) as handle:
        members = _members(handle.read())
    wnid = members[0][0].rsplit("_", 1)[1].split(".")[0]
    big = f"ILSVRC2012_val_00049999_{wnid}.JPEG"
    with gzip.open(shard, "wb", compresslevel=1) as out, tarfile.open(fileobj=out, mode="w|") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(big)
        info.size = 1 << 30
        tar.addfile(info, _Zeros(1 << 30))
    cli = [sys.executable, "-m", "imagenet_prep", "build", "--source", str(src), "--out", str(root / "first")]
    subprocess.run(
        [*cli, "--splits", "val", "--quiet", "--allow-skips"], capture_output=True
    )  # lists, caches
    cache = shard.with_name(shard.name + ".index.json")
    doc = json.loads(cache.read_text())
    for member in doc["members"]:
        if member[0].endswith(big):
            member[2] = 100
    cache.write_text(json.dumps(doc))
    shutil.rmtree(root / "first", ignore_errors=True)
    return src


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def _cd_at(data: bytearray, name: str) -> int:
    return data.rfind(b"PK\x01\x02", 0, data.rfind(name.encode()))


SOURCES = {
    "parquet-300m": lambda root: _parquet(root, False),
    "parquet-300m-shared": lambda root: _parquet(root, True),
    "label-1g": _label_1g,
    "fifo": _fifo,
    "zip-overlap": _zip_overlap,
    "targz-tampered": _targz_tampered,
}


def measure_source(case: str) -> tuple[int, float, str]:
    root = Path(tempfile.mkdtemp(prefix="hostile-rss-"))
    try:
        # Made in another process (this one stays small: a child forked from a process that held the 300 MiB
        # image would start with that resident size).
        made = subprocess.run(
            [sys.executable, __file__, "--make", case, str(root)], check=True, capture_output=True, text=True
        )
        src = Path(made.stdout.strip().splitlines()[-1])
        cli = [
            sys.executable,
            "-m",
            "imagenet_prep",
            "build",
            "--source",
            str(src),
            "--out",
            str(root / "out"),
        ]
        # wait4: the build's own peak (and its workers'), not the generator's, which is another child of ours.
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(
                [*cli, "--workers", "1", "--size", "32", "--quiet", "--allow-skips"],
                stdout=subprocess.DEVNULL,
                stderr=err,
                text=True,
            )
            _pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            lines = err.read().strip().splitlines()
        return proc.returncode, usage.ru_maxrss / 1024, lines[0] if lines else ""
    finally:
        shutil.rmtree(root, ignore_errors=True)


def measure(case: str) -> tuple[int, float, str]:
    if case in SOURCES:
        return measure_source(case)
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


CASES = {**CLAIMS, **SOURCES}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="repeatable (default: all)")
    parser.add_argument("--one", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--make", nargs=2, metavar=("CASE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        print(SOURCES[args.make[0]](Path(args.make[1])))
        return 0
    if args.one:  # in a fresh interpreter: RUSAGE_CHILDREN is the maximum over every child waited for
        code, peak, line = measure(args.one)
        print(f"{args.one}: exit {code}, peak RSS {peak:.0f} MB  {line[:160]}")
        return 0
    for case in args.case or sorted(CASES):
        done = subprocess.run([sys.executable, __file__, "--one", case], capture_output=True, text=True)
        print(done.stdout.strip() or done.stderr.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
