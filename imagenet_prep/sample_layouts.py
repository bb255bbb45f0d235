"""The miniature release in every layout a build reads, from the SAME generated images as ``sample.py``.

``write_layout(dest, spec, layout)`` writes the official ILSVRC2012 sample (``layout="ilsvrc"``), or renders
it in a scratch folder and re-packs its images, byte for byte, into:

- ``kaggle``: ``ILSVRC/Data/CLS-LOC/train/<wnid>/<name>.JPEG``, a flat ``ILSVRC/Data/CLS-LOC/val/``,
  ``LOC_val_solution.csv`` (rows shuffled, one or two boxes per image) and ``LOC_synset_mapping.txt`` (1000 lines);
- ``kaggle-zip``: that tree and those files in ``imagenet-object-localization-challenge.zip`` (train images
  stored, val images and text deflated: both member kinds occur); ``kaggle-zip-2019``: the older zip, holding
  the text files and ``imagenet_object_localization_patched2019.tar.gz`` (the tree);
- ``hf-tar``: ``data/train_images_0..4.tar.gz`` (images dealt round-robin) and ``data/val_images.tar.gz``,
  members named ``<key>_<wnid>.JPEG``;
- ``hf-parquet``: ``data/train-0000k-of-00002.parquet``, ``data/validation-00000-of-00001.parquet``
  (image struct{bytes, path}, label int64; rows shuffled; row groups of 8 rows; needs pyarrow);
- ``blurred``: ``train_blurred.tar.gz`` / ``val_blurred.tar.gz`` (``<top>/<wnid>/<key>.jpg``, val in class
  folders; the images are the same, not blurred);
- ``imagefolder``: ``train/<wnid>/<name>``, ``val/<wnid>/<name>``.

The same spec gives the same bytes (fixed tar/zip times and owners, gzip without a timestamp, seeded shuffles).
"""

from __future__ import annotations

import gzip
import io
import os
import random
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError
from .io.atomic import atomic_file, write_bytes_atomic
from .sample import SampleSpec, write_sample
from .taxonomy import classes

LAYOUTS = ("ilsvrc", "kaggle", "kaggle-zip", "hf-tar", "hf-parquet", "blurred", "imagefolder")
EXTRA_LAYOUTS = ("kaggle-zip-2019",)  # the older Kaggle zip (a tar.gz inside), for tests and bug reports
_MTIME = 1336003200
_ZIP_TIME = (2019, 1, 1, 0, 0, 0)
CLS_LOC = "ILSVRC/Data/CLS-LOC"
HF_TRAIN_SHARDS = 5


@dataclass(frozen=True)
class LayoutRelease:
    root: Path
    layout: str
    wnids: tuple[str, ...]
    train_files: dict[str, tuple[str, ...]] = field(hash=False)  # canonical names, as in the ILSVRC sample
    val_files: dict[str, str] = field(hash=False)  # val name -> wnid
    written: tuple[str, ...] = ()  # top-level entries written in ``root``


def _images(root: Path, wnids: tuple[str, ...], val: dict[str, str]) -> tuple[list, list]:
    """(wnid, name, bytes) of the ILSVRC sample's train and val images, read back from its tars."""
    train: list[tuple[str, str, bytes]] = []
    with tarfile.open(root / "ILSVRC2012_img_train.tar") as outer:
        for member in outer:
            handle = outer.extractfile(member)
            assert handle is not None
            with tarfile.open(fileobj=io.BytesIO(handle.read())) as inner:
                for image in inner:
                    data = inner.extractfile(image)
                    assert data is not None
                    train.append((member.name[:-4], image.name, data.read()))
    vals: list[tuple[str, str, bytes]] = []
    with tarfile.open(root / "ILSVRC2012_img_val.tar") as flat:
        for member in flat:
            data = flat.extractfile(member)
            assert data is not None
            vals.append((val[member.name], member.name, data.read()))
    return train, vals


def _tar_bytes(entries: Iterator[tuple[str, bytes | None]]) -> bytes:
    """A deterministic tar of (name, data) entries (data None = a folder)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = _MTIME, 0, 0, "", ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)


def _stem(name: str) -> str:
    return os.path.splitext(name)[0]


def _kaggle_text(vals: list[tuple[str, str, bytes]], seed: int) -> dict[str, bytes]:
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
        rows.append(f"{_stem(name)},{' '.join(boxes)}{' ' if rng.random() < 0.5 else ''}\n")
    rng.shuffle(rows)
    solution = ("ImageId,PredictionString\n" + "".join(rows)).encode()
    return {"LOC_synset_mapping.txt": mapping, "LOC_val_solution.csv": solution}


def _kaggle_tree(train: list, vals: list) -> Iterator[tuple[str, bytes]]:
    for wnid, name, data in train:
        yield f"{CLS_LOC}/train/{wnid}/{name}", data
    for _wnid, name, data in vals:
        yield f"{CLS_LOC}/val/{name}", data


def _zip_info(name: str, compress: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = compress
    info.external_attr = 0o100644 << 16
    info.create_system = 3
    return info


def _write_layout(root: Path, layout: str, train: list, vals: list, seed: int) -> list[str]:
    if layout == "imagefolder":
        for split, items in (("train", train), ("val", vals)):
            for wnid, name, data in items:
                _write(root / split / wnid / name, data)
        return ["train", "val"]
    if layout == "kaggle":
        for rel, data in _kaggle_tree(train, vals):
            _write(root / rel, data)
        for name, text in _kaggle_text(vals, seed).items():
            _write(root / name, text)
        return ["ILSVRC", "LOC_synset_mapping.txt", "LOC_val_solution.csv"]
    if layout in ("kaggle-zip", "kaggle-zip-2019"):
        path = root / "imagenet-object-localization-challenge.zip"
        with atomic_file(path) as handle, zipfile.ZipFile(handle, "w") as archive:
            for name, text in _kaggle_text(vals, seed).items():
                archive.writestr(_zip_info(name, zipfile.ZIP_DEFLATED), text)
            if layout == "kaggle-zip":
                for rel, data in _kaggle_tree(train, vals):
                    method = zipfile.ZIP_STORED if "/train/" in rel else zipfile.ZIP_DEFLATED
                    archive.writestr(_zip_info(rel, method), data)
            else:
                nested = _gzip(_tar_bytes(iter(list(_kaggle_tree(train, vals)))))
                name = "imagenet_object_localization_patched2019.tar.gz"
                archive.writestr(_zip_info(name, zipfile.ZIP_STORED), nested)
        return [path.name]
    if layout == "hf-tar":
        ordered = sorted(train, key=lambda item: (item[0], item[1]))
        shards: list[list[tuple[str, bytes | None]]] = [[] for _ in range(HF_TRAIN_SHARDS)]
        for i, (wnid, name, data) in enumerate(ordered):
            shards[i % HF_TRAIN_SHARDS].append((f"{_stem(name)}_{wnid}.JPEG", data))
        for k, shard in enumerate(shards):
            _write(root / "data" / f"train_images_{k}.tar.gz", _gzip(_tar_bytes(iter(shard))))
        val_members = [(f"{_stem(name)}_{wnid}.JPEG", data) for wnid, name, data in vals]
        _write(root / "data" / "val_images.tar.gz", _gzip(_tar_bytes(iter(val_members))))
        return ["data"]
    if layout == "blurred":
        for split, items in (("train", train), ("val", vals)):
            top = f"{split}_blurred"
            entries: list[tuple[str, bytes | None]] = [(top, None)]
            for wnid in sorted({wnid for wnid, _n, _d in items}):
                entries.append((f"{top}/{wnid}", None))
                entries += [(f"{top}/{w}/{_stem(n)}.jpg", d) for w, n, d in items if w == wnid]
            _write(root / f"{top}.tar.gz", _gzip(_tar_bytes(iter(entries))))
        return ["train_blurred.tar.gz", "val_blurred.tar.gz"]
    if layout == "hf-parquet":
        _write_parquet(root, train, vals, seed)
        return ["data"]
    raise UsageError(f"Unknown sample layout {layout!r}: choose one of {', '.join(LAYOUTS)}.")


def _write_parquet(root: Path, train: list, vals: list, seed: int, check_only: bool = False) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(
            "The hf-parquet sample needs pyarrow: run `pip install 'imagenet-prep[parquet]'`."
        ) from None
    if check_only:
        return
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    index = {c.wnid: i for i, c in enumerate(sorted(classes.all_classes(), key=lambda c: c.wnid))}
    for split, items, files in (("train", train, 2), ("validation", vals, 1)):
        rows = [(f"{_stem(name)}_{wnid}.JPEG", data, index[wnid]) for wnid, name, data in items]
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


def write_layout(
    dest: str | os.PathLike[str],
    spec: SampleSpec = SampleSpec(),  # noqa: B008 - frozen, so a shared default is safe
    layout: str = "ilsvrc",
    progress: Callable[[int], None] | None = None,
    *,
    overwrite: bool = False,
    workers: int | None = None,
) -> LayoutRelease:
    """Write the miniature release into ``dest`` in ``layout`` (see the module docstring)."""
    if layout not in LAYOUTS + EXTRA_LAYOUTS:
        raise UsageError(f"Unknown sample layout {layout!r}: choose one of {', '.join(LAYOUTS)}.")
    root = Path(dest)
    if layout == "ilsvrc":
        release = write_sample(root, spec, progress, overwrite=overwrite, workers=workers)
        written = (release.train_tar.name, release.val_tar.name, release.devkit.name, release.md5sums.name)
        return LayoutRelease(root, layout, release.wnids, release.train_files, release.val_files, written)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file; give a folder for the sample release.")
    if layout == "hf-parquet":
        _write_parquet(root, [], [], spec.seed, check_only=True)  # a missing pyarrow fails before any work
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise UsageError(f"{root} is not empty: pass --overwrite to write into it, or choose another folder.")
    with tempfile.TemporaryDirectory(prefix="imagenet-prep-sample-") as scratch:
        release = write_sample(Path(scratch), spec, progress, workers=workers)
        train, vals = _images(Path(scratch), release.wnids, release.val_files)
    root.mkdir(parents=True, exist_ok=True)
    names = _write_layout(root, layout, train, vals, spec.seed)
    return LayoutRelease(root, layout, release.wnids, release.train_files, release.val_files, tuple(names))


def write_layouts(
    dest: str | os.PathLike[str],
    spec: SampleSpec = SampleSpec(),  # noqa: B008 - frozen, so a shared default is safe
    layouts: tuple[str, ...] = LAYOUTS,
) -> dict[str, LayoutRelease]:
    """The same release in several layouts, rendered once: ``dest/<layout>/`` each (tests, benchmarks)."""
    root = Path(dest)
    official = write_layout(root / "ilsvrc", spec, "ilsvrc")
    train, vals = _images(official.root, official.wnids, official.val_files)
    out = {"ilsvrc": official}
    for layout in layouts:
        if layout == "ilsvrc":
            continue
        if layout not in LAYOUTS + EXTRA_LAYOUTS:
            raise UsageError(f"Unknown sample layout {layout!r}: choose one of {', '.join(LAYOUTS)}.")
        folder = root / layout
        folder.mkdir(parents=True, exist_ok=True)
        names = _write_layout(folder, layout, train, vals, spec.seed)
        out[layout] = LayoutRelease(
            folder, layout, official.wnids, official.train_files, official.val_files, tuple(names)
        )
    return out
