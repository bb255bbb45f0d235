"""Class-folder layouts of the miniature (the same images as the ILSVRC2012 miniature, re-packed):

- ``imagefolder``: ``train/<wnid>/<name>``, ``val/<wnid>/<name>``;
- ``blurred``: ``train_blurred.tar.gz`` / ``val_blurred.tar.gz`` (``<top>/<wnid>/<key>.jpg``, val in class
  folders; the images are the same, not blurred).
"""

from __future__ import annotations

from pathlib import Path

from .common import Images, gzip_bytes, stem, tar_bytes, write_file


def repack_imagefolder(root: Path, train: Images, vals: Images, seed: int) -> list[str]:
    for split, items in (("train", train), ("val", vals)):
        for wnid, name, data in items:
            write_file(root / split / wnid / name, data)
    return ["train", "val"]


def repack_blurred(root: Path, train: Images, vals: Images, seed: int) -> list[str]:
    for split, items in (("train", train), ("val", vals)):
        top = f"{split}_blurred"
        entries: list[tuple[str, bytes | None]] = [(top, None)]
        for wnid in sorted({wnid for wnid, _n, _d in items}):
            entries.append((f"{top}/{wnid}", None))
            entries += [(f"{top}/{w}/{stem(n)}.jpg", d) for w, n, d in items if w == wnid]
        write_file(root / f"{top}.tar.gz", gzip_bytes(tar_bytes(entries)))
    return ["train_blurred.tar.gz", "val_blurred.tar.gz"]
