"""The face-blurred ILSVRC2012 release (image-net.org, princetonvisualai/imagenet-face-obfuscation):
``train_blurred.tar.gz`` (``train_blurred/<wnid>/<wnid>_<n>.jpg``) and ``val_blurred.tar.gz``
(``val_blurred/<wnid>/ILSVRC2012_val_%08d.jpg``: val is already in class folders). ``.jpg`` mostly, ``.JPEG``
accepted too: the key is the stem, so outputs carry the canonical names.

Each archive is a gzip stream: listed once (cached), cut into units of 250 images in stream order and read
through each worker's forward cursor, so a split's one stream is built on every core (sources/streamed.py); the
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

from ..taxonomy import classes
from .base import FolderProbe, SplitIndex
from .common import WNID_RE, val_key
from .streamed import StreamedSource

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


def _archives(folder: Path) -> dict[str, list[Path]]:
    return {split: [folder / name] for split, name in ARCHIVES.items() if (folder / name).is_file()}


class BlurredSource(StreamedSource):
    """``train_blurred.tar.gz`` and/or ``val_blurred.tar.gz``."""

    layout: ClassVar[str] = "blurred"
    needs: ClassVar[str] = "train_blurred.tar.gz and/or val_blurred.tar.gz (the face-blurred release)"
    archive_names: ClassVar[dict[str, str]] = ARCHIVES
    kind: ClassVar[str] = "face-blurred tar.gz"
    role_suffix: ClassVar[str] = " (face-blurred)"

    find_streams = staticmethod(_archives)
    parse = staticmethod(parse_blurred)

    @classmethod
    def detect(cls, probe: FolderProbe) -> bool:
        return any(probe.has(name) for name in ARCHIVES.values())

    def more_warnings(self, split: str, index: SplitIndex, wnids: Sequence[str]) -> list[str]:
        """For a (nearly) full val archive: the images of the chosen classes the bundled labels expect but the
        archive lacks."""
        if split != "val":
            return []
        [listing] = self.listings(split)
        if len(listing.members or ()) < FULL_VAL:
            return []
        present = {key for files in index.files.values() for key in (f.key for f in files)}
        chosen = set(wnids)
        absent = [
            classes.val_file_name(k)
            for k, wnid in enumerate(classes.val_labels(), 1)
            if wnid in chosen and val_key(classes.val_file_name(k)) not in present
        ]
        if not absent:
            return []
        shown = ", ".join(absent[:20]) + (" ..." if len(absent) > 20 else "")
        return [
            f"val: {len(absent)} validation images of the chosen classes are not in the face-blurred "
            f"release (it lacks some of the original's): {shown}."
        ]
