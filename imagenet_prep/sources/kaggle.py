"""The Kaggle "ImageNet Object Localization Challenge" download, unzipped (layout ``kaggle``) or as the zip
itself, read in place (layout ``kaggle-zip``).

Tree: ``ILSVRC/Data/CLS-LOC/train/<wnid>/<wnid>_<n>.JPEG`` and a FLAT ``ILSVRC/Data/CLS-LOC/val/`` of
``ILSVRC2012_val_%08d.JPEG``, with ``LOC_val_solution.csv`` (val labels: the first token of PredictionString;
rows unsorted) and ``LOC_synset_mapping.txt`` beside ``ILSVRC/`` (checked against the bundled classes: another
wnid order is an error naming the first differing line; other descriptions are a warning). Without the CSV,
val is labelled by the bundled labels only when it holds exactly the real 50,000 names. ``test/`` is ignored.

The zip (``imagenet-object-localization-challenge.zip``) is never extracted. Either it holds the tree itself:
planning reads no local header (a member's location is its local header's offset, from the cached central
directory); a worker reads and checks each member's local header (name, method, sizes, CRC-32: a damaged one is a
recorded skip), then its data with one positioned read (a deflated member is inflated, never past its declared
size: a zip bomb is refused). Or (the older download) it holds
``imagenet_object_localization_patched2019.tar.gz``: that gzip stream cannot seek, so it is listed once
(cached) and each split is read in one streamed unit (sources/streamed.py).

Member names are untrusted: absolute or ``..`` names, links, encrypted members, unknown compression methods
and members whose declared size is absurd are refused with a reason (io/tar.py's name policy).
"""

from __future__ import annotations

import dataclasses
import os
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from ..columns import PackedFiles
from ..errors import ArchiveError, InputError, MemberError
from ..io.bytesource import open_byte_source
from ..records import (
    ZIP_DEFLATED_AT_HEADER,
    ZIP_STORED_AT_HEADER,
    ByteLocation,
    Sample,
    SourceFile,
    WorkUnit,
)
from ..taxonomy import classes
from . import zip_index
from .base import (
    FolderProbe,
    LocationReader,
    Runner,
    SourceBase,
    SourceRecord,
    SplitIndex,
    group_by_class,
    group_in_storage_order,
)
from .common import (
    MAX_TEXT,
    SYNSET_MAPPING,
    VAL_SOLUTION,
    WNID_RE,
    FileReader,
    bundled_val_labels,
    check_synset_mapping,
    decode_label_text,
    folder_files,
    list_image_files,
    parse_val_solution,
    read_label_file,
    val_key,
    wnid_dirs,
)
from .ilsvrc import _stems_joined
from .streamed import (
    STREAM,
    ZIP_SEP,
    StreamListing,
    StreamReader,
    group_by_stream,
    list_streams,
    stream_index,
)
from .zip_index import DamagedCache, ZipDirectory, ZipEntry, ZipListing, ZipMembers

ZIP_NAME = "imagenet-object-localization-challenge.zip"
NESTED_TAR = "imagenet_object_localization_patched2019.tar.gz"
CLS_LOC = "ILSVRC/Data/CLS-LOC/"
_TEXT_NAMES = frozenset({VAL_SOLUTION, SYNSET_MAPPING, NESTED_TAR})


class _KaggleLabels(SourceBase):
    """Val labelling and the synset-mapping check, shared by the folder and the zip."""

    def _read_text(self, name: str) -> str | None:
        raise NotImplementedError

    def _val_labels(self, keys: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        warnings: list[str] = []
        mapping = self._read_text(SYNSET_MAPPING)
        if mapping is not None:
            warnings.extend(check_synset_mapping(mapping, SYNSET_MAPPING))
        text = self._read_text(VAL_SOLUTION)
        if text is not None:
            return parse_val_solution(text, VAL_SOLUTION), warnings
        bundled = bundled_val_labels(keys)
        if bundled is None:
            raise InputError(
                f"{VAL_SOLUTION} is missing from {self.folder} and its val folder does not hold the real 50,000 "
                f"ILSVRC2012_val_* names, so the validation images cannot be labelled: put {VAL_SOLUTION} from "
                "the Kaggle download beside ILSVRC/, or build only train with --splits train."
            )
        return bundled, warnings


def _val_by_class(
    files: Sequence[tuple[str, ByteLocation]], labels: dict[str, str]
) -> tuple[dict[str, list[SourceFile]], list[tuple[str, str]]]:
    by_class: dict[str, list[SourceFile]] = {}
    refused: list[tuple[str, str]] = []
    known = {c.wnid for c in classes.all_classes()}  # the label space: another wnid is refused, not dropped
    for name, location in files:
        key = val_key(name)
        if key is None:
            refused.append((f"val/{name}", "not an ILSVRC2012_val_<8 digits> file name"))
        elif key not in labels:
            refused.append((f"val/{name}", f"no label in {VAL_SOLUTION}"))
        elif labels[key] not in known:
            refused.append(
                (f"val/{name}", f"labelled {labels[key]} in {VAL_SOLUTION}, not an ImageNet-1K class")
            )
        else:
            by_class.setdefault(labels[key], []).append(SourceFile(os.path.basename(name), key, location))
    return by_class, refused


# ------------------------------------------------------------------------------------------------ folder
class KaggleFolderSource(_KaggleLabels):
    """The unzipped Kaggle download: ``ILSVRC/Data/CLS-LOC/{train,val}`` plus the LOC_* files."""

    layout: ClassVar[str] = "kaggle"
    needs: ClassVar[str] = (
        f"the unzipped Kaggle tree {CLS_LOC}{{train,val}} (with {VAL_SOLUTION} beside ILSVRC/)"
    )

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        super().__init__(folder, cache_dir)
        self.root = self.folder / CLS_LOC
        self._val: dict[str, list[SourceFile]] | None = None
        self._val_refused: list[tuple[str, str]] = []
        self._val_warnings: list[str] = []

    @classmethod
    def detect(cls, probe: FolderProbe) -> bool:
        return probe.has("ILSVRC") and (probe.folder / CLS_LOC).is_dir()

    def _read_text(self, name: str) -> str | None:
        return read_label_file(self.folder / name, self.folder)

    def splits(self) -> tuple[str, ...]:
        return tuple(split for split in ("train", "val") if (self.root / split).is_dir())

    def missing(self) -> list[str]:
        out = [f"{CLS_LOC}{split}/ ({split})" for split in ("train", "val") if split not in self.splits()]
        for name, what in ((VAL_SOLUTION, "val labels"), (SYNSET_MAPPING, "class check")):
            if not (self.folder / name).is_file():
                out.append(f"{name} ({what})")
        return out

    def _dir(self, split: str) -> Path:
        if split not in self.splits():
            raise InputError(
                f"{self.folder} has no {CLS_LOC}{split}/ folder: build the splits it has with --splits."
            )
        return self.root / split

    def _val_files(self) -> dict[str, list[SourceFile]]:
        if self._val is None:
            val_dir = self._dir("val")
            listing, refusals, _ignored, links = list_image_files(str(val_dir), str(self.folder))
            located = [
                (name, ByteLocation(links.get(name) or str(val_dir / name), 0, size))
                for name, size in listing
            ]
            labels, self._val_warnings = self._val_labels([val_key(n) or n for n, _ in listing])
            self._val, refused = _val_by_class(located, labels)
            self._val_refused = [(f"val/{n}", r) for n, r in refusals] + refused
        return self._val

    def classes(self, split: str) -> tuple[str, ...]:
        if split == "train":
            return tuple(wnid_dirs(self._dir("train")))
        return tuple(sorted(self._val_files()))

    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        if split == "val":
            by_class = self._val_files()
            chosen = {wnid: tuple(by_class.get(wnid, ())) for wnid in wnids}
            return SplitIndex("val", chosen, tuple(self._val_refused), tuple(self._val_warnings))
        root = self._dir("train")
        args = [(str(root / wnid), str(self.folder)) for wnid in wnids]
        listings = (
            runner(list_image_files, args)
            if runner and len(args) > 1
            else [list_image_files(*a) for a in args]
        )
        files: dict[str, tuple[SourceFile, ...]] = {}
        refused: list[tuple[str, str]] = []
        for wnid, (listing, refusals, _ignored, links) in zip(wnids, listings, strict=True):
            files[wnid] = folder_files(root / wnid, listing, links)
            refused.extend((f"train/{wnid}/{name}", reason) for name, reason in refusals)
        return SplitIndex("train", files, tuple(refused))

    def member_label(self, split: str, wnid: str, name: str) -> str:
        return f"train/{wnid}/{name}" if split == "train" else f"val/{name}"

    def records(self) -> list[SourceRecord]:
        out = [SourceRecord(self.root / split, split) for split in self.splits()]
        out += [SourceRecord(self.folder / n, "labels") for n in (VAL_SOLUTION, SYNSET_MAPPING)]
        return [r for r in out if r.path.exists()]

    @classmethod
    def open_unit(cls, unit: WorkUnit) -> LocationReader:
        return FileReader(unit)


# --------------------------------------------------------------------------------------------------- zip
def _in_cls_loc(name: str) -> list[str]:
    """The parts of a member name after ``ILSVRC/Data/CLS-LOC/`` (``['train', wnid, file]``)."""
    return name[name.find(CLS_LOC) + len(CLS_LOC) :].split("/")


def _classify(name: str) -> tuple[str, str] | None:
    """Where a member of the zip goes (zip_index.Classify): a train image of a class (its wnid; "" when not
    ``train/<wnid>/<file>``), a val image, a label file, or None (annotations, test images: never read)."""
    at = name.find(CLS_LOC)
    if at >= 0:
        rest = name[at + len(CLS_LOC) :]
        split = rest.split("/", 1)[0]
        if split == "val":
            return "val", ""
        if split == "train":
            parts = rest.split("/")
            return "train", parts[1] if len(parts) == 3 and WNID_RE.match(parts[1]) else ""
    base = name.rsplit("/", 1)[-1]
    return ("text", base) if base in _TEXT_NAMES else None


_LOCAL = struct.Struct("<4s5H3L2H")  # local file header (30 bytes)
_DATA_DESCRIPTOR = 0x8


def zip_location(path: str, row: tuple[str, int, int, int, int, int]) -> ByteLocation:
    """Where a member (``ZipEntry.row()``: name, header offset, compressed size, size, method, CRC-32) is, with
    no read: the CRC-32 and the declared size travel with the location and are checked on every read."""
    _name, header_offset, compress_size, file_size, method, crc = row
    compression = ZIP_DEFLATED_AT_HEADER if method == zipfile.ZIP_DEFLATED else ZIP_STORED_AT_HEADER
    return ByteLocation(path, header_offset, compress_size, compression, raw_size=file_size, crc32=crc)


def local_header_problem(head: bytes, location: ByteLocation, name: str) -> str | None:
    """Why the local header ``head`` (30 bytes + its name) does not describe the member at ``location`` called
    ``name`` (its full name, or its base name after a "/"), or None."""
    if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
        return "no local header where the central directory puts it"
    _sig, _version, flags, method, _time, _date, crc, compressed, size, name_len, _extra = _LOCAL.unpack_from(
        head
    )
    stored = head[_LOCAL.size : _LOCAL.size + name_len]
    try:
        text = stored.decode("utf-8" if flags & 0x800 else "cp437")
    except UnicodeDecodeError:
        text = ""
    if len(stored) != name_len or not (text == name or text.endswith("/" + name)):
        return "its local header names another member"
    expected = zipfile.ZIP_DEFLATED if location.compression == ZIP_DEFLATED_AT_HEADER else zipfile.ZIP_STORED
    if method != expected:
        return "its local header gives another compression method"
    if not flags & _DATA_DESCRIPTOR:  # else the sizes and CRC-32 follow the data (0 here)
        if crc != location.crc32:
            return "its local header gives another CRC-32"
        if compressed != 0xFFFFFFFF and compressed != location.size:
            return "its local header gives another compressed size"
        if size != 0xFFFFFFFF and size != location.raw_size:
            return "its local header gives another size"
    return None


def _packed(path: str, members: ZipMembers) -> Sequence[SourceFile]:
    """A train class's members as PackedFiles (columns; keys: the stems of their base names), each located at
    its local header (no read); a name per file only when they do not share one extension."""
    if not len(members):
        return ()
    zip_columns = (members.methods, members.sizes, members.crcs)
    text = members.names_blob.decode("utf-8")
    folder = text[: text.partition("\n")[0].rfind("/") + 1]
    if folder and text.count("\n" + folder) == len(members) - 1:  # one folder: its base names, joined
        keys = _stems_joined(text.replace("\n" + folder, "\n")[len(folder) :], len(members))
        if keys is not None:  # every base name is its key + one extension: keys only
            first = text.partition("\n")[0]
            suffix = first[first.rfind(".") :]
            return PackedFiles.with_suffix(
                path, keys, suffix, members.offsets, members.compressed, zip_columns=zip_columns
            )
    bases = [name.rsplit("/", 1)[-1] for name in members.names()]
    stems = [os.path.splitext(base)[0] for base in bases]
    suffix = bases[0][len(stems[0]) :]
    same = all(len(base) - len(stem) == len(suffix) for base, stem in zip(bases, stems, strict=True))
    same = same and all(base.endswith(suffix) for base in bases)
    return PackedFiles(
        path,
        None if same else bases,
        stems,
        members.offsets,
        members.compressed,
        name_suffix=suffix if same else None,
        zip_columns=zip_columns,
    )


class ZipMemberReader(LocationReader):
    """The zip's unit reader: a member located at its local header (``zip_location``) is read after that header
    was checked against the central directory (signature, name, method, sizes, CRC-32); a damaged header is a
    recorded skip for that member (MemberError), never a traceback."""

    def read(self, location: ByteLocation, name: str | None = None) -> bytes:
        if location.compression not in (ZIP_STORED_AT_HEADER, ZIP_DEFLATED_AT_HEADER):
            return super().read(location, name)
        source = self._files.get(location.locator)
        if source is None:
            source = self._files[location.locator] = open_byte_source(location.locator)
        at = location.offset
        head = source.read_at(at, _LOCAL.size)
        name_len = int.from_bytes(head[26:28], "little") if len(head) == _LOCAL.size else 0
        if name_len:
            head += source.read_at(at + _LOCAL.size, name_len)
        self.bytes_read += len(head)
        problem = local_header_problem(head, location, name or "")
        if problem is None:
            start = at + _LOCAL.size + name_len + int.from_bytes(head[28:30], "little")
            if start + location.size > source.size:
                problem = "truncated: the zip ends before its data"
        if problem is not None:
            raise MemberError(
                f"{location.locator}: the member {name} at offset {at} is not read ({problem}): the zip is "
                "damaged; re-download it."
            )
        compression = "deflate" if location.compression == ZIP_DEFLATED_AT_HEADER else None
        return super().read(dataclasses.replace(location, offset=start, compression=compression), name)


class KaggleZipSource(_KaggleLabels):
    """``imagenet-object-localization-challenge.zip`` read in place (the tree inside, or the 2019 tar.gz)."""

    layout: ClassVar[str] = "kaggle-zip"
    needs: ClassVar[str] = f"{ZIP_NAME} (the Kaggle download, not unzipped)"

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        super().__init__(folder, cache_dir)
        self.path = self.folder / ZIP_NAME
        self._listing: ZipListing | None = None
        self._directory: ZipDirectory | None = None
        self._val: dict[str, list[SourceFile]] | None = None
        self._val_refused: list[tuple[str, str]] = []
        self._val_warnings: list[str] = []
        self._nested: StreamListing | None = None
        self._nested_bytes = 0
        self._nested_label_map: dict[str, str] | None = None
        self._splits: tuple[str, ...] | None = None
        self._index_bytes: int | None = None  # central directory bytes, reported once

    @classmethod
    def detect(cls, probe: FolderProbe) -> bool:
        return probe.has(ZIP_NAME)

    # --------------------------------------------------------------------------------------- central dir
    def listing(self) -> ZipListing:
        """The central directory, once: the train and val images (``CLS-LOC/{train,val}/``, in groups: one per
        train class) and the label files. Other members (annotations, test images) are never read, so they are
        neither kept nor checked. The checked listing is cached (sources/zip_index.py): a re-run reads the
        cache's header, then the sections of the classes it builds."""
        if self._listing is None:
            if not self.path.is_file():
                raise InputError(f"{ZIP_NAME} is missing from {self.folder}.")
            self._directory = ZipDirectory(self.path, _classify, self.cache_dir)
            listing = self._directory.load()
            if listing is None:
                listing = self._parse()
            self._listing = listing
            if self._index_bytes is None:
                self._index_bytes = listing.index_bytes
        return self._listing

    def _parse(self) -> ZipListing:
        listing = zip_index.read_central_directory(self.path, _classify)
        if self._directory is not None:
            self._directory.save(listing)
        return listing

    def _group(self, split: str, name: str, keep: bool = True) -> ZipMembers:
        try:
            return self.listing().group(split, name, keep)
        except DamagedCache:  # a cached section failed its checks: parse the zip again, rewrite the cache
            self._listing = self._parse()
            return self._listing.group(split, name, keep)

    @property
    def _refused(self) -> list[tuple[str, str, str]]:
        """(split, name, reason) in directory order; label files count under val."""
        return self.listing().refused

    def members(self) -> dict[str, list[ZipEntry]]:
        """Every kept train and val member (a ``ZipEntry`` each: for tests and small zips)."""
        listing = self.listing()
        return {
            split: [entry for name in listing.keys(split) for entry in self._group(split, name)]
            for split in ("train", "val")
        }

    def _text_member(self, name: str) -> ZipEntry | None:
        return self.listing().texts.get(name)

    def _read_text(self, name: str) -> str | None:
        info = self._text_member(name)
        if info is None:
            return None
        if info.file_size > MAX_TEXT:
            raise ArchiveError(
                f"{name} inside {self.path} declares {info.file_size:,} bytes: not a label file."
            )
        # Read by its local header (no second parse of the central directory), inflated within its declared
        # size and checked against its CRC-32, as a worker reads an image.
        reader = ZipMemberReader(WorkUnit("val", "labels", self.layout, (), MAX_TEXT))
        try:
            data = reader.read(zip_location(str(self.path), info.row()), info.filename)
        except ArchiveError as exc:  # MemberError too: a lying CRC-32, a damaged stream
            raise ArchiveError(
                f"{name} inside {self.path} cannot be read ({exc}); re-download the zip."
            ) from None
        finally:
            reader.close()
        return decode_label_text(data, f"{name} inside {self.path}")

    def nested(self) -> StreamListing | None:
        """The older download's tar.gz inside the zip, listed (once, cached), or None."""
        info = self._text_member(NESTED_TAR)
        if info is None:
            return None
        if self._nested is None:
            self._nested = StreamListing(self.path, info.filename, cache_dir=self.cache_dir)
            self._nested_bytes = list_streams([self._nested])
        return self._nested

    def _nested_parse(self, split: str):
        known = {c.wnid for c in classes.all_classes()}

        def parse(name: str) -> tuple[str, str] | str:
            at = name.find(CLS_LOC)
            rest = name[at + len(CLS_LOC) :].split("/") if at >= 0 else []
            if split == "train" and len(rest) == 3 and rest[0] == "train" and WNID_RE.match(rest[1]):
                return rest[1], os.path.splitext(rest[2])[0]
            if split == "val" and len(rest) == 2 and rest[0] == "val":
                key = val_key(rest[1])
                if key and key in self._nested_labels:
                    wnid = self._nested_labels[key]
                    if wnid not in known:
                        return f"labelled {wnid} in {VAL_SOLUTION}, not an ImageNet-1K class"
                    return wnid, key
                return f"no label in {VAL_SOLUTION}" if key else "not an ILSVRC2012_val_<8 digits> name"
            return "other"

        return parse

    # ------------------------------------------------------------------------------------------- parent
    def splits(self) -> tuple[str, ...]:
        if self._splits is None:
            nested = self.nested()
            if nested is not None:
                heads = {_in_cls_loc(name)[0] for name, _o, _s in nested.members or () if CLS_LOC in name}
            else:
                heads = {split for split in ("train", "val") if self.listing().keys(split)}
            self._splits = tuple(split for split in ("train", "val") if split in heads)
        return self._splits

    def missing(self) -> list[str]:
        out = [
            f"{CLS_LOC}{split}/ inside the zip ({split})"
            for split in ("train", "val")
            if split not in self.splits()
        ]
        for name, what in ((VAL_SOLUTION, "val labels"), (SYNSET_MAPPING, "class check")):
            if self._text_member(name) is None:
                out.append(f"{name} inside the zip ({what})")
        return out

    @property
    def _nested_labels(self) -> dict[str, str]:
        if self._nested_label_map is None:
            nested = self.nested()
            names = [n for n, _o, _s in (nested.members or ()) if f"{CLS_LOC}val/" in n] if nested else []
            keys = [key for key in map(val_key, names) if key]
            self._nested_label_map, self._val_warnings = self._val_labels(keys)
        return self._nested_label_map

    def _val_files(self) -> dict[str, list[SourceFile]]:
        if self._val is None:
            path = str(self.path)
            rows = self._group("val", "").rows()
            labels, self._val_warnings = self._val_labels([val_key(row[0]) or row[0] for row in rows])
            pairs = [("/".join(_in_cls_loc(row[0])[1:]), zip_location(path, row)) for row in rows]
            self._val, self._val_refused = _val_by_class(pairs, labels)
        return self._val

    def classes(self, split: str) -> tuple[str, ...]:
        if split not in self.splits():
            raise InputError(
                f"{self.path} holds no {CLS_LOC}{split}/ images: build the splits it has with --splits."
            )
        if self.nested() is not None:
            return tuple(self._nested_classes(split))
        if split == "val":
            return tuple(sorted(self._val_files()))
        return tuple(sorted(self._train_wnids()))

    def _nested_classes(self, split: str) -> list[str]:
        nested = self.nested()
        parse = self._nested_parse(split)
        out = set()
        for name, _o, _s in (nested.members or ()) if nested else ():
            parsed = parse(name)
            if not isinstance(parsed, str):
                out.add(parsed[0])
        return sorted(out)

    def _train_wnids(self) -> list[str]:
        return [wnid for wnid in self.listing().keys("train") if wnid]

    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        if split not in self.splits():
            self.classes(split)  # raises the missing-split message
        nested = self.nested()
        if nested is not None:
            index = stream_index(split, [nested], self._nested_parse(split), wnids, "Kaggle tar.gz")
            refused = tuple(r for r in index.refused if r[1] != "other")
            nbytes, self._nested_bytes = self._nested_bytes, 0
            warnings = (*index.warnings, *self._val_warnings) if split == "val" else index.warnings
            return SplitIndex(split, index.files, refused, warnings, nbytes)
        outer = tuple((name, reason) for where, name, reason in self._refused if where == split)
        listing_bytes, self._index_bytes = self._index_bytes or 0, 0
        if split == "val":
            by_class = self._val_files()
            chosen = {wnid: tuple(by_class.get(wnid, ())) for wnid in wnids}
            refused = outer + tuple(self._val_refused)
            return SplitIndex("val", chosen, refused, tuple(self._val_warnings), listing_bytes)
        # No local header is read here: each location is the member's local header (from the central
        # directory); the worker reads and checks it when it reads the member (ZipMemberReader).
        path = str(self.path)
        files = {wnid: _packed(path, self._group("train", wnid, keep=False)) for wnid in wnids}
        return SplitIndex("train", files, outer, bytes_read=listing_bytes)

    def member_label(self, split: str, wnid: str, name: str) -> str:
        return f"train/{wnid}/{name}" if split == "train" else f"val/{name}"

    def group(self, split: str, samples: Sequence[Sample]) -> list[tuple[str, Sequence[Sample]]]:
        if samples and samples[0].location.compression == STREAM:
            return [*group_by_stream(split, samples)]
        return group_by_class(split, samples) if split == "train" else group_in_storage_order(split, samples)

    def records(self) -> list[SourceRecord]:
        return [SourceRecord(self.path, "train+val")]

    @classmethod
    def open_unit(cls, unit: WorkUnit) -> LocationReader | StreamReader:
        if unit.samples and ZIP_SEP in unit.samples[0].location.locator:
            return StreamReader(unit)
        return ZipMemberReader(unit)
