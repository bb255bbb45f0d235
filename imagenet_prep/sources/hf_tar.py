"""The Hugging Face ILSVRC/imagenet-1k tar.gz shards: ``train_images_0..4.tar.gz`` and ``val_images.tar.gz``
(in the folder or its ``data/``), members named ``n01440764_10026_n01440764.JPEG`` and
``ILSVRC2012_val_00000001_n01751748.JPEG``: the label is the ``_<wnid>`` suffix, which the canonical key drops.
Members may sit at the archive root or in folders (unconfirmed which: the base name is used).

gzip cannot seek: each shard is listed once by streaming it (cached, see sources/streamed.py; shards in
parallel threads), cut into units of 250 images in stream order and read through each worker's forward cursor.
A build of some classes still reads every shard whole: the plan warns, and build.json's bytes_read shows it.
``test_images.tar.gz`` is ignored.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import ClassVar

from ..errors import InputError
from .base import FolderProbe
from .common import WNID_RE
from .streamed import StreamedSource

TRAIN_SHARD_RE = re.compile(r"^train_images_(\d+)\.tar\.gz$")
VAL_SHARD = "val_images.tar.gz"


def _shards(folder: Path) -> dict[str, list[Path]]:
    """split -> shard paths, from the folder or its data/ (the repository's layout)."""
    out: dict[str, list[Path]] = {}
    for where in (folder, folder / "data"):
        try:
            names = os.listdir(where)
        except OSError:
            continue
        train = sorted((n for n in names if TRAIN_SHARD_RE.match(n)), key=lambda n: int(n[13:-7]))
        if train and "train" not in out:
            out["train"] = [where / n for n in train]
        if VAL_SHARD in names and "val" not in out:
            out["val"] = [where / VAL_SHARD]
    return out


def parse_suffixed(name: str) -> tuple[str, str] | str:
    """``.../n01440764_10026_n01440764.JPEG`` -> (wnid, canonical key), or why the name is refused."""
    stem = os.path.splitext(os.path.basename(name))[0]
    key, _, wnid = stem.rpartition("_")
    if not key or not WNID_RE.match(wnid):
        return "no _<wnid> label suffix in the name (expected e.g. n01440764_10026_n01440764.JPEG)"
    return wnid, key


class HfTarSource(StreamedSource):
    """``train_images_*.tar.gz`` and/or ``val_images.tar.gz`` (Hugging Face ILSVRC/imagenet-1k)."""

    layout: ClassVar[str] = "hf-tar"
    needs: ClassVar[str] = "train_images_0..4.tar.gz and/or val_images.tar.gz (in the folder or its data/)"
    archive_names: ClassVar[dict[str, str]] = {"train": "train_images_0..4.tar.gz", "val": VAL_SHARD}
    kind: ClassVar[str] = "Hugging Face tar.gz"

    find_streams = staticmethod(_shards)
    parse = staticmethod(parse_suffixed)

    @classmethod
    def detect(cls, probe: FolderProbe) -> bool:
        return bool(_shards(probe.folder))

    def no_split(self, split: str) -> InputError:
        return InputError(
            f"{self.folder} holds no {'train_images_*.tar.gz' if split == 'train' else VAL_SHARD} "
            "shard: build the splits it has with --splits."
        )
