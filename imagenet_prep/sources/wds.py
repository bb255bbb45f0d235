"""A folder of WebDataset tar shards as a source: ours (``--output wds``), timm's ``imagenet-1k-wds`` layout, or
plain tars whose samples carry a ``.cls`` and/or ``.json`` member.

What the folder holds (detection: a listing plus the first headers of one tar):

- ours: ``imagenet-train-000000.tar`` ... (``imagenet-val-*``, or ``imagenet-validation-*``), ``.idx`` files,
  ``_info.json`` and the label maps (``labels.txt``: line i = the wnid of label i);
- timm's: ``imagenet1k-train-{0000..1023}.tar``, ``imagenet1k-validation-{0000..0063}.tar``, ``_info.json``
  (``splits`` -> ``filenames``); each sample ``<key>.jpg`` + ``<key>.cls`` (+ ``<key>.json``:
  ``filename``, ``label``, ...);
- plain: any ``*.tar`` whose first samples hold a ``.cls`` or ``.json`` member (``shard-000000.tar``).

Splits: the ``_info.json`` ``splits`` (``train``; ``val`` or ``validation`` -> val) and their ``filenames`` when
it lists them, else the split word in a tar's name (``-train-``, ``_val_``, ``validation``); a folder whose tars
name no split is one train split. Tars that are another layout's archives (``<wnid>.tar`` class tars, the
ILSVRC2012 and ImageNet-21K archives, the evaluation-set tars) are never taken as shards.

A sample is the members sharing a key (webdataset's rule: the basename up to its first dot): one image
(``.jpg``/``.jpeg``/``.png``/``.webp``/...), its ``.cls`` (ASCII decimal) and ``.json``. Its wnid, from the
most explicit fact present: the ``.json``'s ``wnid``; else a wnid in the key or the ``.json``'s ``filename``
(``n01440764_10026``, ``n01440764/x.JPEG``); else the ``.cls`` label through the label map: ``labels.txt``
beside the shards when present (our outputs, subsets included), else the ImageNet-1K sorted-wnid order (what
timm's and the Hub's ImageNet-1K copies use). Two facts that disagree (a ``.cls`` that is not the class its
wnid says, by an explicit ``labels.txt``; a key's wnid against the json's) refuse the sample with a reason.

Index: each shard's headers are scanned (io/tar.py: the name policy, refused members recorded), and the small
``.cls``/``.json`` members read (each at most ``_META_MAX`` bytes); the result is cached per shard by size and
mtime_ns (``wds-shards.index.json`` beside the shards, or in the tool's cache folder). A build then reads each
chosen image with one positioned read after checking its tar header (``LocationReader``), so a class subset
reads only its classes' images. Units follow storage order (shard, then offset): sequential reads.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..errors import InputError
from ..io.bytesource import FileByteSource, open_byte_source
from ..io.tar import MAX_HEADER_CHAIN, name_problem, scan_tar
from ..io.tar_index import read_folder_cache, write_folder_cache
from ..records import ByteLocation, Sample, SourceFile, WorkUnit
from ..taxonomy import classes
from .base import (
    FolderProbe,
    LocationReader,
    Runner,
    SourceBase,
    SourceRecord,
    SplitIndex,
    group_in_storage_order,
)
from .common import IMAGE_EXTENSIONS, WNID_RE

INFO_FILES = ("_info.json", "info.json")
LABELS_FILE = "labels.txt"
CACHE_NAME = "wds-shards"  # <folder>/wds-shards.index.json, or the tool's cache folder
CACHE_FORMAT = 1
_META_MAX = 64 << 10  # a .cls or .json member above this is not metadata: the sample is refused
_PEEK_MEMBERS = 8  # detection reads at most this many headers of one tar
_SPLIT_RE = re.compile(r"(?:^|[-_.])(train|val|validation)(?:[-_.]|$)")
_SPLIT_OF = {"train": "train", "val": "val", "validation": "val"}
# Archives of other layouts, never shards: class tars, the ILSVRC2012 / 21K archives, evaluation sets.
_FOREIGN_RE = re.compile(r"^(n\d{8}|ILSVRC2012_.*|fall11_whole|imagenet-[ar]|imagenetv2-.*)\.tar$")
_KEY_WNID_RE = re.compile(r"(?:^|/)(n\d{8})(?:[_/]|$)")
_IMAGE_EXTS = frozenset(ext[1:] for ext in IMAGE_EXTENSIONS)


def _shard_names(names: frozenset[str] | Sequence[str]) -> list[str]:
    return sorted(
        n for n in names if n.endswith(".tar") and not n.startswith(".") and not _FOREIGN_RE.match(n)
    )


def _peek_keyed(path: Path) -> bool:
    """Whether the first members of the tar at ``path`` include a ``<key>.cls`` or ``<key>.json``."""
    try:
        with open(path, "rb") as handle:
            for _ in range(_PEEK_MEMBERS):
                block = handle.read(512)
                if len(block) < 512 or not block.strip(b"\0"):
                    return False
                name = block[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
                if name.rsplit("/", 1)[-1].partition(".")[2] in ("cls", "json"):
                    return True
                size_field = block[124:136].split(b"\0", 1)[0].strip() or b"0"
                size = int(size_field, 8)
                handle.seek(-(-size // 512) * 512, os.SEEK_CUR)
    except (OSError, ValueError):
        return False
    return False


def _read_info(folder: Path) -> dict[str, Any] | None:
    for name in INFO_FILES:
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((folder / name).read_text(encoding="utf-8"))
            if isinstance(info, dict) and isinstance(info.get("splits"), dict):
                return info
    return None


def find_shards(folder: Path, names: frozenset[str] | None = None) -> dict[str, list[str]]:
    """split -> its shard file names (train, val), by ``_info.json`` or by name (see the module docstring)."""
    if names is None:
        try:
            names = frozenset(os.listdir(folder))
        except OSError:
            return {}
    tars = _shard_names(names)
    if not tars:
        return {}
    out: dict[str, list[str]] = {}
    info = _read_info(folder)
    if info is not None:
        for split_name, split_info in info["splits"].items():
            split = _SPLIT_OF.get(str(split_name))
            files = split_info.get("filenames") if isinstance(split_info, dict) else None
            if split and isinstance(files, list):
                listed = [f for f in files if isinstance(f, str) and f in tars]
                if listed:
                    out.setdefault(split, []).extend(listed)
        if out:
            return out
    for name in tars:
        match = _SPLIT_RE.search(name[: -len(".tar")])
        if match:
            out.setdefault(_SPLIT_OF[match.group(1)], []).append(name)
    if not out:
        out["train"] = tars  # tars that name no split: one train split
    return out


def _label_map(folder: Path) -> tuple[list[str], bool]:
    """The wnid of each .cls label, and whether it is explicit (``labels.txt`` beside the shards) or the
    ImageNet-1K sorted order."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        lines = (folder / LABELS_FILE).read_text(encoding="utf-8").split()
        if lines and all(WNID_RE.match(line) for line in lines):
            return lines, True
    return [c.wnid for c in sorted(classes.all_classes(), key=lambda c: c.wnid)], False


# A shard's index entry: [key, image member name, offset, size, header offset, cls label (-1 none), json wnid,
# json filename] per sample; refusals [name, reason].
Entry = tuple[str, str, int, int, int, int, str, str]


def index_shard(path: str) -> tuple[list[Entry], list[tuple[str, str]], int]:
    """One shard's samples and refusals, and the bytes read (headers and .cls/.json members). Picklable."""
    source = FileByteSource(Path(path))
    try:
        members, refused = scan_tar(
            source, 0, source.size, f"The shard {path}", tolerate_cut_last=False, flat=False
        )
        nbytes = 512 * len(members)
        samples: dict[str, dict[str, Any]] = {}
        order: list[str] = []
        for member in members:
            base = member.name.rsplit("/", 1)[-1]
            stem, _, ext = base.partition(".")
            folder = member.name[: -len(base)]
            key = folder + stem
            if key not in samples:
                samples[key] = {}
                order.append(key)
            sample = samples[key]
            ext = ext.lower()
            if ext in ("cls", "json"):
                if member.size > _META_MAX:
                    sample["bad"] = (
                        f".{ext} member of {member.size:,} bytes (metadata is at most {_META_MAX:,})"
                    )
                    continue
                data = source.read_at(member.offset, member.size)
                nbytes += len(data)
                sample[ext] = data
            elif ext in _IMAGE_EXTS:
                if "image" in sample:
                    sample["bad"] = f"two image members ({sample['image'].name}, {member.name})"
                sample["image"] = member
        entries: list[Entry] = []
        for key in order:
            sample = samples[key]
            image = sample.get("image")
            if "bad" in sample or image is None:
                refused.append((key, sample.get("bad", "no image member (.jpg/.png/.webp/...)")))
                continue
            label = -1
            if "cls" in sample:
                text = sample["cls"].decode("ascii", "replace").strip()
                if not text.isdigit():
                    refused.append((image.name, f".cls holds {text[:20]!r}, not a label number"))
                    continue
                label = int(text)
            wnid = filename = ""
            if "json" in sample:
                try:
                    meta = json.loads(sample["json"])
                except ValueError:
                    refused.append((image.name, ".json is not JSON"))
                    continue
                if isinstance(meta, dict):
                    wnid = str(meta.get("wnid") or "")
                    filename = str(meta.get("filename") or "")
            header = image.header_offset if image.header_offset is not None else -1
            entries.append(
                (key.rsplit("/", 1)[-1], image.name, image.offset, image.size, header, label, wnid, filename)
            )
        return entries, refused, nbytes
    finally:
        source.close()


def _entry_ok(row: object, size: int) -> bool:
    return (
        isinstance(row, list)
        and len(row) == 8
        and all(isinstance(x, str) for x in (row[0], row[1], row[6], row[7]))
        and all(type(x) is int for x in row[2:6])
        and row[2] >= 0
        and row[3] >= 0
        and row[2] + row[3] <= size
        and -1 <= row[4] < row[2]
        and row[5] >= -1
    )


class WdsSource(SourceBase):
    """A folder of WebDataset shards (see the module docstring)."""

    layout: ClassVar[str] = "wds"
    needs: ClassVar[str] = (
        "WebDataset shards: *-train-*.tar / *-val[idation]-*.tar (or _info.json naming them) whose samples "
        "hold <key>.cls or <key>.json"
    )

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        super().__init__(folder, cache_dir)
        self.shards = find_shards(self.folder)
        self._files: dict[str, tuple[dict[str, list[SourceFile]], list[tuple[str, str]]]] = {}
        self._bytes: dict[str, int] = {}

    @classmethod
    def detect(cls, probe: FolderProbe) -> bool:
        shards = find_shards(probe.folder, probe.names)
        if not shards:
            return False
        if _read_info(probe.folder) is not None:
            return True
        first = next(iter(shards.values()))[0]
        return _peek_keyed(probe.folder / first)

    def splits(self) -> tuple[str, ...]:
        return tuple(split for split in ("train", "val") if split in self.shards)

    def missing(self) -> list[str]:
        return [f"{split} shards (*-{split}-*.tar)" for split in ("train", "val") if split not in self.shards]

    # ---------------------------------------------------------------------------------------- the index
    def _cache(self) -> dict[str, Any]:
        return read_folder_cache(self.folder / CACHE_NAME, self.cache_dir, CACHE_FORMAT, "shards")

    def _save(self, entries: dict[str, Any]) -> None:
        write_folder_cache(self.folder / CACHE_NAME, self.cache_dir, CACHE_FORMAT, "shards", entries)

    def _index_split(self, split: str, runner: Runner | None) -> list[tuple[str, list[Entry], list[list]]]:
        """(shard name, its samples, its refusals) for every shard of ``split``: cached ones from the cache,
        the others scanned (through ``runner`` when there are several) and the cache rewritten."""
        if split not in self.shards:
            raise InputError(f"{self.folder} holds no {split} shards: build the splits it has with --splits.")
        cache = self._cache()
        stamps: dict[str, list[int]] = {}
        todo: list[str] = []
        for name in self.shards[split]:
            try:
                st = os.stat(self.folder / name)
            except OSError as exc:
                raise InputError(f"Cannot read the shard {self.folder / name}: {exc.strerror}.") from None
            stamps[name] = [st.st_size, st.st_mtime_ns]
            cached = cache.get(name)
            if not (
                isinstance(cached, dict)
                and cached.get("stamp") == stamps[name]
                and isinstance(cached.get("samples"), list)
                and all(_entry_ok(row, st.st_size) for row in cached["samples"])
                and isinstance(cached.get("refused"), list)
                and all(
                    isinstance(r, list) and len(r) == 2 and all(isinstance(x, str) for x in r)
                    for r in cached["refused"]
                )
            ):
                todo.append(name)
        arguments = [(str(self.folder / name),) for name in todo]
        if runner is not None and len(arguments) > 1:
            done = runner(index_shard, arguments)
        else:
            done = [index_shard(*argument) for argument in arguments]
        nbytes = 0
        for name, (entries, refused, read) in zip(todo, done, strict=True):
            cache[name] = {
                "stamp": stamps[name],
                "samples": [list(e) for e in entries],
                "refused": [list(r) for r in refused],
            }
            nbytes += read
        if todo:
            self._save({name: entry for name, entry in cache.items() if (self.folder / name).is_file()})
        self._bytes[split] = self._bytes.get(split, 0) + nbytes
        return [
            (name, [tuple(row) for row in cache[name]["samples"]], cache[name]["refused"])
            for name in self.shards[split]
        ]

    def _by_class(
        self, split: str, runner: Runner | None = None
    ) -> tuple[dict[str, list[SourceFile]], list[tuple[str, str]]]:
        """wnid -> its files (storage order), and the refusals, for ``split`` (see the module docstring)."""
        if split in self._files:
            return self._files[split]
        label_wnids, explicit = _label_map(self.folder)
        by_class: dict[str, list[SourceFile]] = {}
        refused: list[tuple[str, str]] = []
        for shard, entries, shard_refused in self._index_split(split, runner):
            refused.extend((f"{split}/{shard}/{name}", reason) for name, reason in shard_refused)
            locator = str(self.folder / shard)
            for key, member, offset, size, header, label, json_wnid, filename in entries:
                where = f"{split}/{shard}/{member}"
                wnid, problem = _wnid_of(key, label, json_wnid, filename, label_wnids, explicit)
                if problem is not None:
                    refused.append((where, problem))
                    continue
                # The original name the .json recorded (ours, timm's) names the sample in messages, in the
                # .json of a re-shard and for the decoder's hint; else the member's own name.
                base = filename.rsplit("/", 1)[-1]
                name = base if base and name_problem(base, flat=True) is None else member.rsplit("/", 1)[-1]
                location = ByteLocation(locator, offset, size, None, header if header >= 0 else None)
                by_class.setdefault(wnid, []).append(SourceFile(name, key, location))
        self._files[split] = (by_class, refused)
        return self._files[split]

    def classes(self, split: str) -> tuple[str, ...]:
        return tuple(sorted(self._by_class(split)[0]))

    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        by_class, refused = self._by_class(split, runner)
        files = {wnid: tuple(by_class.get(wnid, ())) for wnid in wnids}
        return SplitIndex(split, files, tuple(refused), (), self._bytes.pop(split, 0))

    def group(self, split: str, samples: Sequence[Sample]) -> list[tuple[str, Sequence[Sample]]]:
        # Storage order (shard, offset): a shard is read front to back, whatever classes its samples hold.
        return group_in_storage_order(split, samples)

    def member_label(self, split: str, wnid: str, name: str) -> str:
        return f"{split}/{name}"

    @classmethod
    def open_unit(cls, unit: WorkUnit) -> WdsReader:
        return WdsReader(unit)

    def records(self) -> list[SourceRecord]:
        out = [
            SourceRecord(self.folder / name, split) for split in self.splits() for name in self.shards[split]
        ]
        for extra in (*INFO_FILES, LABELS_FILE):
            if (self.folder / extra).is_file():
                out.append(SourceRecord(self.folder / extra, "labels"))
        return out


def _wnid_of(
    key: str, label: int, json_wnid: str, filename: str, label_wnids: Sequence[str], explicit: bool
) -> tuple[str, str | None]:
    """(wnid, None) for a sample, or ("", why it is refused): see the module docstring for the order."""
    named = {w for w in (json_wnid,) if WNID_RE.match(w)}
    for text in (key, filename):
        match = _KEY_WNID_RE.search(text)
        if match:
            named.add(match.group(1))
    if json_wnid and not WNID_RE.match(json_wnid):
        return "", f"its .json wnid {json_wnid[:20]!r} is not a wnid"
    if len(named) > 1:
        return "", f"its key, filename and .json name different classes ({', '.join(sorted(named))})"
    by_label = label_wnids[label] if 0 <= label < len(label_wnids) else None
    if named:
        wnid = named.pop()
        if label >= 0 and explicit and by_label != wnid:
            return "", f"its .cls label {label} is not the class {wnid} (labels.txt line {label + 1})"
        return wnid, None
    if label < 0:
        return "", "no .cls label and no wnid in its key or .json"
    if by_label is None:
        where = "labels.txt" if explicit else "the ImageNet-1K sorted order (no labels.txt beside the shards)"
        return "", f"its .cls label {label} is outside {where}"
    return by_label, None


class WdsReader(LocationReader):
    """``LocationReader`` whose tar-header check names the member by its own name (``<key>.jpg``) while the
    sample keeps the original file name its ``.json`` recorded: the header must name a member of the sample's
    key, then it is checked like any other (name, size, data offset)."""

    def __iter__(self) -> Iterator[tuple[Sample, bytes]]:
        for sample in self.unit.samples:
            yield sample, self.read(sample.location, self._member_name(sample))

    def _member_name(self, sample: Sample) -> str:
        where = sample.location
        if where.header_offset is None or not 512 <= where.offset - where.header_offset <= MAX_HEADER_CHAIN:
            return sample.name
        source = self._files.get(where.locator)
        if source is None:
            source = self._files[where.locator] = open_byte_source(where.locator)
        chain = source.read_at(where.header_offset, where.offset - where.header_offset)
        try:
            with tarfile.open(fileobj=io.BytesIO(chain + bytes(1024)), mode="r:") as tar:
                info = tar.next()
        except tarfile.TarError:
            return sample.name  # the check that follows reports the header
        if info is None:
            return sample.name
        found = info.name.rsplit("/", 1)[-1]
        return found if found.partition(".")[0] == sample.key else sample.name
