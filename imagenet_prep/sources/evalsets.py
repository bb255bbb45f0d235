"""Evaluation sets as sources: ImageNetV2 (three variants), ImageNet-A, ImageNet-R, ImageNet-Sketch.

They are test-only: each offers one split, written as ``val`` (``--splits val``), labelled in the ImageNet-1K
class space (``taxonomy/evalsets.py``):

- ``imagenetv2-<variant>``: ``imagenetv2-<variant>.tar.gz``, class folders ``0``..``999`` = the sorted-wnid
  1K index (parsed as integers: folder ``100`` is class 100, never string-sorted). A gzip stream cannot be
  read by offset: the index streams the archive once, and each unit streams it up to its last image.
- ``imagenet-a`` / ``imagenet-r``: ``imagenet-a.tar`` / ``imagenet-r.tar`` (``<set>/<wnid>/<name>``, 200
  classes each), indexed by their headers and read by offset. A build labels the 200 classes 0..199 in
  sorted-wnid order (like a 1K subset build); ``classes.csv``'s ``imagenet1k_index`` column is each class's 1K
  index, i.e. the mask of 1000-way logits (``--label-space imagenet-1k`` labels them by 1K index instead).
- ``imagenet-sketch``: ``ImageNet-Sketch.zip`` (``sketch/<wnid>/sketch_<n>.JPEG``, 1000 classes), indexed from
  the zip's central directory and read by offset (deflated members inflated by the worker).
"""

from __future__ import annotations

import struct
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO, ClassVar

from ..errors import ArchiveError, InputError, UnknownClassError
from ..io.bytesource import FileByteSource
from ..io.tar import FIX_HINT, name_problem, scan_tar
from ..records import ByteLocation, Sample, SourceFile, WorkUnit
from ..taxonomy import evalsets
from .base import FolderProbe, Runner, SourceBase, SourceRecord, SplitIndex, group_in_storage_order

STREAM_CHUNK = (
    2500  # images per unit of a gzip stream: each unit decompresses the stream up to its last image
)
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # a zip local file header (30 bytes)


def _test_only(name: str) -> InputError:
    return InputError(f"{name} is an evaluation set with no train split: build it with --splits val.")


class _EvalSource(SourceBase):
    """Shared parent side: one archive in the folder, one split (``val``), files by class."""

    archive: ClassVar[str] = ""
    eval_set: ClassVar[str] = ""

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        super().__init__(folder, cache_dir)
        self.path = self.folder / self.archive
        self._index: SplitIndex | None = None

    @classmethod
    def detect(cls, probe: FolderProbe) -> bool:
        return probe.has(cls.archive)

    def splits(self) -> tuple[str, ...]:
        return ("val",)

    def _scan(self) -> tuple[list[tuple[str, ByteLocation]], list[tuple[str, str]], int]:
        """(member name, location) of every member, refusals, and bytes read."""
        raise NotImplementedError

    def _full_index(self) -> SplitIndex:
        if self._index is None:
            if not self.path.is_file():
                raise InputError(f"The archive {self.archive} is missing from {self.folder}.")
            members, refused, nbytes = self._scan()
            files: dict[str, list[SourceFile]] = {}
            for name, location in members:
                try:
                    wnid = evalsets.class_of_member(self.eval_set, name)
                except UnknownClassError as exc:
                    refused.append((name, str(exc)))
                    continue
                if wnid is None:
                    continue  # a README or a file outside the class folders
                # The key is the stem with dots made underscores (ImageNet-A names hold dots: 0.000116_x_0.865.jpg;
                # shard keys must not).
                base = PurePosixPath(name).name
                key = PurePosixPath(base).stem.replace(".", "_")
                files.setdefault(wnid, []).append(SourceFile(base, key, location))
            if not files:
                raise ArchiveError(f"{self.path} holds no images in class folders: is it {self.archive}?")
            self._index = SplitIndex(
                "val", {w: tuple(f) for w, f in sorted(files.items())}, tuple(refused), bytes_read=nbytes
            )
        return self._index

    def classes(self, split: str) -> tuple[str, ...]:
        if split != "val":
            raise _test_only(self.archive)
        return tuple(self._full_index().files)

    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        if split != "val":
            raise _test_only(self.archive)
        full = self._full_index()
        return SplitIndex(
            "val", {w: full.files.get(w, ()) for w in wnids}, full.refused, bytes_read=full.bytes_read
        )

    def member_label(self, split: str, wnid: str, name: str) -> str:
        return f"{self.archive}/{wnid}/{name}"

    def group(self, split: str, samples: Sequence[Sample]) -> list[tuple[str, Sequence[Sample]]]:
        return group_in_storage_order(split, samples)

    def records(self) -> list[SourceRecord]:
        return [SourceRecord(self.path, "val")]


# ---------------------------------------------------------------------------------------- ImageNet-A/-R
class _TreeTarSource(_EvalSource):
    def _scan(self) -> tuple[list[tuple[str, ByteLocation]], list[tuple[str, str]], int]:
        with FileByteSource(self.path) as source:
            members, refused = scan_tar(
                source, 0, source.size, f"The archive {self.path}", tolerate_cut_last=False, flat=False
            )
            path = str(self.path)
            return (
                [(m.name, ByteLocation(path, m.offset, m.size)) for m in members],
                refused,
                source.bytes_read,
            )


class ImageNetASource(_TreeTarSource):
    layout: ClassVar[str] = "imagenet-a"
    archive: ClassVar[str] = "imagenet-a.tar"
    eval_set: ClassVar[str] = "imagenet-a"
    needs: ClassVar[str] = "imagenet-a.tar"


class ImageNetRSource(_TreeTarSource):
    layout: ClassVar[str] = "imagenet-r"
    archive: ClassVar[str] = "imagenet-r.tar"
    eval_set: ClassVar[str] = "imagenet-r"
    needs: ClassVar[str] = "imagenet-r.tar"


# ---------------------------------------------------------------------------------------- ImageNet-Sketch
class SketchSource(_EvalSource):
    layout: ClassVar[str] = "imagenet-sketch"
    archive: ClassVar[str] = "ImageNet-Sketch.zip"
    eval_set: ClassVar[str] = "imagenet-sketch"
    label_space: ClassVar[str | None] = "imagenet-1k"
    needs: ClassVar[str] = "ImageNet-Sketch.zip"

    def _scan(self) -> tuple[list[tuple[str, ByteLocation]], list[tuple[str, str]], int]:
        members: list[tuple[str, ByteLocation]] = []
        refused: list[tuple[str, str]] = []
        path = str(self.path)
        try:
            with zipfile.ZipFile(self.path) as archive, open(self.path, "rb") as handle:
                for info in archive.infolist():
                    if info.is_dir():
                        continue
                    problem = name_problem(info.filename, flat=False)
                    if problem is None and info.compress_type not in (
                        zipfile.ZIP_STORED,
                        zipfile.ZIP_DEFLATED,
                    ):
                        problem = f"compression method {info.compress_type} (stored and deflated are read)"
                    if problem is None and info.flag_bits & 0x1:
                        problem = "encrypted"
                    if problem is not None:
                        refused.append((info.filename, problem))
                        continue
                    handle.seek(info.header_offset)
                    header = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
                    start = info.header_offset + _LOCAL_HEADER.size + header[9] + header[10]
                    method = "deflate" if info.compress_type == zipfile.ZIP_DEFLATED else None
                    members.append((info.filename, ByteLocation(path, start, info.compress_size, method)))
        except (zipfile.BadZipFile, struct.error, OSError) as exc:
            raise ArchiveError(f"{self.path} is not a readable zip ({exc}); {FIX_HINT}.") from None
        return members, refused, 0


# ---------------------------------------------------------------------------------------- ImageNetV2
class _CountingReader:
    """A file wrapper counting the (compressed) bytes read."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.count += len(data)
        return data


class StreamReader:
    """Worker side of a gzip stream: decompress from the start, yield the unit's members as they pass."""

    def __init__(self, unit: WorkUnit) -> None:
        self.unit = unit
        self.bytes_read = 0

    def __iter__(self) -> Iterator[tuple[Sample, bytes]]:
        if not self.unit.samples:
            return
        wanted = {s.location.offset: s for s in self.unit.samples}
        last = max(wanted)
        with open(self.unit.samples[0].location.locator, "rb") as raw:
            counted = _CountingReader(raw)
            try:
                with tarfile.open(fileobj=counted, mode="r|gz") as tar:  # type: ignore[call-overload]
                    for info in tar:
                        sample = wanted.pop(info.offset_data, None)
                        if sample is not None:
                            handle = tar.extractfile(info)
                            data = handle.read() if handle is not None else b""
                            self.bytes_read = counted.count
                            yield sample, data
                        if info.offset_data >= last:
                            break
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise ArchiveError(f"{raw.name} cannot be read to the end ({exc}); {FIX_HINT}.") from None
        self.bytes_read = counted.count
        if wanted:
            raise ArchiveError(f"{raw.name} changed after indexing: {len(wanted)} images were not found.")

    def close(self) -> None:
        """Nothing held open between iterations."""


class _ImageNetV2Source(_EvalSource):
    eval_set: ClassVar[str] = "imagenetv2"
    label_space: ClassVar[str | None] = (
        "imagenet-1k"  # folder 100 is label 100 whatever classes a build holds
    )

    def _scan(self) -> tuple[list[tuple[str, ByteLocation]], list[tuple[str, str]], int]:
        members: list[tuple[str, ByteLocation]] = []
        refused: list[tuple[str, str]] = []
        path = str(self.path)
        with open(self.path, "rb") as raw:
            counted = _CountingReader(raw)
            try:
                with tarfile.open(fileobj=counted, mode="r|gz") as tar:  # type: ignore[call-overload]
                    for info in tar:
                        if info.isdir():
                            continue
                        name = info.name[2:] if info.name.startswith("./") else info.name
                        problem = name_problem(name, flat=False) or (None if info.isreg() else "not a file")
                        if problem is not None:
                            refused.append((name, problem))
                            continue
                        members.append(
                            (name, ByteLocation(path, info.offset_data, info.size, "tar-gz-stream"))
                        )
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise ArchiveError(f"{self.path} is not a readable tar.gz ({exc}); {FIX_HINT}.") from None
        return members, refused, counted.count

    def group(self, split: str, samples: Sequence[Sample]) -> list[tuple[str, Sequence[Sample]]]:
        return group_in_storage_order(split, samples, STREAM_CHUNK)

    @classmethod
    def open_unit(cls, unit: WorkUnit) -> StreamReader:
        return StreamReader(unit)


class ImageNetV2MatchedFrequencySource(_ImageNetV2Source):
    layout: ClassVar[str] = "imagenetv2-matched-frequency"
    archive: ClassVar[str] = "imagenetv2-matched-frequency.tar.gz"
    needs: ClassVar[str] = archive


class ImageNetV2Threshold07Source(_ImageNetV2Source):
    layout: ClassVar[str] = "imagenetv2-threshold0.7"
    archive: ClassVar[str] = "imagenetv2-threshold0.7.tar.gz"
    needs: ClassVar[str] = archive


class ImageNetV2TopImagesSource(_ImageNetV2Source):
    layout: ClassVar[str] = "imagenetv2-top-images"
    archive: ClassVar[str] = "imagenetv2-top-images.tar.gz"
    needs: ClassVar[str] = archive


IMAGENETV2_SOURCES = (
    ImageNetV2MatchedFrequencySource,
    ImageNetV2Threshold07Source,
    ImageNetV2TopImagesSource,
)
EVAL_SOURCES: tuple[type[_EvalSource], ...] = (
    *IMAGENETV2_SOURCES,
    ImageNetASource,
    ImageNetRSource,
    SketchSource,
)

__all__ = [
    "EVAL_SOURCES",
    "IMAGENETV2_SOURCES",
    "ImageNetASource",
    "ImageNetRSource",
    "SketchSource",
    "StreamReader",
]
