"""The Hugging Face layouts of the miniature (the same images as the ILSVRC2012 miniature, re-packed):

- ``hf-tar``: ``data/train_images_0..4.tar.gz`` (images dealt round-robin) and ``data/val_images.tar.gz``,
  members named ``<key>_<wnid>.JPEG``;
- ``hf-parquet``: ``data/train-0000k-of-00002.parquet``, ``data/validation-00000-of-00001.parquet``
  (image struct{bytes, path}, label int64; rows shuffled; row groups of 8 rows; needs pyarrow).
"""

from __future__ import annotations

import random
from pathlib import Path

from ..errors import UsageError
from ..io.atomic import atomic_file
from ..taxonomy import classes
from .common import Images, gzip_bytes, stem, tar_bytes, write_file

HF_TRAIN_SHARDS = 5


def repack_hf_tar(root: Path, train: Images, vals: Images, seed: int) -> list[str]:
    ordered = sorted(train, key=lambda item: (item[0], item[1]))
    shards: list[list[tuple[str, bytes | None]]] = [[] for _ in range(HF_TRAIN_SHARDS)]
    for i, (wnid, name, data) in enumerate(ordered):
        shards[i % HF_TRAIN_SHARDS].append((f"{stem(name)}_{wnid}.JPEG", data))
    for k, shard in enumerate(shards):
        write_file(root / "data" / f"train_images_{k}.tar.gz", gzip_bytes(tar_bytes(shard)))
    val_members: list[tuple[str, bytes | None]] = [
        (f"{stem(name)}_{wnid}.JPEG", data) for wnid, name, data in vals
    ]
    write_file(root / "data" / "val_images.tar.gz", gzip_bytes(tar_bytes(val_members)))
    return ["data"]


def require_pyarrow() -> None:
    """Raise a UsageError naming the extra when pyarrow is missing (before any image is drawn)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UsageError(
            "The hf-parquet sample needs pyarrow: run `pip install 'imagenet-prep[parquet]'`."
        ) from None


def repack_hf_parquet(root: Path, train: Images, vals: Images, seed: int) -> list[str]:
    require_pyarrow()
    import pyarrow as pa
    import pyarrow.parquet as pq

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    index = {c.wnid: i for i, c in enumerate(sorted(classes.all_classes(), key=lambda c: c.wnid))}
    for split, items, files in (("train", train, 2), ("validation", vals, 1)):
        rows = [(f"{stem(name)}_{wnid}.JPEG", data, index[wnid]) for wnid, name, data in items]
        random.Random(f"imagenet-prep-sample-parquet/{seed}/{split}").shuffle(rows)
        for k in range(files):
            part = rows[k::files]
            table = pa.table(
                {
                    "image": pa.array([{"bytes": d, "path": p} for p, d, _l in part], type=image_type),
                    "label": pa.array([label for _p, _d, label in part], type=pa.int64()),
                }
            )
            path = root / "data" / f"{split}-{k:05d}-of-{files:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as handle:
                pq.write_table(table, handle, row_group_size=8)
    return ["data"]
