"""Column containers: a class's files and a split's samples as a few packed columns instead of a record per
image (see docs/architecture.md, "Columns at full scale"). Each is a ``Sequence`` of the records in records.py,
equal to (and fingerprinted as) the tuple of them.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from .records import (
    ZIP_DEFLATED_AT_HEADER,
    ZIP_STORED_AT_HEADER,
    ByteLocation,
    FingerprintRow,
    Sample,
    SourceFile,
    feed_fingerprint,
)


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
    Sequence of SourceFiles (stored bytes, no compression), made on access.

    Zip members (``zip_columns``: a method byte, a declared size and a CRC-32 per file) are located at their
    local header (``offset``; ``size`` the compressed size): their locations say ``ZIP_*_AT_HEADER``, and the
    zip's reader finds the data after checking that header.

    When every name is its key + one suffix (``n01440764_10026`` + ``.JPEG``), only the keys are stored
    (``names`` None and ``name_suffix`` given, see :meth:`with_suffix`): a whole-set plan holds 1.28M keys,
    not 1.28M names besides."""

    __slots__ = (
        "locator",
        "offsets",
        "sizes",
        "_header_gap",
        "_header_offsets",
        "_key_ends",
        "_keys",
        "_largest",
        "_name_ends",
        "_name_suffix",
        "_names",
        "_zip",
        "key_ordered",
    )

    def __init__(
        self,
        locator: str,
        names: Sequence[str] | tuple[str, array | None] | None,
        keys: Sequence[str] | tuple[str, array | None],
        offsets: Any,
        sizes: Any,
        header_offsets: Any = None,
        name_suffix: str | None = None,
        header_gap: int | None = None,
        zip_columns: tuple[bytes | bytearray, array, array] | None = None,
        largest: int | None = None,
    ) -> None:
        self.locator = locator
        # max(sizes) when the source knows it already (a checked cache section): one pass less for the cap
        self._largest = largest
        # (methods, declared sizes, CRC-32s) of zip members, or None
        self._zip = None if zip_columns is None else (bytes(zip_columns[0]), *zip_columns[1:])
        # True when the rows are known to be in the natural order of their keys, as the plan sorts them
        # (plan.sampling.kept_files sets it; so the draw need not sort them again)
        self.key_ordered = False
        self._names: str | None
        self._name_ends: array | None
        self._name_suffix: str | None
        if names is None:  # every name is its key + name_suffix
            if name_suffix is None:
                raise ValueError("PackedFiles: no names and no name suffix")
            self._names, self._name_ends, self._name_suffix = None, None, name_suffix
        else:
            self._names, self._name_ends = names if isinstance(names, tuple) else _pack_strings(names)
            self._name_suffix = None
        self._keys, self._key_ends = keys if isinstance(keys, tuple) else _pack_strings(keys)
        self.offsets = ints(offsets)
        self.sizes = ints(sizes)
        # header_gap: every file's tar header starts that many bytes before its data (a plain 512-byte header),
        # so the header offsets are not stored (8 bytes an image) but made from the offsets when asked for
        self._header_gap = header_gap
        self._header_offsets = None if header_offsets is None else ints(header_offsets)
        if header_gap is not None and header_offsets is not None:
            raise ValueError("PackedFiles: header offsets and a header gap")
        count = len(self.offsets)
        for text, ends in ((self._names, self._name_ends), (self._keys, self._key_ends)):
            if text is None:
                continue
            found = len(ends) if ends is not None else (text.count("\n") + 1 if text or count else 0)
            if len(self.sizes) != count or found != count:
                raise ValueError("PackedFiles: columns of different lengths")
        if self._header_offsets is not None and len(self._header_offsets) != len(self.offsets):
            raise ValueError("PackedFiles: columns of different lengths")
        if self._zip is not None and any(len(column) != count for column in self._zip):
            raise ValueError("PackedFiles: columns of different lengths")

    @property
    def is_zip(self) -> bool:
        """True when the files are zip members located at their local headers (see the class docstring)."""
        return self._zip is not None

    def declared_sizes(self) -> array:
        """Each file's size as the member-size cap sees it: the larger of its stored and declared sizes (a
        deflated zip member inflates to its declared size), else its size."""
        if self._zip is None:
            return self.sizes
        return array("q", map(max, self.sizes, self._zip[1]))

    def largest_declared(self) -> int:
        """The largest of :meth:`declared_sizes` (0 without files)."""
        if self._zip is None and self._largest is not None:
            return self._largest
        return max(self.declared_sizes(), default=0)

    def _zip_location(self, offset: int, size: int, method: int, raw: int, crc: int) -> ByteLocation:
        compression = ZIP_DEFLATED_AT_HEADER if method == 8 else ZIP_STORED_AT_HEADER
        return ByteLocation(self.locator, offset, size, compression, raw_size=raw, crc32=crc)

    @property
    def header_offsets(self) -> array | None:
        """Each file's tar header offset (None: no file has one)."""
        if self._header_gap is not None:
            gap = self._header_gap
            return array("q", [offset - gap for offset in self.offsets])
        return self._header_offsets

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

    @classmethod
    def with_suffix(
        cls,
        locator: str,
        keys: str,
        suffix: str,
        offsets: Any,
        sizes: Any,
        header_offsets: Any = None,
        header_gap: int | None = None,
        zip_columns: tuple[bytes | bytearray, array, array] | None = None,
        largest: int | None = None,
    ) -> PackedFiles:
        """From keys joined by "\n" (none holding one), each file's name being its key + ``suffix``
        (``largest``: max(sizes), when known)."""
        return cls(
            locator,
            None,
            (keys, None),
            offsets,
            sizes,
            header_offsets,
            name_suffix=suffix,
            header_gap=header_gap,
            zip_columns=zip_columns,
            largest=largest,
        )

    def names(self) -> list[str]:
        if self._names is None:
            suffix = self._name_suffix or ""
            if not len(self):
                return []
            if self._key_ends is None and "\n" not in suffix:
                return (self._keys.replace("\n", suffix + "\n") + suffix).split("\n")
            return [key + suffix for key in self.keys()]
        return _unpack_strings(self._names, self._name_ends, len(self))

    def keys(self) -> list[str]:
        return _unpack_strings(self._keys, self._key_ends, len(self))

    def joined_keys(self) -> str | None:
        """The keys joined by "\n" when they are packed that way (none holds one), else None."""
        return self._keys if self._key_ends is None else None

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
        if self._names is None:
            return self._name_suffix if len(self) else None
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
        if isinstance(rows, range) and rows == range(len(self)):
            return self
        picked = list(rows)
        if len(picked) == len(self) and picked == list(range(len(self))):
            return self
        keys = self.keys()
        names = None if self._names is None else self.names()
        offsets, sizes, headers = self.offsets, self.sizes, self._header_offsets
        return PackedFiles(
            self.locator,
            None if names is None else [names[i] for i in picked],
            [keys[i] for i in picked],
            array("q", [offsets[i] for i in picked]),
            array("q", [sizes[i] for i in picked]),
            None if headers is None else array("q", [headers[i] for i in picked]),
            name_suffix=self._name_suffix,
            header_gap=self._header_gap,
            zip_columns=None
            if self._zip is None
            else (
                bytes(self._zip[0][i] for i in picked),
                array("q", [self._zip[1][i] for i in picked]),
                array("I", [self._zip[2][i] for i in picked]),
            ),
        )

    def locations(self) -> Iterator[ByteLocation]:
        if self._zip is not None:
            methods, raws, crcs = self._zip
            zipped = zip(
                self.offsets.tolist(), self.sizes.tolist(), methods, raws.tolist(), crcs.tolist(), strict=True
            )
            for offset, size, method, raw, crc in zipped:
                yield self._zip_location(offset, size, method, raw, crc)
            return
        headers = (
            self.header_offsets.tolist() if self.header_offsets is not None else [None] * len(self.offsets)
        )
        for offset, size, header in zip(self.offsets.tolist(), self.sizes.tolist(), headers, strict=True):
            yield ByteLocation(self.locator, offset, size, header_offset=header)

    def __len__(self) -> int:
        return len(self.offsets)

    def _row(self, index: int) -> SourceFile:
        key = self.keys()[index]  # O(n): iterate for more than a few
        name = key + (self._name_suffix or "") if self._names is None else self.names()[index]
        offset = int(self.offsets[index])
        if self._zip is not None:
            methods, raws, crcs = self._zip
            where = self._zip_location(
                offset, int(self.sizes[index]), methods[index], int(raws[index]), int(crcs[index])
            )
            return SourceFile(name, key, where)
        if self._header_gap is not None:
            header: int | None = offset - self._header_gap
        else:
            header = None if self._header_offsets is None else int(self._header_offsets[index])
        location = ByteLocation(self.locator, offset, int(self.sizes[index]), header_offset=header)
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

    def storage_chunks(self, chunk: int) -> list[SampleRows]:
        """The samples in storage order (:meth:`storage_order`), cut every ``chunk`` samples, each piece as
        SampleRows (the same samples as the tuple of them, the same fingerprint): a flat archive's units
        (val: 50,000 images from 1000 classes interleaved) without a Sample per image. The columns are
        gathered with ``operator.itemgetter`` (a loop in C, not a Python loop per row)."""
        if not self.blocks:
            return []
        suffixes = {block.files.name_suffix() for block in self.blocks}
        suffix = next(iter(suffixes)) if len(suffixes) == 1 else None
        source_of = array("i")
        keys: list[str] = []
        names: list[str] = []
        offsets, sizes, headers = array("q"), array("q"), array("q")
        has_headers = any(block.files.header_offsets is not None for block in self.blocks)
        for number, block in enumerate(self.blocks):
            files = block.files
            count = len(files)
            source_of.extend(array("i", [number]) * count)
            keys += files.keys()
            if suffix is None:
                names += files.names()
            offsets.extend(files.offsets)
            sizes.extend(files.sizes)
            if has_headers:
                held = files.header_offsets
                headers.extend(held if held is not None else array("q", [-1]) * count)
        if len({block.files.locator for block in self.blocks}) == 1:  # one file: the offsets order it
            order = sorted(range(len(offsets)), key=offsets.__getitem__)  # stable, as storage_order
        else:
            order = self.storage_order()
        of_block = [(block.files.locator, block.wnid, block.label) for block in self.blocks]
        pieces = []
        for start in range(0, len(order), chunk):
            rows = order[start : start + chunk]
            gather = _gatherer(rows)
            blocks_of = gather(source_of)
            used = dict.fromkeys(blocks_of)  # block -> its index in this piece's sources, first seen first
            for index, b in enumerate(used):
                used[b] = index
            sources = list(map(of_block.__getitem__, used))
            pieces.append(
                SampleRows(
                    self.split,
                    sources,
                    array("i", map(used.__getitem__, blocks_of)),
                    list(gather(keys)),  # a list: a tuple would read as (joined, ends)
                    array("q", gather(offsets)),
                    array("q", gather(sizes)),
                    array("q", gather(headers)) if has_headers else None,
                    None if suffix is not None else list(gather(names)),
                    suffix or "",
                )
            )
        return pieces

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


def _gatherer(rows: Sequence[int]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """A function giving ``[values[row] for row in rows]`` (as a tuple), looped in C."""
    if len(rows) < 2:
        picked = tuple(rows)
        return lambda values: tuple(values[row] for row in picked)
    return operator.itemgetter(*rows)


def gather(values: Sequence[Any], rows: Sequence[int]) -> list[Any]:
    """``[values[row] for row in rows]``, looped in C (``operator.itemgetter``)."""
    return list(_gatherer(rows)(values))


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
