"""Tar writing for the hardening tests (issue 15): members in the exact ILSVRC2012 layout, plus what tarfile
cannot write: GNU sparse members ('S' headers crafted byte by byte) and members whose data is a hole in a
sparse file on disk (a member claiming 1 GiB that costs a few KB of disk)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

MTIME = 1336003200
Segments = list  # of bytes (written) and int (a hole of that many zero bytes, not written)


def _header(name: str, size: int, fmt: int = tarfile.GNU_FORMAT, pax: dict[str, str] | None = None) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, MTIME, 0o644
    if pax:
        info.pax_headers = dict(pax)
    return info.tobuf(fmt)


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 512)


def length(segments: Segments) -> int:
    return sum(s if isinstance(s, int) else len(s) for s in segments)


def member(name: str, data: bytes | Segments) -> Segments:
    """A regular member; ``data`` may hold holes (ints)."""
    segments = [data] if isinstance(data, bytes) else list(data)
    size = length(segments)
    return [_header(name, size), *segments, _pad(size)]


def gnu_sparse_member(name: str, stored: bytes, realsize: int) -> Segments:
    """A GNU sparse member (type 'S'): ``stored`` is the data chunk at the end of a ``realsize``-byte file."""
    header = bytearray(_header(name, len(stored)))
    header[156:157] = b"S"

    def octal(number: int) -> bytes:
        return b"%011o\0" % number

    header[386:398] = octal(realsize - len(stored))  # the one map entry: (offset, numbytes)
    header[398:410] = octal(len(stored))
    header[482] = 0  # no extended sparse headers
    header[483:495] = octal(realsize)
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return [bytes(header), stored, _pad(len(stored))]


def pax_sparse_member(name: str, stored: bytes, realsize: int) -> Segments:
    """A PAX (format 0.1) sparse member, as GNU tar --format=posix --sparse writes it."""
    pax = {"GNU.sparse.map": f"{realsize - len(stored)},{len(stored)}", "GNU.sparse.size": str(realsize)}
    return [_header(name, len(stored), tarfile.PAX_FORMAT, pax), stored, _pad(len(stored))]


def tar(*members: Segments) -> Segments:
    return [segment for m in members for segment in m] + [b"\0" * 1024]


def to_bytes(segments: Segments) -> bytes:
    return b"".join(b"\0" * s if isinstance(s, int) else s for s in segments)


def write(path: Path, segments: Segments) -> Path:
    """Write segments; holes are seeked over, so the file is sparse on disk."""
    with open(path, "wb") as handle:
        for segment in segments:
            if isinstance(segment, int):
                handle.seek(segment, io.SEEK_CUR)
            else:
                handle.write(segment)
        handle.truncate()
    return path


def read_members(path_or_bytes: Path | bytes) -> list[tuple[str, bytes]]:
    """(name, data) of every regular member, in archive order."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return [(m.name, archive.extractfile(m).read()) for m in archive if m.isreg()]  # type: ignore[union-attr]


def class_tars(train_tar: Path) -> dict[str, list[tuple[str, bytes]]]:
    """wnid -> its images (name, data), from a train archive of class tars."""
    return {name[:-4]: read_members(data) for name, data in read_members(train_tar)}


def train_tar(classes: dict[str, Segments]) -> Segments:
    """The train archive: a tar of ``<wnid>.tar`` class tars (each given as segments)."""
    return tar(*(member(f"{wnid}.tar", segments) for wnid, segments in classes.items()))


class MemoryBytes:
    """A ByteSource over bytes in memory (``size`` + ``read_at``): a second implementation, as an HTTP Range
    reader would be."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    @property
    def size(self) -> int:
        return len(self.data)

    def read_at(self, offset: int, size: int) -> bytes:
        return self.data[offset : offset + size]


def release_with(root: Path, base, train: Segments | None = None, val: Segments | None = None) -> Path:
    """A release in ``root`` made of ``base``'s archives (a SampleRelease), with the train and/or val tar replaced
    by the given segments; the devkit is ``base``'s."""
    import shutil

    root.mkdir(parents=True, exist_ok=True)
    for archive, given, name in (
        (base.train_tar, train, "ILSVRC2012_img_train.tar"),
        (base.val_tar, val, "ILSVRC2012_img_val.tar"),
    ):
        if given is None:
            shutil.copy(archive, root / name)
        else:
            write(root / name, given)
    shutil.copy(base.devkit, root / base.devkit.name)
    return root
