"""SourceBase: what a layout of ImageNet on disk (or elsewhere) must answer, in the parent and in the
workers, each optional hook declared with its default. One module per layout derives from it;
``sources/__init__.py`` registers it by name.

Parent side (planning): which splits and classes the source holds (cheap), then the files of the chosen
classes (an index, possibly built in parallel through ``runner`` and cached), and how the chosen samples are
best grouped into work units (by class, or in storage order, or by shard for a stream).

Worker side: ``open_unit(unit)`` yields each sample of a unit with its bytes. The default reads each
sample's ``ByteLocation`` with one positioned read; a layout that cannot seek (a gzip stream) overrides it.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from ..columns import SampleTable
from ..errors import ArchiveError, MemberError
from ..io.bytesource import ByteSource, open_byte_source
from ..io.tar import member_header_problem
from ..records import ByteLocation, Sample, SourceFile, WorkUnit

#: Runs ``function(*args)`` for each argument tuple, maybe in worker processes (the executor's ``map``).
Runner = Callable[[Callable, Sequence[tuple]], list]

#: Largest image a reader inflates (the largest ILSVRC2012 image is ~15 MB): more is a zip bomb, not a photo.
MAX_INFLATED = 256 << 20

SEQUENCE_CHUNK = (
    250  # samples per unit in storage order: big enough to amortise a task, small enough to balance
)


@dataclass(frozen=True)
class SplitIndex:
    """One split of a source, for the chosen classes: each class's files in storage order, what the reader
    refused (``(label, reason)``), warnings, and the index bytes read to learn it (0 from a warm cache)."""

    split: str
    # wnid -> its files in storage order: a tuple of SourceFiles, or PackedFiles (columns; see records.py),
    # possibly in a mapping that reads each class only when asked for
    files: Mapping[str, Sequence[SourceFile]]
    refused: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()
    bytes_read: int = 0


@dataclass(frozen=True)
class SourceRecord:
    """A file the build read from, for build.json (its MD5 is looked up by the build record)."""

    path: Path
    role: str  # "train", "val", "labels", ...


class SourceBase(ABC):
    """A layout of ImageNet: every layout derives from this class, which declares every hook a build, ``inspect``
    or the dry run calls, each with its default. Instances live in the parent; ``open_unit`` runs in workers (a
    classmethod: a unit carries everything its reader needs).

    Class level: ``layout`` (its name in ``sources.SOURCES``), ``needs`` (what a folder must hold, for messages),
    ``detect(probe)``, ``class_space`` (``imagenet-21k``: a build takes every class it holds, 21K names) and
    ``label_space`` (its default label space, e.g. ``imagenet-1k`` for an evaluation set of the 1K).
    """

    layout: ClassVar[str] = ""
    needs: ClassVar[str] = ""
    class_space: ClassVar[str] = "imagenet-1k"
    label_space: ClassVar[str | None] = None

    def __init__(self, folder: Path | str, cache_dir: Path | None = None) -> None:
        # A layout that can read a URL (ilsvrc) keeps it as a string; the others are local folders.
        self.folder = Path(folder)
        self.cache_dir = cache_dir

    @classmethod
    @abstractmethod
    def detect(cls, probe: FolderProbe) -> bool:
        """Whether the folder ``probe`` lists holds this layout (cheap: a listing, a few stats)."""

    @abstractmethod
    def splits(self) -> tuple[str, ...]:
        """The splits this source can offer."""

    @abstractmethod
    def classes(self, split: str) -> tuple[str, ...]:
        """The wnids the split holds (cheap: no per-image index)."""

    @abstractmethod
    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        """The files of the chosen classes."""

    @abstractmethod
    def records(self) -> list[SourceRecord]:
        """The files this source reads, for the build record."""

    def group(self, split: str, samples: Sequence[Sample]) -> list[tuple[str, Sequence[Sample]]]:
        """(unit id, samples) pairs covering ``samples``; unit ids are unique across splits. Default: a unit per
        class (a class's images are near each other in most layouts)."""
        return group_by_class(split, samples)

    def member_label(self, split: str, wnid: str, name: str) -> str:
        """How a member is named in messages and build.json (e.g. ``train/n01440764.tar/<name>``)."""
        return f"{split}/{wnid}/{name}"

    def missing(self) -> list[str]:
        """What ``imagenet-prep inspect`` reports as missing from the folder (default: nothing)."""
        return []

    def close(self) -> None:
        """Release what the parent holds open (archive files, index caches); the source may be used again after
        (files reopen when needed). Default: nothing held."""
        return None

    @classmethod
    def open_unit(cls, unit: WorkUnit) -> UnitReader:
        """Worker side: the samples of ``unit`` with their bytes (default: one positioned read each)."""
        return LocationReader(unit)


#: The type every layout has (the name the plan and the protocols in docs/architecture.md use).
Source = SourceBase


class UnitReader(Protocol):
    """Iterates (sample, bytes) in the unit's order; ``bytes_read`` counts source bytes read so far. In place of
    the bytes, a reader may yield the MemberError saying why that one member cannot be read (a recorded skip)."""

    @property
    def bytes_read(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[Sample, bytes | MemberError]]: ...

    def close(self) -> None: ...


class LocationReader:
    """The default unit reader: one positioned read per sample, files opened once per unit.

    Before any read: a size above the unit's member-size cap is refused (the plan refused such members
    already; this bounds a worker's memory whoever made the unit), and so is an inflated size above it. A
    location with a ``header_offset`` (a tar member) is read only after its tar header was found to name the
    same file with the same size: an index that lies (stale, altered) fails the unit instead of mislabelling.
    A short read means the archive changed or was cut after indexing. All of these fail the unit (ArchiveError).
    """

    def __init__(self, unit: WorkUnit) -> None:
        self.unit = unit
        self.bytes_read = 0
        self._files: dict[str, ByteSource] = {}

    def read(self, location: ByteLocation, name: str | None = None) -> bytes:
        """The bytes at ``location``; ``name`` (the sample's name in the source) is checked against the tar
        header when the location has one."""
        cap = self.unit.max_member_size
        if location.size > cap:  # a unit made elsewhere: the plan refuses such members (recorded) already
            raise ArchiveError(
                f"{location.locator}: the member at offset {location.offset} is {location.size:,} bytes, above "
                f"the member-size cap of {cap:,} bytes (--max-member-size); it is not read."
            )
        if location.offset < 0 or location.size < 0:
            raise ArchiveError(
                f"{location.locator}: the index gives a negative offset or size ({location.offset}, "
                f"{location.size}); {_INDEX_HINT}"
            )
        source = self._files.get(location.locator)
        if source is None:
            source = self._files[location.locator] = open_byte_source(location.locator)  # a path or a URL
        if location.header_offset is not None:
            problem = member_header_problem(
                source, location.header_offset, location.offset, location.size, name or ""
            )
            self.bytes_read += location.offset - location.header_offset
            if problem is not None:
                raise ArchiveError(
                    f"{location.locator}: the tar header at offset {location.header_offset} does not match the "
                    f"index for {name} ({problem}); {_INDEX_HINT}"
                )
        data = source.read_at(location.offset, location.size)
        self.bytes_read += len(data)
        if len(data) != location.size:
            raise ArchiveError(
                f"{location.locator} is truncated: {location.size} bytes expected at offset {location.offset} "
                f"but only {len(data)} are there; re-download it (`imagenet-prep fetch`) or check it with "
                "`imagenet-prep verify`."
            )
        if location.compression == "deflate":
            data = inflate(data, location, cap)
        if location.crc32 is not None and zlib.crc32(data) != location.crc32:
            raise MemberError(
                f"{location.locator}: the member at offset {location.offset} does not match its CRC-32 (the "
                "archive is damaged); it is not used."
            )
        return data

    def __iter__(self) -> Iterator[tuple[Sample, bytes | MemberError]]:
        """Each sample with its bytes, or the MemberError saying why that one member cannot be read (a recorded
        skip); an error about the archive itself (truncated, a lying index) still fails the unit."""
        for sample in self.unit.samples:
            try:
                data: bytes | MemberError = self.read(sample.location, sample.name)
            except MemberError as exc:
                data = exc
            yield sample, data

    def close(self) -> None:
        for source in self._files.values():
            with contextlib.suppress(OSError):
                source.close()  # type: ignore[attr-defined]
        self._files.clear()


_INDEX_HINT = (
    "the archive changed after it was indexed, or its index cache was altered. Delete the index cache "
    "(<archive>.index.json beside it, or archive-index/ in the tool's cache folder) and run the same command "
    "again; if it persists, check the archive with `imagenet-prep verify`."
)


def inflate(data: bytes, location: ByteLocation, cap: int = MAX_INFLATED) -> bytes:
    """Inflate a raw deflate stream, never past its declared size nor ``cap`` (the member-size cap): a member that
    would inflate to more is refused as a zip bomb (ArchiveError), and so is a damaged stream."""
    limit = min(location.raw_size, cap) if location.raw_size is not None else cap
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise MemberError(
            f"{location.locator}: the deflated member at offset {location.offset} is damaged ({exc}); "
            "re-download the archive."
        ) from None
    if len(out) > limit:
        raise ArchiveError(
            f"{location.locator}: the member at offset {location.offset} inflates to more than "
            f"{limit:,} bytes (its declared size, or the member-size cap set by --max-member-size): a zip bomb "
            "or a damaged archive; it is refused."
        )
    if location.raw_size is not None and len(out) != location.raw_size:
        raise ArchiveError(
            f"{location.locator}: the member at offset {location.offset} inflates to {len(out):,} bytes, "
            f"not its declared {location.raw_size:,}: the archive is damaged; re-download it."
        )
    return out


def group_by_class(split: str, samples: Sequence[Sample]) -> list[tuple[str, Sequence[Sample]]]:
    """One unit per class (``<split>-<wnid>``), samples in the given order (a SampleTable stays columns)."""
    if isinstance(samples, SampleTable):
        return [(f"{split}-{wnid}", table) for wnid, table in samples.by_class()]
    by_class: dict[str, list[Sample]] = {}
    for sample in samples:
        by_class.setdefault(sample.wnid, []).append(sample)
    return [(f"{split}-{wnid}", tuple(chosen)) for wnid, chosen in by_class.items()]


def group_in_storage_order(
    split: str, samples: Sequence[Sample], chunk: int = SEQUENCE_CHUNK
) -> list[tuple[str, Sequence[Sample]]]:
    """Units of ``chunk`` samples in storage order (file, then offset): contiguous reads for a flat archive
    (``<split>-0000``, ``<split>-0001``, ...)."""
    # classes interleave in storage order: row columns (SampleRows; they hold no zip member's columns)
    if isinstance(samples, SampleTable) and not any(block.files.is_zip for block in samples.blocks):
        return [(f"{split}-{number:04d}", rows) for number, rows in enumerate(samples.storage_chunks(chunk))]
    ordered = sorted(samples, key=lambda s: (s.location.locator, s.location.offset))
    return [
        (f"{split}-{start // chunk:04d}", tuple(ordered[start : start + chunk]))
        for start in range(0, len(ordered), chunk)
    ]


@dataclass
class FolderProbe:
    """What a folder holds at its top level, for layout detection (one listing, shared by every layout)."""

    folder: Path
    names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, folder: Path) -> FolderProbe:
        try:
            names = frozenset(os.listdir(folder))
        except OSError:
            names = frozenset()
        return cls(folder, names)

    def has(self, name: str) -> bool:
        return name in self.names
