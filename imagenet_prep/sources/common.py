"""Helpers the non-official layouts share: folder listings, whole-file reads, and the Kaggle label files.

Names found on disk or in an archive are untrusted: every reader applies io/tar.py's one name policy
(:func:`~imagenet_prep.io.tar.name_problem`). In a folder, hidden files (``.DS_Store``, ``._x.JPEG``) and files
that are not images by their extension are ignored (counted in a warning): a tree users made by hand often
holds them. Symbolic links to regular files inside the source folder are followed (a tree of links is a common
way to make a subset); a link that leads out of the source folder (to ``~/.git-credentials``, say), and anything
that is not a regular file (a FIFO, a device), is refused with a reason and never read.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io.bytesource import FileByteSource, is_remote
from ..io.tar import name_problem
from ..records import ByteLocation, SourceFile, WorkUnit
from ..taxonomy import classes
from .base import LocationReader

WNID_RE = re.compile(r"^n\d{8}$")
VAL_STEM_RE = re.compile(r"^ILSVRC2012_val_(\d{8})$")
#: Extensions read as images in folder layouts (torchvision's ImageFolder list; case-insensitive).
IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"})
SYNSET_MAPPING = "LOC_synset_mapping.txt"
VAL_SOLUTION = "LOC_val_solution.csv"


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def wnid_dirs(folder: Path) -> list[str]:
    """The ``n########`` sub-folders of ``folder``, sorted (empty if it is not a folder)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if WNID_RE.match(e.name) and e.is_dir())
    except OSError:
        return []


def has_wnid_dir(folder: Path) -> bool:
    """Whether ``folder`` holds at least one ``n########`` folder (stops at the first: cheap detection)."""
    try:
        with os.scandir(folder) as entries:
            return any(WNID_RE.match(e.name) and e.is_dir() for e in entries)
    except OSError:
        return False


OUTSIDE = "a link leading outside the source folder (never followed)"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _leaves(entry: os.DirEntry[str], real_root: str) -> bool:
    return entry.is_symlink() and not _inside(os.path.realpath(entry.path), real_root)


def list_image_files(
    folder: str, root: str | None = None
) -> tuple[list[tuple[str, int]], list[tuple[str, str]], int, dict[str, str]]:
    """Worker-friendly listing of one folder: (name, size) of its image files in name order, refusals
    (name, reason), how many non-image or hidden files were ignored, and the links kept (name -> the real
    path they lead to: the worker reads that path, and refuses any link it meets, so a file swapped for a link
    after planning is never followed). With ``root`` (the source folder), a file whose real path is outside
    it (through a link to the file, or to its folder) is refused."""
    real_root = os.path.realpath(root) if root is not None else None
    folder_outside = real_root is not None and not _inside(os.path.realpath(folder), real_root)
    files: list[tuple[str, int]] = []
    refused: list[tuple[str, str]] = []
    links: dict[str, str] = {}
    ignored = 0
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise InputError(f"Cannot list the folder {folder}: {exc.strerror}.") from None
    for entry in entries:
        name = entry.name
        if name.startswith(".") or not is_image_name(name):
            ignored += 1
            continue
        problem = name_problem(name, flat=True)
        # Only links need resolving (DirEntry knows without a system call): a listing stays cheap.
        if problem is None and real_root is not None and (folder_outside or _leaves(entry, real_root)):
            problem = OUTSIDE
        if problem is None:
            try:
                st = os.stat(entry.path)  # follows a link: a link to a regular file is read like the file
            except OSError as exc:
                problem = f"cannot be read ({exc.strerror}; a broken link?)"
            else:
                if not stat.S_ISREG(st.st_mode):
                    problem = "not a regular file" if not stat.S_ISDIR(st.st_mode) else "folder"
        if problem is None:
            files.append((name, st.st_size))
            if entry.is_symlink():
                links[name] = os.path.realpath(entry.path)
        else:
            refused.append((name, problem))
    return files, refused, ignored, links


def folder_files(
    folder: Path, listing: Iterable[tuple[str, int]], links: Mapping[str, str] | None = None
) -> tuple[SourceFile, ...]:
    """The files of a folder listing; a link is located at the real path it leads to (see list_image_files)."""
    links = links or {}
    return tuple(
        SourceFile(
            name, os.path.splitext(name)[0], ByteLocation(links.get(name) or str(folder / name), 0, size)
        )
        for name, size in listing
    )


class FileReader(LocationReader):
    """Reads whole files (a folder layout): each file is opened, read and closed, so a unit of a thousand
    files never holds a thousand open files."""

    def __init__(self, unit: WorkUnit) -> None:
        super().__init__(unit)

    def read(self, location: ByteLocation, name: str | None = None) -> bytes:
        if location.locator not in self._files and not is_remote(location.locator):
            # Never through a link: the plan located links at their real paths, so a link here was swapped in
            # after planning (O_NOFOLLOW; non-blocking and regular files only, as every local read).
            self._files[location.locator] = FileByteSource(location.locator, nofollow=True)
        try:
            return super().read(location, name)
        finally:
            source = self._files.pop(location.locator, None)
            if source is not None:  # every byte source open_byte_source makes can close (see LocationReader)
                source.close()  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------ label files
#: The largest label file read (LOC_val_solution.csv is ~2 MB, LOC_synset_mapping.txt ~30 KB).
MAX_TEXT = 64 << 20


def read_label_file(path: Path, root: Path, limit: int = MAX_TEXT) -> str | None:
    """A label file's text, or None when there is none. Read only when it is a regular file inside ``root``
    (opened non-blocking: a FIFO does not hang the build), of at most ``limit`` bytes (checked before reading,
    then by a bounded read), in UTF-8 (a BOM is dropped). Anything else is a one-line InputError."""
    if not os.path.lexists(path):
        return None
    if not _inside(os.path.realpath(path), os.path.realpath(root)):
        raise InputError(f"{path} is a link leading outside the source folder {root}: it is not read.")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InputError(f"Cannot open {path}: {exc.strerror}.") from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path} is not a regular file (a FIFO, a device or a folder): it is not read.")
        if st.st_size > limit:
            raise InputError(
                f"{path} holds {st.st_size:,} bytes, more than any label file ({limit:,}): not read."
            )
        data = handle.read(limit + 1)
    return decode_label_text(data[: limit + 1], str(path), limit)


def decode_label_text(data: bytes, where: str, limit: int = MAX_TEXT) -> str:
    """UTF-8 text of a label file (a BOM dropped), or a one-line InputError."""
    if len(data) > limit:
        raise InputError(f"{where} holds more than {limit:,} bytes: not a label file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{where} is not UTF-8 text (byte {exc.start}): use the label file of the Kaggle download."
        ) from None


def parse_val_solution(text: str, where: str) -> dict[str, str]:
    """``LOC_val_solution.csv``: ImageId -> wnid (the first token of PredictionString; rows unsorted). A BOM is
    accepted; a field over csv's limit (128 KiB), a row without a wnid, or an ImageId on two rows is a one-line
    InputError."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    try:
        return _val_solution_rows(reader, where)
    except csv.Error as exc:
        raise InputError(
            f"{where}: line {reader.line_num} is not valid CSV ({exc}): is it the Kaggle {VAL_SOLUTION}?"
        ) from None


def _val_solution_rows(reader: Any, where: str) -> dict[str, str]:
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
        raise InputError(
            f"{where} does not start with the header ImageId,PredictionString: is it the Kaggle "
            f"{VAL_SOLUTION}?"
        )
    labels: dict[str, str] = {}
    lines: dict[str, int] = {}
    for line_no, row in enumerate(reader, 2):
        if not row or not "".join(row).strip():
            continue
        image_id = row[0].strip()
        tokens = row[1].split() if len(row) > 1 else []
        if not tokens or not WNID_RE.match(tokens[0]):
            raise InputError(
                f"{where}: line {line_no} ({image_id}) has no wnid first in its PredictionString "
                f"({(row[1] if len(row) > 1 else '')[:40]!r})."
            )
        if image_id in lines:
            raise InputError(
                f"{where}: {image_id} is labelled twice, on line {lines[image_id]} and line {line_no}: "
                "which label is right cannot be told; use the Kaggle download's file."
            )
        lines[image_id] = line_no
        labels[image_id] = tokens[0]
    return labels


def check_synset_mapping(text: str, where: str) -> list[str]:
    """``LOC_synset_mapping.txt`` against the bundled classes: a different wnid order (which would relabel
    classes) is an error naming the first differing line; different descriptions are warnings."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    expected = sorted(classes.all_classes(), key=lambda c: c.wnid)
    warnings: list[str] = []
    word_diffs: list[str] = []
    for number, (line, info) in enumerate(zip(lines, expected, strict=False), 1):
        wnid, _, words = line.partition(" ")
        if wnid != info.wnid:
            raise InputError(
                f"{where} differs from the ILSVRC2012 classes at line {number}: {line[:60]!r}, expected "
                f"'{info.wnid} {info.words}'. Use the mapping file of the Kaggle ImageNet download."
            )
        if words.strip() != info.words:
            word_diffs.append(f"line {number}: {line[:60]!r}")
    if len(lines) != len(expected):
        number = min(len(lines), len(expected)) + 1
        raise InputError(
            f"{where} has {len(lines)} lines, the ILSVRC2012 classes are {len(expected)}; the first "
            f"differing line is {number}. Use the mapping file of the Kaggle ImageNet download."
        )
    if word_diffs:
        warnings.append(
            f"{where}: {len(word_diffs)} class descriptions differ from the bundled ones (labels are "
            f"unaffected); first: {word_diffs[0]}."
        )
    return warnings


def val_key(name: str) -> str | None:
    """``ILSVRC2012_val_00000001`` for a val file name with any extension, else None."""
    stem = os.path.splitext(os.path.basename(name))[0]
    return stem if VAL_STEM_RE.match(stem) else None


def bundled_val_labels(keys: Iterable[str]) -> dict[str, str] | None:
    """The bundled labels for val keys, when they are the real release's 50,000 names (else None)."""
    keys = list(keys)
    if len(keys) != classes.NUM_VAL_IMAGES:
        return None
    bundled = classes.val_labels()
    out: dict[str, str] = {}
    for key in keys:
        match = VAL_STEM_RE.match(key)
        if match is None or not 1 <= int(match.group(1)) <= len(bundled):
            return None
        out[key] = bundled[int(match.group(1)) - 1]
    return out if len(out) == classes.NUM_VAL_IMAGES else None
