"""Shard-folder miniatures (the same images as the ILSVRC2012 miniature, re-packed):

- ``wds``: timm's ``imagenet-1k-wds`` layout: ``imagenet1k-train-{0000..0001}.tar`` and
  ``imagenet1k-validation-0000.tar``, each sample ``<key>.jpg`` + ``<key>.cls`` (the sorted-wnid index, ASCII)
  + ``<key>.json`` (``{"filename", "label"}``), train samples shuffled across the shards (seeded), and
  ``_info.json`` (``splits`` -> ``name``, ``num_samples``, ``shard_lengths``, ``filenames``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ..taxonomy import classes
from .common import Images, stem, tar_bytes, write_file

WDS_PREFIX = "imagenet1k"
WDS_TRAIN_SHARDS = 2


def _sample_members(wnid: str, name: str, data: bytes, label: int) -> list[tuple[str, bytes | None]]:
    key = stem(name)
    meta = json.dumps({"filename": name, "label": label}, separators=(",", ":")).encode()
    return [(f"{key}.jpg", data), (f"{key}.cls", str(label).encode("ascii")), (f"{key}.json", meta)]


def repack_wds(root: Path, train: Images, vals: Images, seed: int) -> list[str]:
    index = {c.wnid: i for i, c in enumerate(sorted(classes.all_classes(), key=lambda c: c.wnid))}
    rows = sorted(train, key=lambda item: (item[0], item[1]))
    random.Random(f"imagenet-prep-sample-wds/{seed}").shuffle(rows)
    splits: dict[str, dict[str, object]] = {}
    written = []
    for split, items, count in (("train", rows, WDS_TRAIN_SHARDS), ("validation", list(vals), 1)):
        names, lengths = [], []
        for k in range(count):
            part = items[k::count]
            members = [m for wnid, name, data in part for m in _sample_members(wnid, name, data, index[wnid])]
            name = f"{WDS_PREFIX}-{split}-{k:04d}.tar"
            write_file(root / name, tar_bytes(members))
            names.append(name)
            lengths.append(len(part))
        splits[split] = {
            "name": split,
            "num_samples": sum(lengths),
            "shard_lengths": lengths,
            "filenames": names,
        }
        written.extend(names)
    info = {"name": "imagenet-1k", "splits": splits}
    write_file(root / "_info.json", (json.dumps(info, indent=2) + "\n").encode())
    return [*written, "_info.json"]
