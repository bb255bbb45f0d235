"""The Hugging Face ILSVRC/imagenet-1k tar.gz shards: ``train_images_0..4.tar.gz`` and ``val_images.tar.gz``
(in the folder or its ``data/``), members named ``n01440764_10026_n01440764.JPEG`` and
``ILSVRC2012_val_00000001_n01751748.JPEG``: the label is the ``_<wnid>`` suffix, which the canonical key drops.
Members may sit at the archive root or in folders (unconfirmed which: the base name is used).

gzip cannot seek: each shard is listed once by streaming it (cached, see sources/streamed.py; shards in
parallel threads) and read in one unit per shard (units run in parallel). A build of some classes still reads
every shard whole: the plan warns, and build.json's bytes_read shows it. ``test_images.tar.gz`` is ignored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from ..errors import InputError
from ..records import Sample, WorkUnit
from .base import FolderProbe, Runner, SourceRecord, SplitIndex
from .common import WNID_RE
from .streamed import StreamListing, StreamReader, group_by_stream, list_streams, listing_files, stream_index

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


class HfTarSource:
    """``train_images_*.tar.gz`` and/or ``val_images.tar.gz`` (Hugging Face ILSVRC/imagenet-1k)."""

    layout: ClassVar[str] = "hf-tar"
    needs: ClassVar[str] = "train_images_0..4.tar.gz and/or val_images.tar.gz (in the folder or its data/)"

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        self.folder = Path(folder)
        self.cache_dir = cache_dir
        self.shards = _shards(self.folder)
        self._listings: dict[str, list[StreamListing]] = {}
        self._listing_bytes: dict[str, int] = {}

    @classmethod
    def detect(cls, probe: FolderProbe) -> bool:
        return bool(_shards(probe.folder))

    def splits(self) -> tuple[str, ...]:
        return tuple(split for split in ("train", "val") if split in self.shards)

    def missing(self) -> list[str]:
        need = {"train": "train_images_0..4.tar.gz", "val": VAL_SHARD}
        return [f"{need[split]} ({split})" for split in ("train", "val") if split not in self.shards]

    def listings(self, split: str) -> list[StreamListing]:
        if split not in self._listings:
            if split not in self.shards:
                raise InputError(
                    f"{self.folder} holds no {'train_images_*.tar.gz' if split == 'train' else VAL_SHARD} "
                    "shard: build the splits it has with --splits."
                )
            listings = [StreamListing(path, cache_dir=self.cache_dir) for path in self.shards[split]]
            self._listing_bytes[split] = list_streams(listings)
            self._listings[split] = listings
        return self._listings[split]

    def classes(self, split: str) -> tuple[str, ...]:
        found: set[str] = set()
        for listing in self.listings(split):
            found.update(listing_files(listing, parse_suffixed)[0])
        return tuple(sorted(found))

    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        index = stream_index(split, self.listings(split), parse_suffixed, wnids, "Hugging Face tar.gz")
        nbytes = self._listing_bytes.pop(split, 0)  # the listing's reads, counted once
        return SplitIndex(split, index.files, index.refused, index.warnings, nbytes)

    def member_label(self, split: str, wnid: str, name: str) -> str:
        return f"{split}/{name}"

    def group(self, split: str, samples: Sequence[Sample]) -> list[tuple[str, tuple[Sample, ...]]]:
        return group_by_stream(split, samples)

    def records(self) -> list[SourceRecord]:
        return [SourceRecord(path, split) for split in self.splits() for path in self.shards[split]]

    @classmethod
    def open_unit(cls, unit: WorkUnit) -> StreamReader:
        return StreamReader(unit)
