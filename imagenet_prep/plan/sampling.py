"""Which files of a class a build takes: the refusals (above the member-size cap; an output name another file
already has) and the seeded per-class draw.

Per-class sampling (``--train-per-class`` / ``--val-per-class``): the class's files are sorted by their canonical
key (numerically), and N of them are drawn with ``random.Random(f"{seed}:{split}:{wnid}").sample``, then sorted again.
Each class's choice depends only on the seed, split, class and its file list: the same seed gives the same files,
and adding classes to a build does not change the files chosen for the others.

A class that arrives as ``PackedFiles`` stays in columns through the cap, the clash check and the draw (the same
refusals, order and draws as the record path).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import operator
import random
import re
from collections.abc import Iterable, Sequence

from ..columns import PackedFiles
from ..records import SourceFile
from ..sources import Source

_NUMBER_RE = re.compile(r"(\d+)")


_TWO_NUMBERS_RE = re.compile(r"(\D*)(\d+)(\D+)(\d+)(\D*)")  # every ILSVRC2012 name: n01440764_10026.JPEG


def natural_key(name: str) -> tuple:
    """n01440764_2.JPEG before n01440764_10.JPEG."""
    two = _TWO_NUMBERS_RE.fullmatch(name)  # the common shape, 30% faster than the general split
    if two is not None:
        text1, number1, text2, number2, text3 = two.groups()
        return (text1, int(number1), text2, int(number2), text3)
    # split() with a capturing group alternates text and digit runs: the odd items are the numbers.
    parts: list = _NUMBER_RE.split(name)
    parts[1::2] = map(int, parts[1::2])
    return tuple(parts)


# Every name one fixed text, a number, one fixed text (n01440764_10026.JPEG): the natural order is the number's.
_SHAPE_RE = re.compile(r"(.*\D|)([0-9]+)(\D*)", re.DOTALL)
_DIGIT_LINES = b"0123456789\n"


def _shared_shape_numbers(names: Sequence[str]) -> list[int] | None:
    """Each name's number when all are ``head + digits + tail`` with the head and tail of the first (the head
    is empty or ends in a non-digit, the tail holds no digit, the digits are ASCII): natural_key then
    orders them by that number alone. None otherwise."""
    lines = "\n" + "\n".join(names) + "\n"
    if lines.count("\n") != len(names) + 1:  # a name holding "\n"
        return None
    return _joined_shape_numbers(names[0], lines, len(names))


def _joined_shape_numbers(first: str, lines: str, count: int) -> list[int] | None:
    """:func:`_shared_shape_numbers` of ``count`` names (the first is ``first``) joined as ``lines``: each one
    between two "\n", none holding one."""
    shape = _SHAPE_RE.fullmatch(first)
    if shape is None:
        return None
    head, _, tail = shape.groups()
    # Every line must start with the head and end with the tail. Each "\n" + head starts at one of the
    # ``count`` first "\n" (and each tail + "\n" ends at one of the last ``count``), so the replace removed
    # ``count`` of each exactly when the length dropped by that much (no separate count: one pass less).
    digits = lines.replace("\n" + head, "\n") if head else lines
    if len(digits) != len(lines) - count * len(head):
        return None
    if tail:
        shorter = len(digits) - count * len(tail)
        digits = digits.replace(tail + "\n", "\n")
        if len(digits) != shorter:
            return None
    digits = digits[1:-1]
    # what is left of each line must be ASCII digits (isascii is O(1); the bytes' delete runs in C)
    if not digits.isascii() or digits.encode().translate(None, _DIGIT_LINES):
        return None
    if "\n\n" in digits or digits.startswith("\n") or digits.endswith("\n"):
        return None  # an empty number
    if "\n0" not in digits and not digits.startswith("0"):  # no leading zero: the numbers as JSON, in C
        with contextlib.suppress(ValueError):
            return json.loads(f"[{digits.replace(chr(10), ',')}]")
    return list(map(int, digits.split("\n")))


def natural_order(names: Sequence[str]) -> list[int]:
    """The positions of ``names`` in ``sorted(names, key=natural_key)`` order (stable: equal keys keep their
    order). Names of one shape (a class's ILSVRC2012 names) sort as integers, without a key tuple each."""
    count = len(names)
    if count < 2:
        return list(range(count))
    numbers = _shared_shape_numbers(names)
    if numbers is not None:
        return sorted(range(count), key=numbers.__getitem__)
    keys = list(map(natural_key, names))
    return sorted(range(count), key=keys.__getitem__)


def choose_positions(keys: Sequence[str], count: int | None, seed: int, split: str, wnid: str) -> list[int]:
    """The positions in ``keys`` of :func:`choose`'s result, in its order."""
    ordered = natural_order(keys)
    if count is None or count >= len(ordered):
        return ordered
    rng = random.Random(f"{seed}:{split}:{wnid}")
    picked = rng.sample(ordered, count)  # the same draws as from the sorted keys: sample() picks by position
    return [picked[i] for i in natural_order([keys[p] for p in picked])]


def choose_kept(files: PackedFiles, count: int | None, seed: int, split: str, wnid: str) -> Sequence[int]:
    """:func:`choose_positions` over a class's kept files (:func:`kept_files`): when they are known to be in
    the natural order of their keys already and all are taken, that order (what sorting them again gives),
    as a range (``PackedFiles.take`` of every row in order is then the files themselves, with no list made)."""
    if files.key_ordered and (count is None or count >= len(files)):
        return range(len(files))
    return choose_positions(files.keys(), count, seed, split, wnid)


def choose(names: Iterable[str], count: int | None, seed: int, split: str, wnid: str) -> list[str]:
    """The seeded per-class choice documented in the module docstring."""
    listed = list(names)
    return [listed[p] for p in choose_positions(listed, count, seed, split, wnid)]


def _unique_keys(
    source: Source, split: str, wnid: str, files: Sequence[SourceFile], refused: list[tuple[str, str]]
) -> dict[str, SourceFile]:
    """key -> file, refusing a file whose output would be another's: keys that differ only in letter case
    (``x.JPEG`` / ``x.png`` / ``X.JPEG``) map to one output path on some disks."""
    kept: dict[str, SourceFile] = {}
    owner: dict[str, str] = {}
    for file in sorted(files, key=lambda f: natural_key(f.name)):
        folded = file.key.casefold()
        if folded in owner:
            refused.append((source.member_label(split, wnid, file.name), _clash_reason(owner[folded])))
            continue
        owner[folded] = file.name
        kept[file.key] = file
    return kept


def _within_cap(
    source: Source,
    split: str,
    wnid: str,
    files: Sequence[SourceFile],
    cap: int,
    refused: list[tuple[str, str]],
) -> list[SourceFile]:
    """The files not above the member-size cap; the others are refused (recorded), never read."""
    kept = []
    for file in files:
        # A zip member (or a Parquet image alone in its row group): the size it declares once read.
        size = max(file.location.size, file.location.raw_size or 0)
        if size > cap:
            refused.append((source.member_label(split, wnid, file.name), _cap_reason(size, cap)))
        else:
            kept.append(file)
    return kept


def _cap_reason(size: int, cap: int) -> str:
    return (
        f"{size:,} bytes, above the member-size cap of {cap:,} bytes "
        "(no real ImageNet image is near it; raise it with --max-member-size)"
    )


def _clash_reason(owner: str) -> str:
    return f"its output name clashes with {owner} (names differ only in extension or case)"


def kept_files(
    source: Source,
    split: str,
    wnid: str,
    files: Sequence[SourceFile],
    cap: int,
    refused: list[tuple[str, str]],
) -> dict[str, SourceFile] | PackedFiles:
    """A class's files without those above the cap and those whose output would be another's: key -> file
    (by :func:`_within_cap` and :func:`_unique_keys`), or for PackedFiles the same files and refusals as
    PackedFiles in the same order (natural order of the names), without a record per file."""
    if not isinstance(files, PackedFiles):
        return _unique_keys(
            source, split, wnid, _within_cap(source, split, wnid, files, cap, refused), refused
        )
    largest = files.largest_declared()  # a zip member's declared (inflated) size counts
    if largest <= cap:
        fast = _kept_by_key_numbers(files)
        if fast is not None:
            return fast
    sizes = files.declared_sizes()
    names = files.names()
    above = [row for row, size in enumerate(sizes) if size > cap] if largest > cap else []
    for row in above:
        refused.append((source.member_label(split, wnid, names[row]), _cap_reason(int(sizes[row]), cap)))
    rows = [row for row, size in enumerate(sizes) if size <= cap] if above else list(range(len(names)))
    kept_names = [names[row] for row in rows] if above else names
    ordered = [rows[i] for i in natural_order(kept_names)]
    folded = files.folded_keys()
    kept_folded = [folded[row] for row in rows] if above else folded
    if len(set(kept_folded)) != len(kept_folded):  # the first in natural order keeps its key (_unique_keys)
        owner: dict[str, str] = {}
        unique = []
        for row in ordered:
            fold = folded[row]
            if fold in owner:
                refused.append((source.member_label(split, wnid, names[row]), _clash_reason(owner[fold])))
                continue
            owner[fold] = names[row]
            unique.append(row)
        ordered = unique
    return files.take(ordered)


def _kept_by_key_numbers(files: PackedFiles) -> PackedFiles | None:
    """:func:`kept_files` of a class within the cap whose names are their keys + one suffix without a digit,
    the keys sharing one shape (``n01440764_`` + a number): the natural order of the names is then that of
    the keys' numbers, and keys with distinct numbers cannot clash (they casefold to the one head and tail
    around their distinct digits). The same files in the same order, from one list of numbers (no name or
    casefolded key per file); None when that does not hold."""
    suffix = files.name_suffix()
    if not len(files) or suffix is None or any(c.isdigit() for c in suffix):
        return None
    joined = files.joined_keys()
    if joined is None:
        numbers = _shared_shape_numbers(files.keys())
    else:
        numbers = _joined_shape_numbers(joined.partition("\n")[0], f"\n{joined}\n", len(files))
    if numbers is None:
        return None
    if all(map(operator.lt, numbers, itertools.islice(numbers, 1, None))):
        kept = files  # ascending already (a release written in order): distinct, and in natural order
    else:
        if len(set(numbers)) != len(numbers):
            return None
        kept = files.take(sorted(range(len(numbers)), key=numbers.__getitem__))
    kept.key_ordered = True
    return kept


def listed_only(
    files: dict[str, SourceFile] | PackedFiles, keys: set[str] | frozenset[str]
) -> dict[str, SourceFile] | PackedFiles:
    """A class's kept files (:func:`kept_files`) whose keys are in ``keys`` (an image list's), in their order."""
    if isinstance(files, PackedFiles):
        rows = list(itertools.compress(range(len(files)), map(keys.__contains__, files.keys())))  # C loops
        return files if len(rows) == len(files) else files.take(rows)
    return {key: file for key, file in files.items() if key in keys}


def as_records(files: dict[str, SourceFile] | PackedFiles) -> dict[str, SourceFile]:
    return {file.key: file for file in files} if isinstance(files, PackedFiles) else files
