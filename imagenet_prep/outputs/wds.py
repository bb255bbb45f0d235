"""The WebDataset output: tar shards that webdataset, timm and DALI stream, written straight from the archives.

Layout of OUT (see formats.md, "WebDataset shards"):

- ``imagenet-<split>-%06d.tar``: each sample is ``<key>.cls`` (the label, ASCII decimal), ``<key>.jpg`` (or
  ``.png``/``.webp``, by the image's format), ``<key>.json`` (``{"label", "wnid", "width", "height",
  "filename"}``, ``filename`` = the image's name in the source); keys are the canonical stems, escaped
  (outputs/keys.py: no dots, spaces or control characters; a stem met twice in a shard gets its class). Members
  are plain ustar entries (no PAX headers) with mtime 0, uid/gid 0, no user/group names and mode 0644, so the
  bytes depend only on the content;
- ``imagenet-<split>-%06d.idx`` beside each shard: the DALI index (v1.2: ``v1.2 <samples>``, then per sample
  ``<ext> <data offset> <size> <member name>`` for each of its files), written from the offsets written;
- ``_info.json``: timm's split info (``name``, ``splits`` -> ``name``, ``num_samples``, ``shard_lengths``,
  ``filenames``), so ``timm.data.create_dataset("wds/imagenet", root=OUT, split="train")`` reads OUT as it is;
- the label maps (outputs/labels.py) and ``<split>.csv`` manifests (``shard,key,label,wnid,width,height``).

Each shard is one work unit (outputs/shards.py plans them: train shuffled with a seeded permutation, val in file
order). A unit streams its shard to a temporary file as images arrive (memory holds one image, never a shard),
then ``commit`` writes the index, fsyncs the shard and moves it into place; the done marker follows.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, ClassVar

from ..io.atomic import write_bytes_atomic, write_text_atomic
from ..io.tar import header_byte_sum
from ..records import ManifestRow, Sample, UnitResult, WorkUnit
from .base import CheckReport, Problems, WriterContext
from .imagefolder_check import NotRegularFile, open_regular
from .shard_writer import ShardUnit, ShardWriter
from .shards import (
    CHECK_READ_LIMIT,
    check_image,
    check_start,
    read_shard_manifest,
    row_problem,
)

if TYPE_CHECKING:
    from ..image import ImageResult

SHARD_PREFIX = "imagenet"
DEFAULT_SHARD_SIZE = "1GB"
INFO_FILE = "_info.json"
IDX_VERSION = "v1.2"
BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 10240: the archive is padded to a whole record, like tar and tarfile do
MEMBER_MODE = 0o644
_EXTENSIONS = {".JPEG": "jpg", ".png": "png", ".webp": "webp"}
_WRITE_BUFFER = 1 << 20


def shard_name(unit_id: str) -> str:
    return f"{SHARD_PREFIX}-{unit_id}.tar"


def member_header(name: str, size: int) -> bytes:
    """A deterministic tar header: ustar (GNU long-name blocks only for a name over 100 bytes). The usual case
    patches the name, size and checksum into a header tarfile made once (the same bytes as tarfile's ``tobuf``,
    ~10x cheaper: a shard writes three headers per image)."""
    encoded = name.encode("utf-8")
    if len(encoded) > 100 or not 0 <= size < _MAX_USTAR_SIZE:
        return _tarfile_header(name, size)
    block = bytearray(_ustar_template())
    block[: len(encoded)] = encoded
    block[124:135] = b"%011o" % size
    block[148:155] = b"%06o\0" % header_byte_sum(
        block
    )  # the checksum field counted as spaces (the template's)
    return bytes(block)


_MAX_USTAR_SIZE = 8**11  # the 12-byte octal size field's limit; larger members take tarfile's path


@cache
def _ustar_template() -> bytes:
    """tarfile's ustar header of an empty name and size 0, its checksum field as spaces (the mode, owner, time,
    magic and device fields exactly as this Python's tarfile writes them)."""
    block = bytearray(_tarfile_header("", 0))
    block[148:156] = b" " * 8
    return bytes(block)


def _tarfile_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = MEMBER_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    if len(name.encode()) <= 100:
        return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "strict")


def sample_json(sample: Sample, image: ImageResult) -> bytes:
    meta = {
        "label": sample.label,
        "wnid": sample.wnid,
        "width": image.width,
        "height": image.height,
        "filename": os.path.basename(sample.name),
    }
    if sample.boxes:  # --boxes: in output pixels (the worker mapped them), rounded exactly as in boxes.csv
        from ..image.boxes import Box, boxes_csv_rows

        rows = boxes_csv_rows(
            [("", sample.label, [Box(*b) for b in sample.boxes], (image.width, image.height))], header=False
        )
        meta["boxes"] = [[row[2], *map(int, row[3:])] for row in rows]
    return json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class WdsUnit(ShardUnit):
    """Streams one shard: members go to a temporary file as they come; the index lines stay in memory."""

    def __init__(self, out: str, unit: WorkUnit) -> None:
        super().__init__(out, shard_name(unit.unit_id))
        self._handle: BinaryIO | None = None  # opened on first write: inside the worker's error handling
        self._offset = 0
        self._index: list[str] = []

    def _file(self) -> BinaryIO:
        if self._handle is None:
            self._handle = open(self.tmp, "wb", buffering=_WRITE_BUFFER)  # noqa: SIM115 - closed in commit/abort
        return self._handle

    def _member(self, name: str, data: bytes) -> int:
        """Write one member; return the offset of its data."""
        handle = self._file()
        header = member_header(name, len(data))
        handle.write(header)
        start = self._offset + len(header)
        handle.write(data)
        pad = -len(data) % BLOCK
        if pad:
            handle.write(b"\0" * pad)
        self._offset = start + len(data) + pad
        return start

    def add(self, sample: Sample, image: ImageResult) -> ManifestRow:
        key = self.keys.key(sample.key, sample.wnid)
        parts = (
            ("cls", str(sample.label).encode("ascii")),
            (_EXTENSIONS[image.extension], image.data),
            ("json", sample_json(sample, image)),
        )
        entries = []
        for ext, data in parts:
            member = f"{key}.{ext}"
            entries.append(f"{ext} {self._member(member, data)} {len(data)} {member}")
        self._index.append(" ".join(entries))
        return ManifestRow(f"{self.shard}/{key}", sample.label, sample.wnid, image.width, image.height)

    def commit(self) -> None:
        handle = self._file()
        end = self._offset + 2 * BLOCK
        tail = 2 * BLOCK + (-end % RECORD)
        handle.write(b"\0" * tail)
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        self._handle = None
        index = (
            f"{IDX_VERSION} {len(self._index)}\n" + "".join(line + "\n" for line in self._index)
        ).encode()
        write_bytes_atomic(self.final[: -len(".tar")] + ".idx", index)
        self._publish({self.shard: self._offset + tail, self.shard[: -len(".tar")] + ".idx": len(index)})

    def _close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()


@dataclass(frozen=True)
class WdsWriter(ShardWriter):
    """WebDataset shards (``"1GB"`` of source bytes per shard by default; the options: ShardWriter)."""

    name: ClassVar[str] = "wds"
    default_shard_size: ClassVar[str] = DEFAULT_SHARD_SIZE
    own_entries: ClassVar[tuple[str, ...]] = (INFO_FILE,)

    @staticmethod
    def unit_id(split: str, index: int, total: int) -> str:
        return f"{split}-{index:06d}"

    def shard_entries(self, out: Path) -> list[Path]:
        return sorted(out.glob(f"{SHARD_PREFIX}-*.tar")) + sorted(out.glob(f"{SHARD_PREFIX}-*.idx"))

    def open_unit(self, out: str, unit: WorkUnit) -> WdsUnit:
        return WdsUnit(out, unit)

    def finalize_format(self, out: Path, context: WriterContext, results: Sequence[UnitResult]) -> None:
        """timm's ``_info.json``."""
        splits: dict[str, dict[str, object]] = {}
        for split in context.splits:
            mine = [result for result in results if result.split == split]
            lengths = [len(result.rows) for result in mine]
            splits[split] = {
                "name": split,
                "num_samples": sum(lengths),
                "shard_lengths": lengths,
                "filenames": [shard_name(result.unit_id) for result in mine],
            }
        info = {"name": context.class_set.name, "num_classes": len(context.wnids), "splits": splits}
        write_text_atomic(out / INFO_FILE, json.dumps(info, indent=2) + "\n")

    def check(self, out: Path, decode: bool, progress: Callable[[int], None] | None) -> CheckReport:
        return check_wds(out, decode, progress)


# ------------------------------------------------------------------------------------------------- check
def read_idx(path: Path) -> list[list[tuple[str, int, int, str]]]:
    """A DALI index: per sample, its (ext, data offset, size, member name) entries."""
    lines = path.read_text(encoding="utf-8").splitlines()
    version, count = lines[0].split()
    if version != IDX_VERSION or int(count) != len(lines) - 1:
        raise ValueError(f"header {lines[0]!r} does not match its {len(lines) - 1} lines")
    samples = []
    for line in lines[1:]:
        fields = line.split(" ")
        samples.append(
            [
                (fields[i], int(fields[i + 1]), int(fields[i + 2]), fields[i + 3])
                for i in range(0, len(fields), 4)
            ]
        )
    return samples


def check_wds(out: Path, decode: bool = False, progress: Callable[[int], None] | None = None) -> CheckReport:
    """Every shard in _info.json against the manifests: keys and order, .cls and .json labels, image sizes
    (``decode``: full decodes), the DALI index's offsets and sizes; counts agree; no shard is unlisted."""
    out = Path(out)
    problems = Problems()
    label_of = check_start(out, problems)
    try:
        info = json.loads((out / INFO_FILE).read_text(encoding="utf-8"))
        splits = info["splits"]
    except (OSError, ValueError, KeyError) as exc:
        problems.add(f"{INFO_FILE} is missing or unreadable ({exc})")
        return CheckReport(0, tuple(problems.items), problems.count)
    listed: set[str] = set()
    checked = 0
    for split, split_info in splits.items():
        manifest = out / f"{split}.csv"
        if not manifest.is_file():
            problems.add(f"{split}.csv is missing")
            continue
        by_shard = read_shard_manifest(manifest)
        filenames = list(split_info.get("filenames", []))
        lengths = list(split_info.get("shard_lengths", []))
        if len(filenames) != len(lengths) or sum(lengths) != split_info.get("num_samples"):
            problems.add(f"{INFO_FILE}: split {split} has inconsistent filenames/shard_lengths/num_samples")
        for extra in sorted(set(by_shard) - set(filenames)):
            problems.add(f"{split}.csv lists {extra}, which {INFO_FILE} does not")
        for filename, length in zip(filenames, lengths, strict=False):
            listed.add(filename)
            rows = by_shard.get(filename, [])
            if len(rows) != length:
                problems.add(f"{filename}: {INFO_FILE} says {length} samples, {split}.csv lists {len(rows)}")
            checked += _check_shard(out / filename, rows, label_of, decode, problems, progress)
    for path in sorted(out.glob(f"{SHARD_PREFIX}-*.tar")):
        if path.name not in listed:
            problems.add(f"{path.name}: not listed in {INFO_FILE}")
    return CheckReport(checked, tuple(problems.items), problems.count)


def _check_shard(
    path: Path,
    rows: list[dict[str, str]],
    label_of: dict[str, int],
    decode: bool,
    problems: Problems,
    progress: Callable[[int], None] | None,
) -> int:
    """One shard, streamed sample by sample (a check holds one sample in memory, never a shard)."""
    name = path.name
    members: list[tuple[str, int, int]] = []  # (member name, data offset, size), in archive order
    keys: list[str] = []
    files: dict[str, bytes] = {}

    def finish() -> None:
        if not keys:
            return
        position = len(keys) - 1
        if position < len(rows):
            _check_sample(name, keys[-1], files, rows[position], label_of, decode, problems)
        if progress is not None:
            progress(1)

    try:
        with open_regular(path) as handle, tarfile.open(fileobj=handle) as archive:
            for member in archive:
                if not member.isfile():
                    problems.add(f"{name}: {member.name} is not a regular file")
                    continue
                if member.pax_headers:
                    problems.add(f"{name}: {member.name} has a PAX header")
                key, _, ext = member.name.partition(".")
                if not keys or keys[-1] != key:
                    finish()
                    keys.append(key)
                    files = {}
                if member.size > CHECK_READ_LIMIT:
                    problems.add(
                        f"{name}: {member.name} is {member.size} bytes (more than any image we write)"
                    )
                    files[ext] = b""
                else:
                    data = archive.extractfile(member)
                    files[ext] = data.read(CHECK_READ_LIMIT) if data is not None else b""
                members.append((member.name, member.offset_data, member.size))
            finish()
    except NotRegularFile:
        problems.add(f"{name}: not a regular file (a link, FIFO or device where a shard should be)")
        return 0
    except (OSError, tarfile.TarError) as exc:
        problems.add(f"{name}: cannot be read as a tar ({exc})")
        return 0
    if [row["key"] for row in rows] != keys:
        problems.add(f"{name}: its sample keys differ from the manifest's")
    idx = path.with_suffix(".idx")
    try:
        indexed = [entry for sample in read_idx(idx) for entry in sample]
        if [(entry[3], entry[1], entry[2]) for entry in indexed] != members:
            problems.add(f"{idx.name}: offsets or sizes differ from {name}'s members")
    except (OSError, ValueError, IndexError) as exc:
        problems.add(f"{idx.name}: missing or unreadable ({exc})")
    return len(keys)


def _check_sample(
    shard: str,
    key: str,
    files: dict[str, bytes],
    row: dict[str, str],
    label_of: dict[str, int],
    decode: bool,
    problems: Problems,
) -> None:
    where = f"{shard}/{key}"
    if row["key"] != key:
        return  # reported once for the shard
    bad = row_problem(row, where)
    if bad:
        problems.add(bad)
        return
    label = int(row["label"])
    if label_of.get(row["wnid"]) != label:
        problems.add(f"{where}: label {label} does not match labels.txt for {row['wnid']}")
    if files.get("cls", b"").decode("ascii", "replace") != str(label):
        problems.add(f"{where}: .cls {files.get('cls')!r} but the manifest says {label}")
    try:
        meta = json.loads(files.get("json", b""))
        if meta.get("label") != label or meta.get("wnid") != row["wnid"]:
            problems.add(f"{where}: .json label/wnid differ from the manifest")
    except ValueError:
        problems.add(f"{where}: .json missing or not JSON")
    images = [ext for ext in files if ext in ("jpg", "png", "webp")]
    if len(images) != 1:
        problems.add(f"{where}: {len(images)} image members (expected one of .jpg/.png/.webp)")
    else:
        check_image(files[images[0]], row, where, decode, problems)
