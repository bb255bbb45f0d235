"""``winter21_whole.tar.gz`` (ImageNet-21K, winter 2021) read in place: a gzip of ``winter21_whole/<wnid>.tar``.

A gzip stream cannot seek, so the archive is read from its start, in order, and never extracted.

**Index (planning): one sequential pass, cached.** The pass decompresses the whole archive once and learns
every class tar (its data offset and size in the DECOMPRESSED stream) and every image inside it, from the
headers only, with the very scan and refusal policy of a folder of class tars (``io.tar.scan_tar``: same
names, same refusals). It is cached like the other archive indexes (``winter21_whole.tar.gz.index.json``
beside the archive, or in the tool's cache folder; keyed by the archive's size + mtime_ns; every value checked
when loaded, a malformed cache is rebuilt): a warm plan reads nothing. So every class's image count is known
before classes are selected (the ImageNet-21K-P recipe keeps classes with more than 500 images).

**Build: stream-ordered units, one forward cursor per worker thread** (sources/streamed.py, shared with the
hf-tar and face-blurred streams). Units are runs of ``SEQUENCE_CHUNK`` samples of a split in stream order (the
few left over form the split's FIRST unit, so all others are the same size). Each worker keeps one
decompressing cursor open from unit to unit (``streamed.cursor_for``): a unit after the cursor's position
continues from there, decompressing and discarding what the other workers read; a unit before it restarts the
stream from its start. The local executor hands out
units of equal size in plan order (stream order; the short first unit last), so each worker decompresses the
archive about once per split it builds: with W workers the archive is inflated W times in all, in parallel
(zlib inflates several hundred MB/s, far faster than images are decoded, resized and encoded). No image bytes
cross processes; a kill -9 loses at most the units that were running (a unit is 250 images).

**Memory bound per worker:** the gzip and read buffers (~2 MB), a 64 KiB look-back, and the images of one
unit that the stream reaches before their turn: none for units in stream order (the default grouping), at
most the unit's own source bytes when a shard writer reorders a unit (``--output wds/parquet`` shuffling:
each such shard also reads the stream up to its last sample, so prefer ImageFolder, or unshuffled shards,
from this archive). Every read is capped by the member-size cap; a class tar is never held.

Each image's tar header is checked against the index before its bytes are used (a changed archive fails the
unit instead of mislabelling).
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from ..errors import ArchiveError, InputError
from ..io.bytesource import RangeView, is_remote
from ..io.tar import ClassTar, TarMember, name_problem, scan_tar, type_problem
from ..io.tar_index import MemberColumns, Section, TrainArchive
from ..records import ByteLocation, Sample, SourceFile, WorkUnit
from .base import SEQUENCE_CHUNK, Runner, SplitIndex
from .imagenet21k import WINTER21_TAR_GZ, WholeArchiveSource
from .streamed import _UNBOUNDED, STREAM, CursorReader, StreamCursor, close_cursors

# winter21_whole/n01440764.tar (the top folder's name is not checked; a class tar at the top is accepted too)
_OUTER_RE = re.compile(r"^(?:[^/]+/)?(n\d{8})\.tar$")


# ------------------------------------------------------------------------------------------------ index
def index_stream(
    locator: str,
) -> tuple[
    dict[str, ClassTar], list[tuple[str, str]], dict[str, tuple[tuple[TarMember, ...], list]], int, int
]:
    """One pass over the archive: class tars (wnid -> ClassTar, offsets in the decompressed stream), refused
    outer members, each class's images and refusals (the class-tar scan's own), the decompressed size, and the
    compressed bytes read. A cut or damaged stream, or a stream that is no tar, raises ArchiveError."""
    cursor = StreamCursor(locator)
    classes: dict[str, ClassTar] = {}
    refused: list[tuple[str, str]] = []
    members: dict[str, tuple[tuple[TarMember, ...], list]] = {}
    try:
        try:
            tar = tarfile.open(fileobj=RangeView(cursor, 0, _UNBOUNDED), mode="r:")  # noqa: SIM115
        except tarfile.ReadError as exc:
            raise ArchiveError(
                f"{locator} holds no tar ({exc}): expected {WINTER21_TAR_GZ}, a gzip of winter21_whole/<wnid>.tar "
                "class tars; re-download it."
            ) from None
        try:
            while (info := tar.next()) is not None:
                name = info.name[2:] if info.name.startswith("./") else info.name
                if info.isdir() or name in ("", "."):
                    continue
                match = _OUTER_RE.match(name)
                problem = name_problem(name, flat=False) or type_problem(info)
                if problem is None and match is None:
                    problem = "not a class tar (expected winter21_whole/<wnid>.tar)"
                if problem is None and match is not None and match.group(1) in classes:
                    problem = "duplicate class tar"
                if problem is not None or match is None:
                    refused.append((name, problem or "not a class tar"))
                    continue
                wnid = match.group(1)
                classes[wnid] = ClassTar(wnid, f"{wnid}.tar", info.offset_data, info.size)
                label = f"The class tar {name} inside {locator}"
                found, inner_refused = scan_tar(
                    cursor, info.offset_data, info.size, label, tolerate_cut_last=True
                )
                members[wnid] = (tuple(found), inner_refused)
        except tarfile.TarError as exc:
            raise ArchiveError(f"{locator} is damaged ({exc}); re-download it.") from None
        finally:
            tar.close()
        cursor.drain()
        if not classes:
            raise ArchiveError(
                f"{locator} holds no <wnid>.tar class tars: is it {WINTER21_TAR_GZ}? It is a gzip of "
                "winter21_whole/<wnid>.tar class tars."
            )
        return classes, refused, members, cursor.pos, cursor.bytes_read
    finally:
        cursor.close()


class Winter21Archive(TrainArchive):
    """The cached index of ``winter21_whole.tar.gz``: the train-tar index (class tars + their images), with
    offsets in the decompressed stream, learnt in one pass over the whole archive (:func:`index_stream`)."""

    _KIND = "winter21"
    _EXPECTED = WINTER21_TAR_GZ
    _LABEL = "The ImageNet-21K archive"
    _WHAT = "winter21_whole.tar.gz is a gzip of winter21_whole/<wnid>.tar class tars."

    def __init__(self, path: Path, cache_dir: Path | None = None) -> None:
        self.stream_size = 0
        self.index_bytes = 0  # compressed bytes read by this object's pass
        super().__init__(path, cache_dir)

    def _span_limit(self, data: dict) -> int | None:
        # Offsets are in the decompressed stream: its recorded size bounds them.
        stream_size = data.get("stream_size")
        if not (type(stream_size) is int and stream_size > 0):
            return None
        self.stream_size = stream_size
        return stream_size

    def _index_outer(self) -> tuple[dict[str, ClassTar], list[tuple[str, str]]]:
        classes, refused, members, self.stream_size, nbytes = index_stream(self.locator)
        self.index_bytes += nbytes
        for wnid, (found, inner_refused) in members.items():  # the one pass indexed every class
            self._columns[wnid] = MemberColumns.of(found)
            self._inner_refused[wnid] = list(inner_refused)
        return classes, refused

    def classes(self) -> dict[str, ClassTar]:
        fresh = self._classes is None
        found = super().classes()
        if fresh:
            self.save()  # at once: the pass read the whole archive; a build refused later keeps it
        return found

    def members(self, wnid: str) -> tuple[TarMember, ...]:
        known = self._classes or {}
        if wnid in known and not self.has_members(wnid):  # never: the pass and the cache hold every class
            raise ArchiveError(f"The index of {self.path} lacks the class {wnid}: delete its index cache.")
        return super().members(wnid)

    def _write_sections(self, payload: dict, sections: dict[str, Section]) -> Path | None:
        return super()._write_sections({**payload, "stream_size": self.stream_size}, sections)


# ----------------------------------------------------------------------------------------------- source
class Winter21Source(WholeArchiveSource[Winter21Archive]):
    """``winter21_whole.tar.gz`` (ImageNet-21K, winter 2021 release), streamed."""

    layout: ClassVar[str] = "winter21"
    needs: ClassVar[str] = WINTER21_TAR_GZ
    archive_name: ClassVar[str] = WINTER21_TAR_GZ
    archive_type = Winter21Archive
    UNIT_SIZE: ClassVar[int] = SEQUENCE_CHUNK  # samples per unit (grouping runs in the parent)

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        if is_remote(folder):
            raise InputError(
                f"{WINTER21_TAR_GZ} is read from a local or mounted disk, not from {folder}: a gzip stream is read "
                "whole, in order (download it with `imagenet-prep fetch`, or read its class tars by URL one by one)."
            )
        super().__init__(folder, cache_dir)
        self._reported = 0  # index bytes already reported in a SplitIndex

    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        self._train_only(split)
        archive = self.archive()
        archive.classes()
        locator = archive.locator
        files = {
            wnid: tuple(
                SourceFile(
                    m.name,
                    Path(m.name).stem,
                    ByteLocation(locator, m.offset, m.size, STREAM, m.header_offset),
                )
                for m in archive.members(wnid)
            )
            for wnid in wnids
        }
        archive.save()
        nbytes, self._reported = archive.index_bytes - self._reported, archive.index_bytes
        warnings: tuple[str, ...] = ()
        if 0 < len(set(wnids)) < len(archive.classes()):
            warnings = (
                f"{split}: {WINTER21_TAR_GZ} is a gzip stream that cannot seek, so building {len(set(wnids))} of "
                f"its {len(archive.classes())} classes still decompresses it up to the last chosen image.",
            )
        return SplitIndex("train", files, tuple(archive.refused_for(wnids)), warnings, bytes_read=nbytes)

    def group(self, split: str, samples: Sequence[Sample]) -> list[tuple[str, Sequence[Sample]]]:
        return group_in_stream_order(split, samples, self.UNIT_SIZE)

    def close(self) -> None:
        super().close()
        # Units read in this thread (a build whose units run in the parent, a dry run) left its cursor open.
        close_cursors(str(self.path))

    @classmethod
    def open_unit(cls, unit: WorkUnit) -> Winter21Reader:
        return Winter21Reader(unit)


def group_in_stream_order(
    split: str, samples: Sequence[Sample], chunk: int = SEQUENCE_CHUNK
) -> list[tuple[str, Sequence[Sample]]]:
    """Units of ``chunk`` samples in stream order; the remainder is the FIRST unit, so every later unit has
    the same size (the local executor runs the largest first, keeping plan order among equals: stream order)
    and the short one, run last, restarts the stream only for its short prefix."""
    ordered = sorted(samples, key=lambda s: (s.location.locator, s.location.offset))
    first = len(ordered) % chunk or chunk
    bounds = [0, *range(first, len(ordered), chunk), len(ordered)] if ordered else []
    return [
        (f"{split}-{i:06d}", tuple(ordered[start:end]))
        for i, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False))
    ]


# ----------------------------------------------------------------------------------------------- reader


_STALE = (
    "delete its index cache (winter21_whole.tar.gz.index.json beside it, or archive-index/ in the tool's cache "
    "folder) and run the same command again; if it persists, check the archive with `imagenet-prep verify`."
)


class Winter21Reader(CursorReader):
    """A unit's (sample, bytes), read forward through this thread's cursor (sources/streamed.py): each image's tar
    header is checked against the index first; an image above the member-size cap fails the unit."""

    stale: ClassVar[str] = _STALE
    skip_oversized: ClassVar[bool] = False
