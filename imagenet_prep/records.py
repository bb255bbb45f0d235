"""The small typed records that connect the stages (see docs/architecture.md).

source --(SourceFile per image)--> plan --(WorkUnit of Samples)--> executor --> worker --(UnitResult)--> writer

Every record is frozen and picklable: work units travel to worker processes (or Dask workers) and results
travel back. Pixels never do: a worker reads a sample's bytes itself, from where its ``ByteLocation`` says.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)  # slots: a full train plan holds 1.28M of these
class ByteLocation:
    """Where an image's bytes are: ``size`` bytes at ``offset`` in the file (or, later, URL) ``locator``.

    ``compression`` is None for stored bytes; a reader that must inflate them (a deflated zip member) names
    its method here, and the worker inflates after the read. ``raw_size`` is the inflated size the container
    declares (a zip member's): a reader refuses bytes that inflate to more (a zip bomb).
    """

    locator: str
    offset: int
    size: int
    compression: str | None = None
    # A tar member: where its header (chain: PAX / GNU long-name headers included) starts. The reader checks
    # that header names this file with this size before trusting the bytes (no stale or altered index can
    # mislabel an image). None: nothing to verify (a plain file, a zip member).
    header_offset: int | None = None
    # A zip member's declared inflated size: inflating never goes past it (a zip bomb stops there).
    raw_size: int | None = None
    # A zip member's declared CRC-32: the reader checks the (inflated) bytes against it.
    crc32: int | None = None


#: A zip member's ``compression`` while its location is its LOCAL header (``offset``; ``size`` the compressed
#: size): the zip's reader reads and checks that header, then reads (and inflates) the data after it. Planning
#: takes these locations from the central directory alone (no local header read per image).
ZIP_STORED_AT_HEADER = "zip-stored"
ZIP_DEFLATED_AT_HEADER = "zip-deflate"


#: The largest archive member a build reads (bytes): far above any real ImageNet image (the largest is ~15 MB),
#: far below what would let one hostile member exhaust a worker's memory. ``--max-member-size`` changes it.
DEFAULT_MAX_MEMBER_SIZE = 64 << 20


#: A bounding box in pixel coordinates: (wnid, xmin, ymin, xmax, ymax).
Box = tuple[str, float, float, float, float]


@dataclass(frozen=True, slots=True)
class SourceFile:
    """An image a source holds, before any selection: its name in the source, its canonical key (the stem of
    its ILSVRC2012 name, whatever the layout calls it), and where its bytes are."""

    name: str
    key: str
    location: ByteLocation


@dataclass(frozen=True, slots=True)
class Sample:
    """One image of a build: which split and class, its canonical key, its label, and where its bytes are.

    ``key`` is the canonical stem whatever the source layout (``n01440764_10026``,
    ``ILSVRC2012_val_00000001``): writers derive every output name from it, so the same image gives the same
    output from any layout. ``name`` is the source's own name (for messages and the build record).
    """

    split: str
    key: str
    wnid: str
    label: int
    name: str
    location: ByteLocation
    # Optional per-image annotations, empty for most builds (neither changes a unit's fingerprint when empty):
    # ``boxes``: bounding boxes in SOURCE pixels, ``(wnid, xmin, ymin, xmax, ymax)``, with ``boxes_size`` the
    # image size they refer to (an annotation's declared size; None = the decoded size); the worker maps them
    # into output pixels. ``extra``: extra manifest columns ``(column, value)`` decided by the plan.
    boxes: tuple[Box, ...] = ()
    boxes_size: tuple[int, int] | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WorkUnit:
    """An independent piece of a build, identified by ``unit_id`` (unique across splits).

    ``source`` names the registered source layout whose reader the worker uses (see sources/__init__.py).
    """

    split: str
    unit_id: str
    source: str
    samples: Sequence[
        Sample
    ]  # a tuple of Samples, a SampleTable or SampleRows (columns; same samples, same fingerprint)
    max_member_size: int = (
        DEFAULT_MAX_MEMBER_SIZE  # the reader refuses a larger read (not in the fingerprint)
    )

    @functools.cached_property  # computed once: the build, its markers and the state all ask for it
    def fingerprint(self) -> str:
        """Identifies what the unit reads and writes: a done marker counts only for the same fingerprint."""
        digest = hashlib.sha256(f"{self.split}|{self.unit_id}|".encode())
        samples = self.samples
        if isinstance(samples, ColumnSamples):  # the same lines, without a Sample per image
            samples.fingerprint_into(digest)
        else:
            feed_fingerprint(digest, sample_fingerprint_rows(samples))
        return digest.hexdigest()[:16]


@runtime_checkable
class ColumnSamples(Protocol):
    """Samples held as columns (``columns.SampleTable``, ``columns.SampleRows``): they feed a unit's fingerprint
    the same lines as the tuple of their samples, without a Sample per image. A Protocol, so this module (the
    lowest layer) needs no import of the column containers."""

    def fingerprint_into(self, digest: Any) -> None: ...


#: A sample as its unit's fingerprint sees it: name, offset, size, "split/wnid", key, and its annotations' line
#: ("" for a sample without any; columns never hold annotations).
FingerprintRow = tuple[str, int, int, str, str, str]


def feed_fingerprint(digest: Any, chunks: Iterable[Iterable[FingerprintRow]]) -> None:
    """Feed ``digest`` a unit's fingerprint lines, a chunk of rows at a time. The one spelling of those lines,
    whatever holds the samples (a tuple, a SampleTable, SampleRows): never change it, or trees built before
    stop resuming (every done marker records its unit's fingerprint)."""
    for rows in chunks:
        text = "".join(
            f"{name}|{offset}|{size}|{where}/{key}\n{notes}" for name, offset, size, where, key, notes in rows
        )
        digest.update(text.encode())


def sample_fingerprint_rows(
    samples: Iterable[Sample], chunk: int = 1 << 14
) -> Iterator[list[FingerprintRow]]:
    rows: list[FingerprintRow] = []
    for sample in samples:
        where = sample.location
        notes = (  # annotations only; samples without them hash as before annotations existed
            f"{sample.boxes!r}|{sample.boxes_size!r}|{sample.extra!r}\n"
            if sample.boxes or sample.extra
            else ""
        )
        rows.append(
            (sample.name, where.offset, where.size, f"{sample.split}/{sample.wnid}", sample.key, notes)
        )
        if len(rows) == chunk:
            yield rows
            rows = []
    yield rows


@dataclass(frozen=True)
class ManifestRow:
    """One written image as the manifests list it (``path`` relative to OUT)."""

    path: str
    label: int
    wnid: str
    width: int
    height: int
    # Optional: extra manifest columns (from the sample) and the image's boxes in OUTPUT pixels.
    extra: tuple[tuple[str, str], ...] = ()
    boxes: tuple[Box, ...] = ()


@dataclass(frozen=True)
class ImageIssue:
    """A skipped or repaired file and why (data, summarised at the end; never printed one by one)."""

    file: str
    reason: str


@dataclass(frozen=True)
class UnitResult:
    """What a finished unit reports: its manifest rows, issues, and the source bytes it read.

    ``files`` lists the files the unit's writer committed, ``(path relative to OUT, size in bytes)``: the done
    marker records them, so a re-run (stat only) rebuilds a finished unit whose files were deleted or changed.
    ``enlarged`` counts images made larger than their source (fixed-shape modes, or ``upscale``).
    """

    split: str
    unit_id: str
    rows: tuple[ManifestRow, ...]
    skipped: tuple[ImageIssue, ...]
    repaired: tuple[ImageIssue, ...]
    bytes_read: int
    seconds: float
    # Named counts a unit adds to build.json (e.g. boxes kept/clipped/dropped); summed over units.
    counters: tuple[tuple[str, int], ...] = ()
    enlarged: int = 0
    files: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class ClassSet:
    """A label space: ``wnids[i]`` is class index i, ``names[i]`` its unique display name.

    The 1K classes are the first; a 21K label space is another instance of the same record.
    """

    name: str
    wnids: tuple[str, ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.wnids) != len(self.names):
            raise ValueError(f"class set {self.name}: {len(self.wnids)} wnids but {len(self.names)} names")

    def __len__(self) -> int:
        return len(self.wnids)

    def index_of(self) -> dict[str, int]:
        return {wnid: i for i, wnid in enumerate(self.wnids)}
