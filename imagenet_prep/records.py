"""The small typed records that connect the stages (see docs/architecture.md).

source --(SourceFile per image)--> plan --(WorkUnit of Samples)--> executor --> worker --(UnitResult)--> writer

Every record is frozen and picklable: work units travel to worker processes (or Dask workers) and results
travel back. Pixels never do: a worker reads a sample's bytes itself, from where its ``ByteLocation`` says.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload


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
        if isinstance(samples, (SampleTable, SampleRows)):  # the same lines, without a Sample per image
            samples.fingerprint_into(digest)
        else:
            feed_fingerprint(digest, _sample_fingerprint_rows(samples))
        return digest.hexdigest()[:16]


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


def _sample_fingerprint_rows(
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


# ------------------------------------------------------------------------------------------------ columns
# A full-scale plan is 1.33M images: one object per image (SourceFile, Sample, ByteLocation, two strings) is
# ~400 bytes an image. The columnar forms below hold the same records as a few packed columns per class (~75
# bytes an image) and make each record only when it is asked for (a worker iterating its unit). Any source
# may hand the plan a class's files as PackedFiles; the plan then makes SampleTables, which group into units
# without a Sample per image; a unit of a SampleTable has the same samples and fingerprint as one of Samples.
def ints(values: Any) -> array:
    """An array("q") of ``values`` (itself when it is one). Columns are stdlib arrays, not numpy: importing
    numpy would cost every command ~0.1 s."""
    return values if isinstance(values, array) and values.typecode == "q" else array("q", values)


def _pack_strings(strings: Sequence[str]) -> tuple[str, array | None]:
    """One string: joined by "\n" when none holds one (ends None), else concatenated with their ends."""
    joined = "\n".join(strings)
    if joined.count("\n") == max(len(strings) - 1, 0):
        return joined, None
    ends = array("q", itertools.accumulate(map(len, strings)))
    return "".join(strings), ends


def _unpack_strings(joined: str, ends: array | None, count: int) -> list[str]:
    if ends is None:
        return joined.split("\n") if count else []
    bounds = ends.tolist()
    return [joined[a:b] for a, b in zip([0, *bounds], bounds, strict=False)]


_Row = TypeVar("_Row")


class _Rows(Sequence[_Row]):
    """What the column records share: a Sequence whose records are made on access (``_row``), equal to (and
    hashed as) the tuple of them."""

    __slots__ = ()

    def _row(self, index: int) -> _Row:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> _Row: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[_Row, ...]: ...
    def __getitem__(self, index: int | slice) -> _Row | tuple[_Row, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._row(index)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))


class PackedFiles(_Rows[SourceFile]):
    """The files of one class as columns: names and keys (each packed into one string), offsets, sizes and
    (for tar members) header offsets; every file's bytes are in the one file or URL ``locator``. A
    Sequence of SourceFiles (stored bytes, no compression), made on access."""

    __slots__ = (
        "header_offsets",
        "locator",
        "offsets",
        "sizes",
        "_key_ends",
        "_keys",
        "_name_ends",
        "_names",
    )

    def __init__(
        self,
        locator: str,
        names: Sequence[str] | tuple[str, array | None],
        keys: Sequence[str] | tuple[str, array | None],
        offsets: Any,
        sizes: Any,
        header_offsets: Any = None,
    ) -> None:
        self.locator = locator
        self._names, self._name_ends = names if isinstance(names, tuple) else _pack_strings(names)
        self._keys, self._key_ends = keys if isinstance(keys, tuple) else _pack_strings(keys)
        self.offsets = ints(offsets)
        self.sizes = ints(sizes)
        self.header_offsets = None if header_offsets is None else ints(header_offsets)
        count = len(self.offsets)
        for text, ends in ((self._names, self._name_ends), (self._keys, self._key_ends)):
            found = len(ends) if ends is not None else (text.count("\n") + 1 if text or count else 0)
            if len(self.sizes) != count or found != count:
                raise ValueError("PackedFiles: columns of different lengths")
        if self.header_offsets is not None and len(self.header_offsets) != len(self.offsets):
            raise ValueError("PackedFiles: columns of different lengths")

    @classmethod
    def of(cls, files: Sequence[SourceFile]) -> PackedFiles | None:
        """Pack plain SourceFiles, or None when they do not fit the columns (several locators, compression,
        a zip's raw size, some with a header offset and some without)."""
        if not files:
            return None
        locations = [f.location for f in files]
        first = locations[0]
        if any(
            loc.locator != first.locator or loc.compression is not None or loc.raw_size is not None
            for loc in locations
        ):
            return None
        headers = [loc.header_offset for loc in locations]
        if None in headers and any(h is not None for h in headers):
            return None
        return cls(
            first.locator,
            [f.name for f in files],
            [f.key for f in files],
            [loc.offset for loc in locations],
            [loc.size for loc in locations],
            None if headers[0] is None else headers,
        )

    @classmethod
    def joined(
        cls, locator: str, names: str, keys: str, offsets: Any, sizes: Any, header_offsets: Any = None
    ) -> PackedFiles:
        """From names and keys already joined by "\n" (none of them holding one)."""
        return cls(locator, (names, None), (keys, None), offsets, sizes, header_offsets)

    def names(self) -> list[str]:
        return _unpack_strings(self._names, self._name_ends, len(self))

    def keys(self) -> list[str]:
        return _unpack_strings(self._keys, self._key_ends, len(self))

    def folded_keys(self) -> list[str]:
        """The keys, casefolded."""
        return (
            _unpack_strings(self._keys.casefold(), None, len(self))
            if self._key_ends is None
            else [key.casefold() for key in self.keys()]
        )

    def name_suffix(self) -> str | None:
        """What every name adds to its key (``n01440764_10026.JPEG``: ``.JPEG``), or None when the names are
        not all their key + one text. String operations over the packed columns, no string per file."""
        if not len(self) or self._name_ends is not None or self._key_ends is not None:
            return None
        names, keys = self._names, self._keys
        first, key = names.split("\n", 1)[0], keys.split("\n", 1)[0]
        if not first.startswith(key):
            return None
        suffix = first[len(key) :]
        if not suffix:
            return "" if names == keys else None
        # each suffix + "\n" ends a distinct name (names hold no "\n"): all but the last end with the suffix
        if not names.endswith(suffix) or names.count(suffix + "\n") != len(self) - 1:
            return None
        return suffix if names.replace(suffix + "\n", "\n")[: -len(suffix)] == keys else None

    def take(self, rows: Sequence[int]) -> PackedFiles:
        """The files at ``rows``, in that order (self when that is every file in order)."""
        picked = list(rows)
        if len(picked) == len(self) and picked == list(range(len(self))):
            return self
        names, keys = self.names(), self.keys()
        offsets, sizes, headers = self.offsets, self.sizes, self.header_offsets
        return PackedFiles(
            self.locator,
            [names[i] for i in picked],
            [keys[i] for i in picked],
            array("q", [offsets[i] for i in picked]),
            array("q", [sizes[i] for i in picked]),
            None if headers is None else array("q", [headers[i] for i in picked]),
        )

    def locations(self) -> Iterator[ByteLocation]:
        headers = (
            self.header_offsets.tolist() if self.header_offsets is not None else [None] * len(self.offsets)
        )
        for offset, size, header in zip(self.offsets.tolist(), self.sizes.tolist(), headers, strict=True):
            yield ByteLocation(self.locator, offset, size, header_offset=header)

    def __len__(self) -> int:
        return len(self.offsets)

    def _row(self, index: int) -> SourceFile:
        name, key = self.names()[index], self.keys()[index]  # O(n): iterate for more than a few
        header = None if self.header_offsets is None else int(self.header_offsets[index])
        location = ByteLocation(
            self.locator, int(self.offsets[index]), int(self.sizes[index]), header_offset=header
        )
        return SourceFile(name, key, location)

    def __iter__(self) -> Iterator[SourceFile]:
        for name, key, location in zip(self.names(), self.keys(), self.locations(), strict=True):
            yield SourceFile(name, key, location)

    def __repr__(self) -> str:
        return f"PackedFiles({self.locator!r}, {len(self)} files)"


@dataclass(frozen=True, slots=True)
class SampleBlock:
    """Samples of one class: its files (in sample order) with the class and label they share."""

    wnid: str
    label: int
    files: PackedFiles


class SampleTable(_Rows[Sample]):
    """Samples of one split as class blocks of columns: a Sequence of Samples (made on access) that groups
    into units without a Sample per image. Equal to the tuple of its samples."""

    __slots__ = ("blocks", "split", "_starts")

    def __init__(self, split: str, blocks: Sequence[SampleBlock]) -> None:
        self.split = split
        self.blocks = tuple(block for block in blocks if len(block.files))
        starts, total = [], 0
        for block in self.blocks:
            starts.append(total)
            total += len(block.files)
        self._starts = (*starts, total)

    def __len__(self) -> int:
        return self._starts[-1]

    def _row(self, index: int) -> Sample:
        b = bisect.bisect_right(self._starts, index) - 1
        block = self.blocks[b]
        file = block.files[index - self._starts[b]]
        return Sample(self.split, file.key, block.wnid, block.label, file.name, file.location)

    def __iter__(self) -> Iterator[Sample]:
        split = self.split
        for block in self.blocks:
            wnid, label = block.wnid, block.label
            files = block.files
            for name, key, location in zip(files.names(), files.keys(), files.locations(), strict=True):
                yield Sample(split, key, wnid, label, name, location)

    def __repr__(self) -> str:
        return f"SampleTable({self.split!r}, {len(self)} samples in {len(self.blocks)} blocks)"

    def by_class(self) -> list[tuple[str, SampleTable]]:
        """(wnid, its samples) in order of first appearance, each class's samples in table order."""
        grouped: dict[str, list[SampleBlock]] = {}
        for block in self.blocks:
            grouped.setdefault(block.wnid, []).append(block)
        return [(wnid, SampleTable(self.split, blocks)) for wnid, blocks in grouped.items()]

    def storage_order(self) -> list[int]:
        """Positions sorted by (locator, offset), stable: the order of ``sorted(self, key=(locator, offset))``."""
        if not self.blocks:
            return []
        locators = sorted({block.files.locator for block in self.blocks})
        rank = {loc: i for i, loc in enumerate(locators)}
        keys = [
            (rank[block.files.locator], offset)
            for block in self.blocks
            for offset in block.files.offsets.tolist()
        ]
        return sorted(range(len(keys)), key=keys.__getitem__)

    def take(self, positions: Sequence[int]) -> SampleTable:
        """The samples at ``positions`` (in that order), as a table of compact blocks."""
        blocks: list[SampleBlock] = []
        run: list[int] = []
        run_block = -1
        for position in positions:
            b = bisect.bisect_right(self._starts, position) - 1
            if b != run_block and run:
                source = self.blocks[run_block]
                blocks.append(SampleBlock(source.wnid, source.label, source.files.take(run)))
                run = []
            run_block = b
            run.append(position - self._starts[b])
        if run:
            source = self.blocks[run_block]
            blocks.append(SampleBlock(source.wnid, source.label, source.files.take(run)))
        return SampleTable(self.split, blocks)

    def fingerprint_into(self, digest: Any) -> None:
        """Feed ``digest`` the lines WorkUnit.fingerprint makes of each sample (no annotations here)."""
        feed_fingerprint(digest, map(self._fingerprint_rows, self.blocks))

    def _fingerprint_rows(self, block: SampleBlock) -> Iterator[FingerprintRow]:
        files = block.files
        return zip(
            files.names(),
            files.offsets.tolist(),
            files.sizes.tolist(),
            itertools.repeat(f"{self.split}/{block.wnid}"),
            files.keys(),
            itertools.repeat(""),
        )


def _strings_between(joined: str, ends: array, start: int, end: int) -> list[str]:
    """Rows ``start:end`` of a string packed with its ends."""
    bounds = ends[start:end].tolist()
    return [joined[a:b] for a, b in zip([ends[start - 1] if start else 0, *bounds], bounds, strict=False)]


def _pack_with_ends(strings: Sequence[str]) -> tuple[str, array]:
    """``strings`` concatenated, with the end of each (row i is ``joined[ends[i - 1]:ends[i]]``)."""
    return "".join(strings), array("q", itertools.accumulate(map(len, strings)))


class SampleRows(_Rows[Sample]):
    """Samples of one split drawn from many classes and files in any order (a shard of a shuffled split) as
    row columns: per row, the index of its (locator, wnid, label) in ``sources``, its offset, size and tar
    header offset (-1: none; the column is None when no row has one), and its key (one string with the rows'
    ends); its name likewise, or, when ``names`` is None, its key + ``name_suffix`` (every ILSVRC2012 member:
    ``<key>.JPEG``). A Sequence of Samples made on access (stored bytes, no annotations), equal to the tuple
    of its samples, with the same fingerprint. It holds only its own rows: a worker receives its shard, never
    the split. Made by the plan: ``source_rows`` index ``sources``."""

    __slots__ = (
        "header_offsets",
        "name_suffix",
        "offsets",
        "source_rows",
        "sources",
        "sizes",
        "split",
        "_key_ends",
        "_keys",
        "_name_ends",
        "_names",
    )

    def __init__(
        self,
        split: str,
        sources: Sequence[tuple[str, str, int]],
        source_rows: Any,
        keys: Sequence[str] | tuple[str, array],
        offsets: Any,
        sizes: Any,
        header_offsets: Any = None,
        names: Sequence[str] | tuple[str, array] | None = None,
        name_suffix: str = "",
    ) -> None:
        self.split = split
        self.sources = tuple(sources)
        self.source_rows = source_rows if isinstance(source_rows, array) else array("i", source_rows)
        self._keys, self._key_ends = keys if isinstance(keys, tuple) else _pack_with_ends(keys)
        self._names: str | None
        self._name_ends: array | None
        if names is None:
            self._names, self._name_ends = None, None
        else:
            self._names, self._name_ends = names if isinstance(names, tuple) else _pack_with_ends(names)
        self.name_suffix = name_suffix if names is None else ""
        self.offsets = ints(offsets)
        self.sizes = ints(sizes)
        self.header_offsets = None if header_offsets is None else ints(header_offsets)
        count = len(self.offsets)
        columns = [self.source_rows, self.sizes, self._key_ends]
        columns += [column for column in (self.header_offsets, self._name_ends) if column is not None]
        if any(len(column) != count for column in columns):
            raise ValueError("SampleRows: columns of different lengths")

    def keys(self, start: int = 0, end: int | None = None) -> list[str]:
        """The keys of rows ``start:end`` (all by default)."""
        return _strings_between(self._keys, self._key_ends, start, len(self) if end is None else end)

    def names(self, start: int = 0, end: int | None = None) -> list[str]:
        """The names of rows ``start:end`` (all by default)."""
        end = len(self) if end is None else end
        if self._names is None or self._name_ends is None:
            suffix = self.name_suffix
            return [key + suffix for key in self.keys(start, end)]
        return _strings_between(self._names, self._name_ends, start, end)

    def _chunks(self, chunk: int) -> Iterator[Iterator[tuple[str, str, int, int, int, int]]]:
        """(name, key, source, offset, size, header) per row, a chunk of rows at a time: a worker iterating a
        1 GB shard (~10^5..10^6 rows) holds one chunk's strings, not the shard's."""
        for start in range(0, len(self), chunk):
            end = min(start + chunk, len(self))
            headers = (
                self.header_offsets[start:end].tolist()
                if self.header_offsets is not None
                else [-1] * (end - start)
            )
            yield zip(
                self.names(start, end),
                self.keys(start, end),
                self.source_rows[start:end].tolist(),
                self.offsets[start:end].tolist(),
                self.sizes[start:end].tolist(),
                headers,
                strict=True,
            )

    def __len__(self) -> int:
        return len(self.offsets)

    def _row(self, index: int) -> Sample:
        key = self._keys[self._key_ends[index - 1] if index else 0 : self._key_ends[index]]
        if self._names is None or self._name_ends is None:
            name = key + self.name_suffix
        else:
            name = self._names[self._name_ends[index - 1] if index else 0 : self._name_ends[index]]
        locator, wnid, label = self.sources[self.source_rows[index]]
        header = -1 if self.header_offsets is None else self.header_offsets[index]
        location = ByteLocation(
            locator, self.offsets[index], self.sizes[index], header_offset=None if header < 0 else header
        )
        return Sample(self.split, key, wnid, label, name, location)

    def __iter__(self) -> Iterator[Sample]:
        split, sources = self.split, self.sources
        for rows in self._chunks(1 << 14):
            for name, key, source, offset, size, header in rows:
                locator, wnid, label = sources[source]
                location = ByteLocation(locator, offset, size, header_offset=None if header < 0 else header)
                yield Sample(split, key, wnid, label, name, location)

    def __repr__(self) -> str:
        return f"SampleRows({self.split!r}, {len(self)} samples from {len(self.sources)} sources)"

    def fingerprint_into(self, digest: Any, chunk: int = 1 << 16) -> None:
        """Feed ``digest`` the lines WorkUnit.fingerprint makes of each sample (no annotations here), a chunk
        of rows at a time (the parent fingerprints every shard)."""
        wheres = [f"{self.split}/{wnid}" for _, wnid, _ in self.sources]
        feed_fingerprint(
            digest,
            (
                ((name, offset, size, wheres[source], key, "") for name, key, source, offset, size, _ in rows)
                for rows in self._chunks(chunk)
            ),
        )


def sample_bytes(samples: Sequence[Sample]) -> int:
    """The stored source bytes of ``samples``; columns sum their size columns (no Sample per image)."""
    if isinstance(samples, SampleTable):
        return sum(sum(block.files.sizes) for block in samples.blocks)
    if isinstance(samples, SampleRows):
        return sum(samples.sizes)
    return sum(sample.location.size for sample in samples)


def sample_locators(samples: Sequence[Sample]) -> set[str]:
    """The files or URLs ``samples`` are read from; columns answer from their blocks or lists."""
    if isinstance(samples, SampleTable):
        return {block.files.locator for block in samples.blocks}
    if isinstance(samples, SampleRows):
        return {samples.sources[i][0] for i in set(samples.source_rows)}
    return {sample.location.locator for sample in samples}


def sample_classes(samples: Sequence[Sample]) -> set[tuple[str, str]]:
    """The (split, wnid) pairs of ``samples``; columns answer from their blocks or lists (no Sample per image)."""
    if isinstance(samples, SampleTable):
        return {(samples.split, block.wnid) for block in samples.blocks}
    if isinstance(samples, SampleRows):
        return {(samples.split, samples.sources[i][1]) for i in set(samples.source_rows)}
    return {(sample.split, sample.wnid) for sample in samples}
