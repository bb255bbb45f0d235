"""A folder of Parquet shards in the Hugging Face ``ILSVRC/imagenet-1k`` layout: the Hub's own shards, and ours
(``--output parquet``), which use the same columns, types and file names. ``data/train-*-of-*.parquet`` and
``data/validation-*-of-*.parquet`` (294 and 14 in the real repository; ``data/val-*`` too, as our outputs name
that split; the folder itself is searched too). Columns: ``image`` = struct{bytes: binary, path: string} and
``label`` (int). Needs pyarrow (``pip install 'imagenet-prep[parquet]'``).

A row's class: a ``path`` with the Hub's ``_<wnid>`` suffix (``n01440764_10026_n01440764.JPEG``) names it, and
its label must be that class's index; a path without one (``n01440764_10026.JPEG``: ours, re-uploads) takes the
class of its label through the label map, and a wnid its key starts with must agree. The label map, the first
found: ``labels.txt`` beside ``data/`` (our outputs; line i = label i, subsets included); the ClassLabel names in
the schema's ``huggingface`` metadata (``info.features.label.names``), else in the dataset card's YAML
(``README.md``: ``dataset_info.features[label].dtype.class_label.names``), when every name is a wnid or one of
the 1K classes' names (unique names, or the full words strings the Hub uses); else, for 1000 labels, the
ImageNet-1K sorted-wnid order (what the Hub documents; its renamed ``crane2`` and the duplicate names are why
names alone cannot always decide). A row that disagrees with these facts is refused with a reason; a file
without that schema is a one-line error.

Planning reads only the ``image.path`` and ``label`` columns (no image bytes: no index cache is needed). A
sample's ``ByteLocation`` is ``(file, row number in the file, row group, "parquet")``; a unit is one file, whose
worker reads the ``image.bytes`` column one row group at a time, only the row groups it needs. ``image.path``
goes through the one name policy (io/tar.py ``name_problem``, as a plain file name: no ``/``, no leading ``.``
such as ``.tmp-``, no control characters (CR, LF, NUL), at most 200 bytes). A row whose image is alone in its
row group is sized from the file's metadata at planning (over the member-size cap: refused, never read). A row
group whose image bytes (uncompressed, from the metadata) exceed the cap is not read at all: each of its rows is
a recorded skip saying so (real shards hold ~100 images, ~11 MB, per row group); a row with no image bytes is a
recorded skip too. A worker never holds more than the cap of image bytes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import stat
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ArchiveError, InputError, MemberError, UsageError
from ..io.tar import name_problem
from ..records import ByteLocation, Sample, SourceFile, WorkUnit
from ..taxonomy import classes
from .base import FolderProbe, Runner, SourceBase, SourceRecord, SplitIndex
from .common import WNID_RE
from .hf_tar import parse_suffixed

PARQUET = "parquet"
SHARD_RE = re.compile(r"^(train|validation|val)-\d{5}-of-\d{5}\.parquet$")
SPLIT_OF = {"train": "train", "validation": "val", "val": "val"}
LABELS_FILE = "labels.txt"
_KEY_WNID_RE = re.compile(r"^(n\d{8})_")
EXTRA = "pip install 'imagenet-prep[parquet]'"


def _pyarrow() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(f"The hf-parquet layout needs pyarrow: run `{EXTRA}`.") from None
    return pq


def _shards(folder: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for where in (folder / "data", folder):
        try:
            names = sorted(p.name for p in where.iterdir())
        except OSError:
            continue
        for name in names:
            match = SHARD_RE.match(name)
            if match:
                out.setdefault(SPLIT_OF[match.group(1)], []).append(where / name)
        if out:
            break
    return out


def _check_schema(schema: Any, path: Path) -> None:
    import pyarrow as pa

    def fail(why: str) -> ArchiveError:
        return ArchiveError(
            f"{path} is not an imagenet-1k Parquet shard ({why}): expected columns "
            "image: struct<bytes: binary, path: string> and label: int."
        )

    names = schema.names
    if "image" not in names or "label" not in names:
        raise fail(f"its columns are {', '.join(names)}")
    image = schema.field("image").type
    if not pa.types.is_struct(image):
        raise fail(f"image is {image}")
    fields = {image.field(i).name: image.field(i).type for i in range(image.num_fields)}
    if not (pa.types.is_binary(fields.get("bytes")) or pa.types.is_large_binary(fields.get("bytes"))):
        raise fail("image has no binary 'bytes'")
    if not (pa.types.is_string(fields.get("path")) or pa.types.is_large_string(fields.get("path"))):
        raise fail("image has no string 'path'")
    if not pa.types.is_integer(schema.field("label").type):
        raise fail(f"label is {schema.field('label').type}")


def _open_shard(path: str) -> Any:
    """A ParquetFile over ``path`` opened non-blocking and only if it is a regular file (a FIFO swapped in for a
    shard would otherwise block the reader in open): MemberError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ArchiveError(f"Cannot open {path}: {exc.strerror}.") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise MemberError(f"{path} is not a regular file (a FIFO or a device?); it is not read.")
    handle = os.fdopen(fd, "rb")
    try:
        return _pyarrow().ParquetFile(handle)
    except Exception:
        handle.close()
        raise


def list_shard(path: str) -> tuple[list[tuple[str, int, int, int, int]], int]:
    """(path, label, row group, row in file, image bytes) of every row, reading only those two columns; and
    bytes read. The image bytes are known from the file's metadata only for a row alone in its row group (the
    group's uncompressed image.bytes size); -1 otherwise."""
    _pyarrow()
    try:
        handle = _open_shard(path)
    except ArchiveError:
        raise
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a non-Parquet file
        raise ArchiveError(f"{path} is not a readable Parquet file ({exc}); re-download it.") from None
    try:
        return _list_rows(handle, path)
    finally:
        handle.close(force=True)  # and the file it was given


def _list_rows(handle: Any, path: str) -> tuple[list[tuple[str, int, int, int, int]], int]:
    _check_schema(handle.schema_arrow, Path(path))
    rows: list[tuple[str, int, int, int, int]] = []
    nbytes = 0
    row = 0
    meta = handle.metadata
    for group in range(meta.num_row_groups):
        table = handle.read_row_group(group, columns=["image.path", "label"])
        paths = table.column("image").combine_chunks().field("path").to_pylist()
        labels = table.column("label").to_pylist()
        info = meta.row_group(group)
        alone = -1
        if info.num_rows == 1:
            for col in range(info.num_columns):
                if info.column(col).path_in_schema == "image.bytes":
                    alone = info.column(col).total_uncompressed_size
        for name, label in zip(paths, labels, strict=True):
            rows.append((name or "", -1 if label is None else int(label), group, row, alone))
            row += 1
        for col in range(info.num_columns):
            if info.column(col).path_in_schema in ("image.path", "label"):
                nbytes += info.column(col).total_compressed_size
    return rows, nbytes


def _schema_names(shard: Path | None) -> list[str] | None:
    """The ClassLabel names in a shard's ``huggingface`` schema metadata (None: none there)."""
    if shard is None:
        return None
    try:
        metadata = _pyarrow().read_schema(shard).metadata or {}
        info = json.loads(metadata.get(b"huggingface", b"{}"))
        names = info.get("info", {}).get("features", {}).get("label", {}).get("names")
    except (OSError, ValueError, AttributeError, ArchiveError):
        return None
    return [str(n) for n in names] if isinstance(names, list) and names else None


def _card_names(folder: Path) -> list[str] | None:
    """The ClassLabel names of the ``label`` feature in the dataset card's YAML header (None: none there)."""
    try:
        text = (folder / "README.md").read_text(encoding="utf-8")
        import yaml

        if not text.startswith("---"):
            return None
        header = yaml.safe_load(text.split("---", 2)[1])
        for feature in header["dataset_info"]["features"]:
            if feature.get("name") == "label":
                names = feature["dtype"]["class_label"]["names"]
                return [str(names[k]) for k in sorted(names, key=int)] if isinstance(names, dict) else None
    except Exception:  # no card, or a malformed one (yaml.YAMLError, missing keys): no names from it
        return None
    return None


def _names_to_wnids(names: Sequence[str]) -> list[str] | None:
    """Class names -> wnids when every name is a wnid or one 1K class's name (unique name, or its full words
    string such as ``tench, Tinca tinca``) and no class repeats; else None (names alone cannot decide)."""
    by_text: dict[str, str] = {}
    twice: set[str] = set()
    for info in classes.all_classes():
        for text in {info.name, info.words}:
            if text in by_text and by_text[text] != info.wnid:
                twice.add(text)
            by_text[text] = info.wnid
    out = []
    for name in names:
        wnid = name if WNID_RE.match(name) else (None if name in twice else by_text.get(name))
        if wnid is None:
            return None
        out.append(wnid)
    return out if len(set(out)) == len(out) else None


class HfParquetSource(SourceBase):
    """``data/train-*-of-*.parquet`` and/or ``data/validation-*-of-*.parquet``."""

    layout: ClassVar[str] = "hf-parquet"
    needs: ClassVar[str] = "data/train-*-of-*.parquet and/or data/validation-*-of-*.parquet (needs pyarrow)"

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        super().__init__(folder, cache_dir)
        self.shards = _shards(self.folder)
        self._rows: dict[str, list[tuple[Path, list[tuple[str, int, int, int, int]]]]] = {}
        self._bytes: dict[str, int] = {}
        self._label_map: list[str] | None = None
        self.map_origin = ""

    @classmethod
    def detect(cls, probe: FolderProbe) -> bool:
        return bool(_shards(probe.folder))

    def splits(self) -> tuple[str, ...]:
        return tuple(split for split in ("train", "val") if split in self.shards)

    def missing(self) -> list[str]:
        need = {"train": "data/train-*.parquet", "val": "data/validation-*.parquet"}
        return [f"{need[s]} ({s})" for s in ("train", "val") if s not in self.shards]

    def rows(self, split: str) -> list[tuple[Path, list[tuple[str, int, int, int, int]]]]:
        if split not in self._rows:
            if split not in self.shards:
                raise InputError(
                    f"{self.folder} holds no {split} Parquet shards: build the splits it has with --splits."
                )
            paths = self.shards[split]
            with ThreadPoolExecutor(max_workers=min(4, len(paths))) as pool:
                listed = list(pool.map(lambda p: list_shard(str(p)), paths))
            self._rows[split] = [(p, rows) for p, (rows, _n) in zip(paths, listed, strict=True)]
            self._bytes[split] = sum(n for _r, n in listed)
        return self._rows[split]

    def _files(self, split: str) -> tuple[dict[str, list[SourceFile]], list[tuple[str, str]]]:
        rows = self.rows(split)
        label_wnids = self.label_map(rows[0][0] if rows else None)
        position = {wnid: i for i, wnid in enumerate(label_wnids)}
        by_class: dict[str, list[SourceFile]] = {}
        refused: list[tuple[str, str]] = []
        for path, shard_rows in rows:
            for name, label, group, row, alone in shard_rows:
                # A refused name may hold CR, LF or NUL, which build.json and the summary must not carry raw.
                shown = name if name.isprintable() else repr(name[:80])
                where = f"{split}/{path.name}/{shown}" if name else f"{split}/{path.name}/row {row}"
                base = os.path.basename(
                    name
                )  # re-uploads may store a local path: the base name names the image
                parsed = parse_suffixed(base)
                problem = name_problem(base, flat=True) if base else "no image path"
                if problem is not None:
                    refused.append((where, problem))
                    continue
                if isinstance(parsed, str):  # no _<wnid> suffix: the label names the class
                    by_label = label_wnids[label] if 0 <= label < len(label_wnids) else None
                    key = os.path.splitext(base)[0]
                    named = _KEY_WNID_RE.match(key)
                    if problem is None and by_label is None:
                        problem = f"its label {label} is outside the label map ({self.map_origin})"
                    if problem is None and named and named.group(1) != by_label:
                        problem = (
                            f"its label {label} is {by_label}, not the class {named.group(1)} its name says"
                        )
                    if problem is not None:
                        refused.append((where, problem))
                        continue
                    wnid = by_label or ""
                else:
                    wnid, key = parsed
                    if position.get(wnid) != label:
                        refused.append((where, f"its label {label} is not the class {wnid} its name says"))
                        continue
                # A row alone in its row group: its size is known before reading, and the plan checks the cap.
                location = ByteLocation(
                    str(path), row, group, PARQUET, raw_size=alone if alone >= 0 else None
                )
                by_class.setdefault(wnid, []).append(SourceFile(name, key, location))
        return by_class, refused

    def label_map(self, shard: Path | None) -> list[str]:
        """The wnid of each label (see the module docstring for the order; ``map_origin`` says which)."""
        if self._label_map is not None:
            return self._label_map
        sorted_1k = [c.wnid for c in sorted(classes.all_classes(), key=lambda c: c.wnid)]
        found: list[str] | None = None
        unmapped = 0
        for folder in (self.folder, self.folder.parent):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                lines = (folder / LABELS_FILE).read_text(encoding="utf-8").split()
                if lines and all(WNID_RE.match(line) for line in lines):
                    found, self.map_origin = lines, f"{LABELS_FILE} beside the shards"
                    break
        if found is None:
            for origin, names in (
                ("the shards' ClassLabel names", _schema_names(shard)),
                ("the dataset card's ClassLabel names", _card_names(self.folder)),
            ):
                wnids = _names_to_wnids(names) if names else None
                if wnids is not None:
                    found, self.map_origin = wnids, origin
                    break
                unmapped = max(unmapped, len(names or ()))
        if found is None and unmapped not in (0, len(sorted_1k)):
            raise InputError(
                f"{self.folder}: the shards' {unmapped} class names are not all ImageNet-1K names or wnids, so "
                f"the class of each label is unknown: put a {LABELS_FILE} beside data/ (line i = the wnid of "
                "label i)."
            )
        if found is None:
            found, self.map_origin = sorted_1k, "the ImageNet-1K sorted-wnid order"
        self._label_map = found
        return found

    def classes(self, split: str) -> tuple[str, ...]:
        return tuple(sorted(self._files(split)[0]))

    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        by_class, refused = self._files(split)
        files = {wnid: tuple(by_class.get(wnid, ())) for wnid in wnids}
        return SplitIndex(split, files, tuple(refused), (), self._bytes.pop(split, 0))

    def member_label(self, split: str, wnid: str, name: str) -> str:
        return f"{split}/{name}"

    def group(self, split: str, samples: Sequence[Sample]) -> list[tuple[str, Sequence[Sample]]]:
        by_file: dict[str, list[Sample]] = {}
        for sample in samples:
            by_file.setdefault(sample.location.locator, []).append(sample)
        return [
            (f"{split}-{Path(locator).stem}", tuple(sorted(chosen, key=lambda s: s.location.offset)))
            for locator, chosen in sorted(by_file.items())
        ]

    def records(self) -> list[SourceRecord]:
        return [SourceRecord(path, split) for split in self.splits() for path in self.shards[split]]

    @classmethod
    def open_unit(cls, unit: WorkUnit) -> ParquetReader:
        return ParquetReader(unit)


class ParquetReader:
    """Reads a unit's rows, one row group at a time (only the groups it needs; ``image.bytes`` only)."""

    def __init__(self, unit: WorkUnit) -> None:
        self.unit = unit
        self.bytes_read = 0
        self._files: dict[str, Any] = {}

    def _group(self, locator: str, group: int) -> tuple[int, Iterator[bytes | None | MemberError]]:
        """The row group's first row number and its image bytes, row by row. A group whose image bytes
        (uncompressed, from the file's metadata) exceed the member-size cap is never read: each of its rows
        is a MemberError (pyarrow decodes a whole page, and one cell of a hostile file can be a page of GBs)."""
        handle = self._files.get(locator)
        if handle is None:
            try:
                handle = self._files[locator] = _open_shard(locator)
            except MemberError as exc:
                return 0, itertools.repeat(exc)  # every row of this file
        meta = handle.metadata
        first = sum(meta.row_group(g).num_rows for g in range(group))
        info = meta.row_group(group)
        raw = sum(
            info.column(col).total_uncompressed_size
            for col in range(info.num_columns)
            if info.column(col).path_in_schema == "image.bytes"
        )
        cap = self.unit.max_member_size
        if raw > cap:
            refused = MemberError(
                f"{locator}: its row group {group} holds {raw:,} bytes of images, above the member-size cap of "
                f"{cap:,} bytes (--max-member-size); that row group is not read."
            )
            return first, itertools.repeat(refused, info.num_rows)
        for col in range(info.num_columns):
            if info.column(col).path_in_schema == "image.bytes":
                self.bytes_read += info.column(col).total_compressed_size
        table = handle.read_row_group(group, columns=["image.bytes"])
        return first, iter(table.column("image").combine_chunks().field("bytes").to_pylist())

    def __iter__(self) -> Iterator[tuple[Sample, bytes | MemberError]]:
        loaded: tuple[str, int] | None = None
        first, values, at = 0, iter(list[bytes | None | MemberError]()), 0
        cap = self.unit.max_member_size
        for sample in self.unit.samples:
            where = sample.location
            if loaded != (where.locator, where.size) or where.offset < at:
                first, values = self._group(where.locator, where.size)
                loaded, at = (where.locator, where.size), first
            data: bytes | None | MemberError = None
            while at <= where.offset:  # samples come in row order: skip the rows the unit does not need
                data = next(values, None)
                at += 1
            if isinstance(data, MemberError):
                yield sample, data
            elif data is None:
                yield sample, MemberError(f"{where.locator}: row {where.offset} has no image bytes.")
            elif len(data) > cap:
                yield (
                    sample,
                    MemberError(
                        f"{where.locator}: row {where.offset} holds {len(data):,} bytes, above the member-size cap "
                        f"of {cap:,} bytes (--max-member-size)."
                    ),
                )
            else:
                yield sample, data
            data = None

    def close(self) -> None:
        for handle in self._files.values():
            with contextlib.suppress(Exception):  # closing must not mask the unit's outcome
                handle.close(force=True)  # and the file it was given
        self._files.clear()
