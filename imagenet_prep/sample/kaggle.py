"""The Kaggle layouts of the miniature (the same images as the ILSVRC2012 miniature, re-packed):

- ``kaggle``: ``ILSVRC/Data/CLS-LOC/train/<wnid>/<name>.JPEG``, a flat ``ILSVRC/Data/CLS-LOC/val/``,
  ``LOC_val_solution.csv`` (rows shuffled, one or two boxes per image) and ``LOC_synset_mapping.txt`` (1000 lines);
- ``kaggle-zip``: that tree and those files in ``imagenet-object-localization-challenge.zip`` (train images
  stored, val images and text deflated: both member kinds occur); ``kaggle-zip-2019``: the older zip, holding
  the text files and ``imagenet_object_localization_patched2019.tar.gz`` (the tree).
"""

from __future__ import annotations

import random
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ..io.atomic import atomic_file
from ..taxonomy import classes
from .common import Images, gzip_bytes, stem, tar_bytes, write_file, zip_info

CLS_LOC = "ILSVRC/Data/CLS-LOC"
KAGGLE_ZIP = "imagenet-object-localization-challenge.zip"
_ZIP_TIME = (2019, 1, 1, 0, 0, 0)


def _kaggle_text(vals: Images, seed: int) -> dict[str, bytes]:
    mapping = "".join(
        f"{c.wnid} {c.words}\n" for c in sorted(classes.all_classes(), key=lambda c: c.wnid)
    ).encode()
    rng = random.Random(f"imagenet-prep-sample-kaggle/{seed}")
    rows = []
    for wnid, name, _data in vals:
        boxes = [
            f"{wnid} {rng.randrange(0, 40)} {rng.randrange(0, 40)} {rng.randrange(41, 99)} {rng.randrange(41, 99)}"
            for _ in range(rng.randrange(1, 3))
        ]
        rows.append(f"{stem(name)},{' '.join(boxes)}{' ' if rng.random() < 0.5 else ''}\n")
    rng.shuffle(rows)
    solution = ("ImageId,PredictionString\n" + "".join(rows)).encode()
    return {"LOC_synset_mapping.txt": mapping, "LOC_val_solution.csv": solution}


def _kaggle_tree(train: Images, vals: Images) -> Iterator[tuple[str, bytes]]:
    for wnid, name, data in train:
        yield f"{CLS_LOC}/train/{wnid}/{name}", data
    for _wnid, name, data in vals:
        yield f"{CLS_LOC}/val/{name}", data


def repack_kaggle(root: Path, train: Images, vals: Images, seed: int) -> list[str]:
    for rel, data in _kaggle_tree(train, vals):
        write_file(root / rel, data)
    for name, text in _kaggle_text(vals, seed).items():
        write_file(root / name, text)
    return ["ILSVRC", "LOC_synset_mapping.txt", "LOC_val_solution.csv"]


def _repack_zip(root: Path, train: Images, vals: Images, seed: int, nested: bool) -> list[str]:
    path = root / KAGGLE_ZIP
    with atomic_file(path) as handle, zipfile.ZipFile(handle, "w") as archive:
        for name, text in _kaggle_text(vals, seed).items():
            archive.writestr(zip_info(name, zipfile.ZIP_DEFLATED, _ZIP_TIME), text)
        if not nested:
            for rel, data in _kaggle_tree(train, vals):
                method = zipfile.ZIP_STORED if "/train/" in rel else zipfile.ZIP_DEFLATED
                archive.writestr(zip_info(rel, method, _ZIP_TIME), data)
        else:
            tree = gzip_bytes(tar_bytes(list(_kaggle_tree(train, vals))))
            name = "imagenet_object_localization_patched2019.tar.gz"
            archive.writestr(zip_info(name, zipfile.ZIP_STORED, _ZIP_TIME), tree)
    return [path.name]


def repack_kaggle_zip(root: Path, train: Images, vals: Images, seed: int) -> list[str]:
    return _repack_zip(root, train, vals, seed, nested=False)


def repack_kaggle_zip_2019(root: Path, train: Images, vals: Images, seed: int) -> list[str]:
    return _repack_zip(root, train, vals, seed, nested=True)
