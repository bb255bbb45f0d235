"""What the shard outputs (wds, parquet) share: shard planning, shard sizes, shard manifests, check helpers.

**Shards are work units.** ``plan_shards`` regroups a split's samples into shards at plan time:

- train: one seeded permutation over the whole split (``random.Random(f"{seed}:{split}").shuffle`` of the
  samples sorted by (wnid, key)), so every shard is an i.i.d. draw of the split and the same seed gives the
  same shards whatever the source layout; ``shuffle=False`` keeps (wnid, key) order;
- val (and any other split): file order (the canonical keys in natural order), never shuffled.

The sorted start makes the order independent of how the source grouped its files.

**Planned on columns.** A whole train split is 1.28M images: ``plan_shards`` orders, shuffles and cuts row
numbers over the split's columns (``random.shuffle`` permutes by position only, so shuffling rows gives the
samples' permutation) and makes each shard a ``columns.SampleRows`` of its own rows, with no ``Sample`` per
image; the same shards and fingerprints as planning ``Sample`` records (``shard_order``, ``cut_shards``), which
a split with annotated or compressed samples still uses.

**Shard sizes** (``--shard-size``): a whole number is samples per shard (``5000``); a number with a unit is bytes
per shard (``1GB``, ``500MB``, ``512MiB``: SI units are powers of 1000, ``KiB``/``MiB``/``GiB`` of 1024). Byte
sizes are planned from the SOURCE sizes of the images (``sample.location.size``), the only sizes known before
any image is processed: a repack (``--resize none``) writes shards of about that size (plus ~1.5 KB of tar
headers and metadata per sample); a resized build writes smaller shards (shorter-256 JPEGs are ~4x smaller than
the ILSVRC2012 originals), so ask for a larger byte size, or give a sample count, when resizing.

**Manifests** (``<split>.csv``): ``shard,key,label,wnid,width,height``, one row per written sample in shard
order (the shard's path relative to OUT and the sample's key inside it). A unit's rows carry
``ManifestRow.path = "<shard path>/<key>"`` (keys hold no ``/``).
"""

from __future__ import annotations

import bisect
import csv
import io
import itertools
import os
import random
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from ..build_options import OUTPUT_SPLITS
from ..columns import SampleRows, SampleTable
from ..errors import UsageError
from ..io.atomic import write_text_atomic
from ..records import ManifestRow, Sample, UnitResult, WorkUnit
from .base import Groups, Problems, recorded_file_sizes

#: From this many rows a split's shards are gathered with numpy (see ``_SplitColumns.shards``).
NUMPY_ROWS = 200_000
SHARD_MANIFEST_FIELDS = ("shard", "key", "label", "wnid", "width", "height")
_NUMBER_RE = re.compile(r"(\d+)")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


#: A split with fewer shards than this gets a warning: a loader with more workers x GPUs than shards leaves
#: workers without a shard (webdataset: "fewer shards than workers"); 16 = 8 workers x 2 GPUs, a small set-up.
FEW_SHARDS = 16


@dataclass(frozen=True)
class ShardSize:
    """A shard limit: ``count`` samples, or ``count`` bytes of source images when ``in_bytes``; and at least
    ``at_least`` shards per split (0: no minimum; --min-shards)."""

    count: int
    in_bytes: bool
    at_least: int = 0


#: The split names the Hub and TFDS publish (``val`` is ``validation`` there): the shard formats read by those
#: ecosystems (parquet, tfrecord, tfds) name their files and manifests so.
PUBLISHED_SPLIT_NAMES = {"train": "train", "val": "validation"}


def published_split(split: str) -> str:
    """A split's published name (``val`` -> ``validation``; another name is its own)."""
    return PUBLISHED_SPLIT_NAMES.get(split, split)


def parse_shard_size(value: str | int | None, default: str, at_least: int | None = None) -> ShardSize:
    """``5000`` -> 5000 samples; ``"1GB"`` -> 10**9 bytes; None -> ``default``; ``at_least``: --min-shards. A
    UsageError says what is valid."""
    if at_least is not None and at_least < 1:
        raise UsageError(f"--min-shards must be at least 1 (got {at_least}).")
    size = _parse_shard_size(value, default)
    return size if not at_least else ShardSize(size.count, size.in_bytes, at_least)


def even_edges(edges: list[int], size: ShardSize) -> list[int]:
    """``edges`` (shard boundaries over a split's rows, from 0 to the row count) when they make at least
    ``size.at_least`` shards, else the rows cut into that many even shards (sizes differing by at most one;
    as many as there are rows when fewer). Without a minimum the edges are those of the size alone, so builds
    without --min-shards keep their shards."""
    rows = edges[-1] if edges else 0
    if len(edges) - 1 >= size.at_least or len(edges) - 1 >= rows:
        return edges
    count = min(size.at_least, rows)
    return [index * rows // count for index in range(count + 1)]


def few_shards(units: Sequence[WorkUnit]) -> list[str]:
    """A warning per split with fewer than FEW_SHARDS shards (units), saying what to do."""
    shards: dict[str, int] = {}
    images: dict[str, int] = {}
    for unit in units:
        shards[unit.split] = shards.get(unit.split, 0) + 1
        images[unit.split] = images.get(unit.split, 0) + len(unit.samples)
    warnings = []
    for split, count in shards.items():
        if count >= FEW_SHARDS:
            continue
        fix = (
            f"only {images[split]} images, so at most that many shards"
            if images[split] <= count
            else "--min-shards N (N = loader workers x GPUs) or a smaller --shard-size gives more"
        )
        warnings.append(
            f"{split}: {count} shard{'s' if count != 1 else ''}, fewer than {FEW_SHARDS}: a loader with more "
            f"workers x GPUs than shards leaves workers idle or fails ('fewer shards than workers'); {fix}."
        )
    return warnings


def _parse_shard_size(value: str | int | None, default: str) -> ShardSize:
    if value is None:
        value = default
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int):
        if value < 1:
            raise UsageError(f"--shard-size must be at least 1 sample (got {value}).")
        return ShardSize(value, False)
    match = _SIZE_RE.match(str(value))
    if not match:
        raise UsageError(
            f"Invalid --shard-size {value!r}: give samples per shard (5000) or bytes with a unit (1GB, 500MB)."
        )
    number, unit = match.groups()
    if unit is None:
        if "." in number:
            raise UsageError(f"Invalid --shard-size {value!r}: a sample count is a whole number.")
        count, in_bytes = int(number), False
    else:
        count, in_bytes = int(float(number) * _UNITS[unit.lower()]), True
    if count < 1:
        raise UsageError(f"--shard-size must be at least 1 (got {value!r}).")
    return ShardSize(count, in_bytes)


def _natural(key: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in _NUMBER_RE.split(key))


def shard_order(split: str, samples: Iterable[Sample], shuffle: bool, seed: int) -> list[Sample]:
    """The order samples are written in (see the module docstring)."""
    if split == "train":
        ordered = sorted(samples, key=lambda s: (s.wnid, _natural(s.key)))
        if shuffle:
            random.Random(f"{seed}:{split}").shuffle(ordered)
        return ordered
    return sorted(samples, key=lambda s: (_natural(s.key), s.wnid))


def cut_shards(samples: Sequence[Sample], size: ShardSize) -> list[tuple[Sample, ...]]:
    """Consecutive runs of ``samples``: ``size.count`` samples each, or as many as fit in ``size.count`` source
    bytes (at least one sample per shard, so an image larger than the limit is a shard of its own)."""
    if size.at_least:  # the rows' cut, then at least the minimum (the columns' cut does the same)
        edges = even_edges(_edges([sample.location.size for sample in samples], size), size)
        return [tuple(samples[start:end]) for start, end in itertools.pairwise(edges)]
    if not size.in_bytes:
        return [tuple(samples[i : i + size.count]) for i in range(0, len(samples), size.count)]
    shards: list[tuple[Sample, ...]] = []
    current: list[Sample] = []
    total = 0
    for sample in samples:
        if current and total + sample.location.size > size.count:
            shards.append(tuple(current))
            current, total = [], 0
        current.append(sample)
        total += sample.location.size
    if current:
        shards.append(tuple(current))
    return shards


def plan_shards(
    split: str,
    groups: Groups,
    size: ShardSize,
    shuffle: bool,
    seed: int,
    name_of: Callable[[str, int, int], str],
) -> Groups:
    """The source's groups regrouped into shards; ``name_of(split, index, total)`` names each (the unit id).

    Groups of columns (SampleTables) and plain Samples are planned as columns, each shard one SampleRows of
    its own rows (no Sample per image); a split holding an annotated or compressed sample is planned as
    Samples. Both give the same shards, in the same order, with the same fingerprints."""
    columns = _SplitColumns.of(split, groups)
    if columns is None:
        samples = [sample for _, group in groups for sample in group]
        shards: Sequence[Sequence[Sample]] = cut_shards(shard_order(split, samples, shuffle, seed), size)
    else:
        shards = columns.shards(columns.order(shuffle, seed), size)
    return [(name_of(split, index, len(shards)), shard) for index, shard in enumerate(shards)]


class _SplitColumns:
    """A split's samples as flat columns in group order (row i: the i-th sample of the flattened groups), for
    ordering and cutting shards without a Sample per image. Keys (and names, unless every name is its key +
    ``suffix``) are one string each, row i at ``bounds[i]:bounds[i + 1]``."""

    def __init__(self, split: str, suffix: str | None) -> None:
        self.split = split
        self.suffix = suffix
        self.sources: dict[tuple[str, str, int], int] = {}  # (locator, wnid, label) -> its index
        self.source_rows = array("i")
        self.offsets = array("q")
        self.sizes = array("q")
        self.headers = array("q")  # -1: no tar header to verify
        # train: wnid -> its rows, as (start, stop) in group order
        self.runs: dict[str, list[tuple[int, int]]] = {}
        self.natural: dict[int, array] = {}  # train: a class block's first row -> its natural order
        self.key_bounds = array("q", [0])
        self.name_bounds = array("q", [0])
        self.keys = self.names = ""  # joined once every row is in
        self._keys: list[str] = []
        self._names: list[str] = []

    @classmethod
    def of(cls, split: str, groups: Groups) -> _SplitColumns | None:
        """The columns of ``groups``, or None when a sample does not fit them (boxes, extra columns, another
        split, compressed bytes, a zip's raw size): that split is planned as Samples."""
        from ..plan.sampling import natural_order

        suffixes: set[str | None] = set()
        for _, group in groups:  # first: does every sample fit, and is every name its key + one suffix?
            if isinstance(group, SampleTable):
                if group.split != split or any(block.files.is_zip for block in group.blocks):
                    return None
                for block in group.blocks:
                    headers, sizes = block.files.header_offsets, block.files.sizes
                    if (headers is not None and min(headers) < 0) or min(sizes) < 0:
                        return None
                    suffixes.add(block.files.name_suffix())
                continue
            for sample in group:
                location = sample.location
                header = location.header_offset
                if (
                    sample.split != split
                    or sample.boxes
                    or sample.boxes_size is not None
                    or sample.extra
                    or location.compression is not None
                    or location.raw_size is not None
                    or location.size < 0
                    or (header is not None and header < 0)
                ):
                    return None
                name, key = sample.name, sample.key
                suffixes.add(name[len(key) :] if name.startswith(key) else None)
        columns = cls(split, suffixes.pop() if len(suffixes) == 1 else None)
        for _, group in groups:
            if isinstance(group, SampleTable):
                for block in group.blocks:
                    files = block.files
                    keys = files.keys()
                    start = columns._add(files.locator, block.wnid, block.label, keys, files.names)
                    columns.offsets.extend(files.offsets)
                    columns.sizes.extend(files.sizes)
                    headers = files.header_offsets
                    columns.headers.extend(headers if headers is not None else array("q", [-1]) * len(keys))
                    if split == "train":
                        columns.natural[start] = array("i", natural_order(keys))
                continue
            columns._add_samples(group)
        columns.keys, columns.names = "".join(columns._keys), "".join(columns._names)
        del columns._keys, columns._names
        return columns

    def _add(
        self, locator: str, wnid: str, label: int, keys: list[str], names: list[str] | Callable[[], list[str]]
    ) -> int:
        """Rows for ``keys`` from one source (the caller adds their numbers); their first row. ``names`` (or
        what makes them) are kept only when they are not the keys + the suffix."""
        start, count = len(self.source_rows), len(keys)
        source = self.sources.setdefault((locator, wnid, label), len(self.sources))
        self.source_rows.extend(array("i", [source]) * count)
        if self.split == "train":
            self._run(wnid, start, count)
        _extend_strings(self._keys, self.key_bounds, keys)
        if self.suffix is None:
            _extend_strings(self._names, self.name_bounds, names() if callable(names) else names)
        return start

    def _add_samples(self, samples: Sequence[Sample]) -> None:
        """Rows for plain Samples (checked by ``of``), a column at a time."""
        start, sources = len(self.source_rows), self.sources
        locations = [sample.location for sample in samples]
        self.source_rows.extend(
            [
                sources.setdefault((location.locator, sample.wnid, sample.label), len(sources))
                for sample, location in zip(samples, locations, strict=True)
            ]
        )
        self.offsets.extend([location.offset for location in locations])
        self.sizes.extend([location.size for location in locations])
        self.headers.extend([-1 if loc.header_offset is None else loc.header_offset for loc in locations])
        _extend_strings(self._keys, self.key_bounds, [sample.key for sample in samples])
        if self.suffix is None:
            _extend_strings(self._names, self.name_bounds, [sample.name for sample in samples])
        if self.split == "train":
            for row, sample in enumerate(samples, start):
                self._run(sample.wnid, row, 1)

    def _run(self, wnid: str, start: int, count: int) -> None:
        runs = self.runs.setdefault(wnid, [])
        if runs and runs[-1][1] == start:  # consecutive samples of one class: one run
            runs[-1] = (runs[-1][0], start + count)
        else:
            runs.append((start, start + count))

    def order(self, shuffle: bool, seed: int) -> array:
        """The rows in shard_order's order: train by (wnid, natural key), stable, then the seeded permutation
        (random.shuffle draws by position only, so shuffling the rows permutes them as it did the samples);
        other splits by (natural key, wnid), stable."""
        from ..plan.sampling import natural_key, natural_order

        ordered = array("q")
        if self.split == "train":
            for wnid in sorted(self.runs):  # wnid first; within a class, the natural order of its keys
                runs = self.runs[wnid]
                start, stop = runs[0]
                natural = self.natural.get(start) if len(runs) == 1 else None
                if natural is not None and len(natural) == stop - start:  # one class block: sorted once
                    ordered.extend([start + i for i in natural])
                    continue
                rows = [row for start, stop in runs for row in range(start, stop)]
                ordered.extend([rows[i] for i in natural_order(_strings(self.keys, self.key_bounds, rows))])
            self.natural = {}  # used
            if shuffle:
                random.Random(f"{seed}:{self.split}").shuffle(ordered)
            return ordered
        wnid_of = [wnid for (_, wnid, _), _ in sorted(self.sources.items(), key=lambda item: item[1])]
        count = len(self.source_rows)
        keys = [
            (natural_key(key), wnid_of[source])
            for key, source in zip(
                _strings(self.keys, self.key_bounds, range(count)), self.source_rows, strict=True
            )
        ]
        ordered.extend(sorted(range(count), key=keys.__getitem__))
        return ordered

    def cut(self, ordered: array, size: ShardSize) -> list[array]:
        """cut_shards on rows: runs of ``size.count`` rows, or of as many as fit in ``size.count`` source bytes
        (at least one: a larger image is a shard of its own)."""
        if size.at_least:
            edges = even_edges(_edges([self.sizes[row] for row in ordered], size), size)
            return [ordered[start:end] for start, end in itertools.pairwise(edges)]
        if not size.in_bytes:
            return [ordered[i : i + size.count] for i in range(0, len(ordered), size.count)]
        # The greedy cut from the running totals: a shard from row s ends before the first row whose bytes
        # would take its total past the limit (sizes are >= 0, so the totals never decrease).
        totals = array("q", itertools.accumulate(map(self.sizes.__getitem__, ordered), initial=0))
        shards: list[array] = []
        start = 0
        while start < len(ordered):
            end = max(bisect.bisect_right(totals, totals[start] + size.count) - 1, start + 1)
            shards.append(ordered[start:end])
            start = end
        return shards

    def shards(self, ordered: array, size: ShardSize) -> list[SampleRows]:
        """The shards of the rows in ``ordered``. A large split is gathered with numpy (a loop in C over the
        permutation, ~1.5 s less for a whole train split than this module's stdlib loops; its import, ~0.1 s,
        is then a small part); the records stay stdlib arrays either way."""
        ascii_text = self.keys.isascii() and (self.suffix is not None or self.names.isascii())
        if len(ordered) >= NUMPY_ROWS and ascii_text:
            return self._shards_numpy(ordered, size)
        return [self.rows(rows) for rows in self.cut(ordered, size)]

    def _shards_numpy(self, ordered: array, size: ShardSize) -> list[SampleRows]:
        """What ``[self.rows(rows) for rows in self.cut(ordered, size)]`` gives, the columns permuted once
        with numpy, each shard then a slice; names and keys gathered as ASCII bytes. Consumes the columns:
        each is released once permuted (the whole-set peak is the columns once, not twice)."""
        import numpy as np

        count = len(ordered)
        if not count:
            return []
        order = np.frombuffer(ordered, dtype=np.int64)

        def permuted(name: str) -> Any:
            column = getattr(self, name)
            setattr(self, name, array(column.typecode))
            return np.frombuffer(column, dtype=column.typecode)[order]

        sizes = permuted("sizes")
        if not size.in_bytes:
            edges = [*range(0, count, size.count), count]
        else:  # the greedy cut of ``cut``, by binary search in the running totals (sizes are >= 0)
            totals = np.zeros(count + 1, dtype=np.int64)
            np.cumsum(sizes, out=totals[1:])
            limit = min(size.count, int(totals[-1]))  # a limit past every byte cuts the same, within int64
            edges, start = [0], 0
            while start < count:
                end = int(np.searchsorted(totals, int(totals[start]) + limit, side="right")) - 1
                start = max(end, start + 1)
                edges.append(start)
        edges = even_edges(edges, size)
        # The keys and names first, then their sources released: the numbers' two copies (the split's, each
        # released as it is permuted, and the shards') then meet fewer other columns at the peak.
        pairs = list(itertools.pairwise(edges))
        text = _NumpyText(self.keys, self.key_bounds, order)
        self.keys, self.key_bounds = "", array("q")
        keys = [text.text(start, end) for start, end in pairs]
        names: list[tuple[str, array] | None] = [None] * len(pairs)
        if self.suffix is None:
            text = _NumpyText(self.names, self.name_bounds, order)
            self.names, self.name_bounds = "", array("q")
            names = [text.text(start, end) for start, end in pairs]
        del text
        sources, offsets, headers = permuted("source_rows"), permuted("offsets"), permuted("headers")
        listed = list(self.sources)
        shards = []
        for index, (start, end) in enumerate(pairs):
            part = sources[start:end]
            used = np.unique(part)
            picked = listed
            if len(used) < len(listed):  # a shard lists only its own sources (a worker gets no more)
                part = np.searchsorted(used, part).astype(part.dtype)
                picked = [listed[i] for i in used.tolist()]
            shard_headers = headers[start:end]
            shards.append(
                SampleRows(
                    self.split,
                    picked,
                    array("i", part.tobytes()),
                    keys[index],
                    array("q", offsets[start:end].tobytes()),
                    array("q", sizes[start:end].tobytes()),
                    array("q", shard_headers.tobytes()) if int(shard_headers.max()) >= 0 else None,
                    names[index],
                    self.suffix or "",
                )
            )
        return shards

    def rows(self, rows: array, chunk: int = 1 << 16) -> SampleRows:
        """The SampleRows of ``rows`` (in that order), listing only the sources they use. Gathered a chunk at
        a time: the temporary tuples stay small whatever the shard's size."""
        source_rows, offsets, sizes, headers = array("i"), array("q"), array("q"), array("q")
        keys: list[str] = []
        key_ends = array("q", [0])
        names: list[str] = []
        name_ends = array("q", [0])
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            pick = _picker(part)  # one itemgetter for every column (a loop in C)
            source_rows.extend(pick(self.source_rows))
            offsets.extend(pick(self.offsets))
            sizes.extend(pick(self.sizes))
            headers.extend(pick(self.headers))
            _extend_strings(keys, key_ends, _strings(self.keys, self.key_bounds, part, pick))
            if self.suffix is None:
                _extend_strings(names, name_ends, _strings(self.names, self.name_bounds, part, pick))
        listed = list(self.sources)
        used = sorted(set(source_rows))
        if len(used) < len(listed):  # a shard lists only its own sources (a worker gets no more)
            renumber = {old: new for new, old in enumerate(used)}
            source_rows = array("i", map(renumber.__getitem__, source_rows))
            listed = [listed[old] for old in used]
        return SampleRows(
            self.split,
            listed,
            source_rows,
            ("".join(keys), key_ends[1:]),
            offsets,
            sizes,
            headers if len(headers) and max(headers) >= 0 else None,
            None if self.suffix is not None else ("".join(names), name_ends[1:]),
            self.suffix or "",
        )


class _NumpyText:
    """An ASCII column (one string, row i at ``bounds[i]:bounds[i + 1]``) in the order of ``order``, taken a
    range of rows at a time."""

    def __init__(self, joined: str, bounds: array, order: Any) -> None:
        import numpy as np

        self.data = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        self.bounds = np.frombuffer(bounds, dtype=np.int64)
        self.order = order
        self.counting = np.arange(0, dtype=np.int64)

    def text(self, start: int, end: int, chunk: int = 1 << 14) -> tuple[str, array]:
        """Rows ``start:end`` joined, with each one's end: chunks of rows keep the index arrays small."""
        import numpy as np

        pieces: list[str] = []
        ends = array("q")
        base = 0
        for first in range(start, end, chunk):
            rows = self.order[first : min(first + chunk, end)]
            starts = self.bounds[rows]
            lengths = self.bounds[rows + 1] - starts
            stops = np.cumsum(lengths)
            total = int(stops[-1])
            if len(self.counting) < total:
                self.counting = np.arange(2 * total, dtype=np.int64)
            # every character's index in the data: its row's start, shifted by its place in the output
            index = np.repeat(starts - (stops - lengths), lengths)
            index += self.counting[:total]
            pieces.append(self.data[index].tobytes().decode("ascii"))
            ends.frombytes((stops + base).tobytes())
            base += total
        return "".join(pieces), ends


def _edges(sizes: Sequence[int], size: ShardSize) -> list[int]:
    """The shard boundaries of ``cut_shards`` over rows of these source sizes (0, ..., the row count)."""
    count = len(sizes)
    if not size.in_bytes:
        return [*range(0, count, size.count), count] if count else [0]
    edges, total = [0], 0
    for row, bytes_ in enumerate(sizes):
        if row > edges[-1] and total + bytes_ > size.count:
            edges.append(row)
            total = 0
        total += bytes_
    if count:
        edges.append(count)
    return edges


def _extend_strings(pieces: list[str], bounds: array, strings: list[str]) -> None:
    pieces.append("".join(strings))
    ends = itertools.accumulate(map(len, strings), initial=bounds[-1])
    next(ends)  # the first is the previous end
    bounds.extend(ends)


def _picker(rows: Sequence[int]) -> Callable[[Sequence[int]], Sequence[int]]:
    """A function giving a column's values at ``rows`` (itemgetter: a loop in C; a tuple even for one row)."""
    if len(rows) == 1:
        row = rows[0]
        return lambda column: (column[row],)
    if not rows:
        return lambda column: ()
    return itemgetter(*rows)


def _strings(
    joined: str,
    bounds: array,
    rows: Sequence[int],
    pick: Callable[[Sequence[int]], Sequence[int]] | None = None,
) -> list[str]:
    """The strings at ``rows`` of one joined with its bounds (``pick``: ``_picker(rows)``, when made)."""
    pick = pick or _picker(rows)
    ends = memoryview(bounds)[1:]  # row i ends where row i + 1 starts (a view: no copy)
    try:
        return list(map(joined.__getitem__, map(slice, pick(bounds), pick(ends))))
    finally:
        ends.release()


# ---------------------------------------------------------------------------------------------- manifests
def row_location(row: ManifestRow) -> tuple[str, str]:
    """(shard path, key) of a shard output's manifest row."""
    shard, _, key = row.path.rpartition("/")
    return shard, key


def write_shard_manifests(
    out: Path, splits: Sequence[str], results: Sequence[UnitResult], names: Mapping[str, str] | None = None
) -> None:
    """``<split>.csv`` per split (``names``: the split's published name, when the format renames it), rows in
    shard order then write order (results come in plan order)."""
    for split in splits:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(SHARD_MANIFEST_FIELDS)
        for result in results:
            if result.split != split:
                continue
            for row in result.rows:
                shard, key = row_location(row)
                writer.writerow((shard, key, row.label, row.wnid, row.width, row.height))
        write_text_atomic(out / f"{(names or {}).get(split, split)}.csv", buffer.getvalue())


def read_shard_manifest(path: Path) -> dict[str, list[dict[str, str]]]:
    """shard path -> its rows in order."""
    by_shard: dict[str, list[dict[str, str]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_shard.setdefault(row["shard"], []).append(row)
    return by_shard


def check_label_maps(out: Path, problems: Problems) -> dict[str, int]:
    """wnid -> label from labels.txt (the label maps checked against each other); raises when OUT has none."""
    from ..errors import InputError
    from .imagefolder_check import check_label_map_files

    labels_file = out / "labels.txt"
    if not labels_file.is_file():
        raise InputError(f"{out} is not an output built by imagenet-prep (no labels.txt). Check the path.")
    wnids = labels_file.read_text().split()
    if wnids != sorted(set(wnids)):
        problems.add("labels.txt is not sorted and unique")
    check_label_map_files(out, wnids, problems)
    return {wnid: i for i, wnid in enumerate(wnids)}


def check_start(out: Path, problems: Problems) -> dict[str, int]:
    """What every shard format's check does first: the label maps (wnid -> label, returned; raises when OUT has
    none), then each recorded file's size."""
    label_of = check_label_maps(out, problems)
    check_recorded_sizes(out, problems)
    return label_of


def present_manifests(out: Path) -> Iterator[tuple[str, Path]]:
    """(split, its manifest) for train, val, then test, each where the build wrote its manifest."""
    for split in OUTPUT_SPLITS:
        manifest = out / f"{split}.csv"
        if manifest.is_file():
            yield split, manifest


def check_image(data: bytes, row: dict[str, str], where: str, decode: bool, problems: Problems) -> None:
    """An image's bytes against its manifest row: RGB, the recorded size, fully decodable when ``decode``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.size != (int(row["width"]), int(row["height"])):
                problems.add(
                    f"{where}: size {image.size} but the manifest says {row['width']}x{row['height']}"
                )
            if image.mode != "RGB":
                problems.add(f"{where}: mode {image.mode}, expected RGB")
            if decode:
                image.load()
    except Exception as exc:  # noqa: BLE001 - any decoder error is a finding, not a crash
        problems.add(f"{where}: cannot be read as an image ({exc})")


#: The most bytes ``check`` reads of one shard member or one Parquet row group (far above any image a build
#: writes): a planted shard cannot make a check hold more. Shards are opened only as regular files.
CHECK_READ_LIMIT = 256 << 20


def row_problem(row: dict[str, str], where: str) -> str | None:
    """A manifest row whose label, width or height is not a whole number (reported, never converted)."""
    for field in ("label", "width", "height"):
        value = row.get(field) or ""
        if not value.isdigit():
            return f"{where}: {field} {value!r} in the manifest is not a whole number"
    return None


def check_recorded_sizes(out: Path, problems: Problems) -> None:
    """Every file the done markers recorded (shards, indexes) against its size now, one stat each: a truncated,
    emptied or deleted shard is found without reading it (the repair: the same build command)."""

    for rel, size in sorted(recorded_file_sizes(out).items()):
        if rel.startswith("/") or ".." in rel.split("/"):
            continue  # markers name files inside OUT only: never stat outside it
        try:
            now = os.stat(out / rel).st_size
        except OSError:
            problems.add(f"{rel}: missing (its build wrote {size} bytes)")
            continue
        if now != size:
            problems.add(f"{rel}: {now} bytes but its build wrote {size} (truncated or changed)")
