"""Deterministic archive pieces every miniature writer uses: tar members with fixed times and owners, gzip
without a timestamp, zip entries with a fixed date. The same arguments give the same bytes."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from ..io.atomic import write_bytes_atomic

TAR_MTIME = 1336003200  # 2012-05-03: fixed so the same spec gives the same bytes


def tarinfo(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    """A tar header with fixed time, owner and mode (a folder when ``directory``)."""
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.mtime = TAR_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(tarinfo(name, len(data)), io.BytesIO(data))


def tar_bytes(entries: Iterable[tuple[str, bytes | None]]) -> bytes:
    """A deterministic GNU tar of (name, data) entries (data None = a folder)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in entries:
            if data is None:
                tar.addfile(tarinfo(name, directory=True))
            else:
                add(tar, name, data)
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    """gzip with mtime 0 and no file name: the header carries nothing that changes between runs."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def zip_info(name: str, compress: int, date_time: tuple[int, int, int, int, int, int]) -> zipfile.ZipInfo:
    """A zip entry header with a fixed date and Unix permissions."""
    info = zipfile.ZipInfo(name, date_time=date_time)
    info.compress_type = compress
    info.external_attr = 0o100644 << 16
    info.create_system = 3
    return info


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)


def stem(name: str) -> str:
    return os.path.splitext(name)[0]


# (wnid, member name, bytes) of the ILSVRC2012 miniature's images: what a re-packing writer lays out anew.
Images = list[tuple[str, str, bytes]]
