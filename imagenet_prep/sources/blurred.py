"""The face-blurred ILSVRC2012 release (image-net.org, princetonvisualai/imagenet-face-obfuscation):
``train_blurred.tar.gz`` (``train_blurred/<wnid>/<wnid>_<n>.jpg``) and ``val_blurred.tar.gz``
(``val_blurred/<wnid>/ILSVRC2012_val_%08d.jpg``: val is already in class folders). ``.jpg`` mostly, ``.JPEG``
accepted too: the key is the stem, so outputs carry the canonical names.

Each archive is a gzip stream: listed once (cached) and read in one streamed unit (sources/streamed.py); the
layout name ``blurred`` in build.json records the variant. The release lacks about a hundred images of the
original one: a missing image is never an error. For val, when the archive holds (nearly) the full 50,000,
the images of the chosen classes that the bundled labels expect but the archive lacks are listed in a warning;
for train there is no bundled list to compare with (build.json's per-class counts show what was there).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from ..errors import InputError
from ..records import Sample, WorkUnit
from ..taxonomy import classes
from .base import FolderProbe, Runner, SourceRecord, SplitIndex
from .common import WNID_RE, val_key
from .streamed import StreamListing, StreamReader, group_by_stream, list_streams, listing_files, stream_index

ARCHIVES = {"train": "train_blurred.tar.gz", "val": "val_blurred.tar.gz"}
_EXTENSIONS = (".jpg", ".jpeg")
FULL_VAL = 45_000  # a val archive this large is the full release: compare it with the bundled names


def parse_blurred(name: str) -> tuple[str, str] | str:
    """``<top>/<wnid>/<name>.jpg`` -> (wnid, key), or why it is refused."""
    parts = name.split("/")
    if len(parts) < 2 or not WNID_RE.match(parts[-2]):
        return "not in a <wnid>/ folder"
    stem, ext = os.path.splitext(parts[-1])
    if ext.lower() not in _EXTENSIONS:
        return f"not a .jpg/.JPEG image ({ext or 'no extension'})"
    return parts[-2], stem


class BlurredSource:
    """``train_blurred.tar.gz`` and/or ``val_blurred.tar.gz``."""

    layout: ClassVar[str] = "blurred"
    needs: ClassVar[str] = "train_blurred.tar.gz and/or val_blurred.tar.gz (the face-blurred release)"

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        self.folder = Path(folder)
        self.cache_dir = cache_dir
        self.paths = {s: self.folder / n for s, n in ARCHIVES.items() if (self.folder / n).is_file()}
        self._listings: dict[str, StreamListing] = {}
        self._listing_bytes: dict[str, int] = {}

    @classmethod
    def detect(cls, probe: FolderProbe) -> bool:
        return any(probe.has(name) for name in ARCHIVES.values())

    def splits(self) -> tuple[str, ...]:
        return tuple(split for split in ("train", "val") if split in self.paths)

    def missing(self) -> list[str]:
        return [f"{ARCHIVES[split]} ({split})" for split in ("train", "val") if split not in self.paths]

    def listing(self, split: str) -> StreamListing:
        if split not in self._listings:
            if split not in self.paths:
                raise InputError(
                    f"{ARCHIVES[split]} is missing from {self.folder}: build the splits it has with --splits."
                )
            listing = StreamListing(self.paths[split], cache_dir=self.cache_dir)
            self._listing_bytes[split] = list_streams([listing])
            self._listings[split] = listing
        return self._listings[split]

    def classes(self, split: str) -> tuple[str, ...]:
        return tuple(sorted(listing_files(self.listing(split), parse_blurred)[0]))

    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        listing = self.listing(split)
        index = stream_index(split, [listing], parse_blurred, wnids, "face-blurred tar.gz")
        warnings = list(index.warnings)
        if split == "val" and len(listing.members or ()) >= FULL_VAL:
            present = {key for files in index.files.values() for key in (f.key for f in files)}
            chosen = set(wnids)
            absent = [
                classes.val_file_name(k)
                for k, wnid in enumerate(classes.val_labels(), 1)
                if wnid in chosen and val_key(classes.val_file_name(k)) not in present
            ]
            if absent:
                shown = ", ".join(absent[:20]) + (" ..." if len(absent) > 20 else "")
                warnings.append(
                    f"val: {len(absent)} validation images of the chosen classes are not in the face-blurred "
                    f"release (it lacks some of the original's): {shown}."
                )
        nbytes = self._listing_bytes.pop(split, 0)
        return SplitIndex(split, index.files, index.refused, tuple(warnings), nbytes)

    def member_label(self, split: str, wnid: str, name: str) -> str:
        return f"{split}/{name}"

    def group(self, split: str, samples: Sequence[Sample]) -> list[tuple[str, tuple[Sample, ...]]]:
        return group_by_stream(split, samples)

    def records(self) -> list[SourceRecord]:
        return [SourceRecord(self.paths[split], f"{split} (face-blurred)") for split in self.splits()]

    @classmethod
    def open_unit(cls, unit: WorkUnit) -> StreamReader:
        return StreamReader(unit)
