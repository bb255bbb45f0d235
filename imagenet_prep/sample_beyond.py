"""Miniature releases beyond ImageNet-1K, in the exact real layouts, with generated images (see sample.py).

``write_layout(dest, layout, ...)`` writes one of:

======================  ======================================================================================
layout                  what it writes into ``dest``
======================  ======================================================================================
``fall11``              ``fall11_whole.tar``: a tar of ``<wnid>.tar`` class tars of ``<wnid>_<n>.JPEG``
``winter21``            ``winter21_whole.tar.gz``: gzip of ``winter21_whole/<wnid>.tar``
``bbox``                ``ILSVRC2012_bbox_train_v2.tar.gz`` (``<wnid>/<wnid>_<n>.xml``) and
                        ``ILSVRC2012_bbox_val_v3.tgz`` (``val/ILSVRC2012_val_%08d.xml``) for the images of the
                        ILSVRC2012 sample in ``dest`` (written first when absent)
``imagenetv2``          ``imagenetv2-<variant>.tar.gz``: ``imagenetv2-<variant>-format-val/<0..999>/<sha1>.jpeg``
``imagenet-a`` / ``-r`` ``imagenet-a.tar`` / ``imagenet-r.tar``: ``imagenet-a/<wnid>/<name>.jpg``
``sketch``              ``ImageNet-Sketch.zip``: ``sketch/<wnid>/sketch_<n>.JPEG`` (deflated)
======================  ======================================================================================

Everything is deterministic in its arguments (fixed tar/zip/gzip times and owners). ``classes`` picks the
classes (default: a few of the set's own), ``per_class`` the images per class (an int, or a tuple cycled over
the classes: classes of several sizes, for the ImageNet-21K-P threshold).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from .errors import UsageError
from .sample import _add, render_image
from .taxonomy import classes

__all__ = ["BEYOND_LAYOUTS", "DEFAULT_21K_CLASSES", "write_layout"]

BEYOND_LAYOUTS = ("fall11", "winter21", "bbox", "imagenetv2", "imagenet-a", "imagenet-r", "sketch")
# A few 21K classes: inside and outside the 1K, dogs among them (for --under dog.n.01), all in the 21K spaces.
DEFAULT_21K_CLASSES = (
    "n00005787",  # benthos
    "n00007846",  # person
    "n01440764",  # tench (1K)
    "n02084071",  # dog
    "n02085019",  # feist
    "n02085620",  # Chihuahua (1K)
    "n04125692",  # safety arch
)
_ZIP_TIME = (2019, 5, 1, 0, 0, 0)


def _sizes(per_class: int | Sequence[int], count: int) -> list[int]:
    cycle = [per_class] if isinstance(per_class, int) else list(per_class)
    if not cycle or any(n < 0 for n in cycle):
        raise UsageError("per_class must be a positive number of images (or a list of them).")
    return [cycle[i % len(cycle)] for i in range(count)]


def _21k_names(wnid: str, count: int, seed: int) -> list[str]:
    """Unpadded, sparse numbers like the real archives (so byte order and number order differ)."""
    rng = random.Random(f"{seed}:{wnid}")
    numbers = sorted(rng.sample(range(1, 20000), count))
    return [f"{wnid}_{n}.JPEG" for n in numbers]


def _tar_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            _add(tar, name, data)
    return buffer.getvalue()


def _gzip(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


def _class_tars(wnids: Sequence[str], per_class: int | Sequence[int], seed: int) -> dict[str, list[str]]:
    return {w: _21k_names(w, n, seed) for w, n in zip(wnids, _sizes(per_class, len(wnids)), strict=True)}


def write_fall11(
    dest: Path, wnids: Sequence[str] = DEFAULT_21K_CLASSES, per_class: int | Sequence[int] = 6, seed: int = 0
) -> dict[str, list[str]]:
    """``fall11_whole.tar``; returns wnid -> its image names (in the class tar's order)."""
    files = _class_tars(wnids, per_class, seed)
    members = [
        (f"{w}.tar", _tar_bytes([(n, render_image(seed, w, n, False)) for n in names]))
        for w, names in files.items()
    ]
    (dest / "fall11_whole.tar").write_bytes(_tar_bytes(members))
    return files


def write_winter21(
    dest: Path, wnids: Sequence[str] = DEFAULT_21K_CLASSES, per_class: int | Sequence[int] = 6, seed: int = 0
) -> dict[str, list[str]]:
    """``winter21_whole.tar.gz`` (``winter21_whole/<wnid>.tar``); returns wnid -> its image names."""
    files = _class_tars(wnids, per_class, seed)
    members = [
        (f"winter21_whole/{w}.tar", _tar_bytes([(n, render_image(seed, w, n, False)) for n in names]))
        for w, names in files.items()
    ]
    (dest / "winter21_whole.tar.gz").write_bytes(_gzip(_tar_bytes(members)))
    return files


def _voc(name: str, size: tuple[int, int], objects: Sequence[tuple[str, Sequence[str]]], file: str) -> bytes:
    parts = [
        f"<annotation><folder>x</folder><filename>{file}</filename>",
        f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>",
    ]
    for wnid, (xmin, ymin, xmax, ymax) in objects:
        parts.append(
            f"<object><name>{wnid}</name><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
            f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    return "".join(parts).encode()


def _image_sizes(tar_path: Path, nested: bool) -> dict[str, tuple[str, tuple[int, int]]]:
    """member name -> (wnid or "", (width, height)) of the images in an ILSVRC2012 sample tar."""
    from PIL import Image

    found: dict[str, tuple[str, tuple[int, int]]] = {}
    with tarfile.open(tar_path) as outer:
        for info in outer:
            handle = outer.extractfile(info)
            if handle is None:
                continue
            data = handle.read()
            if nested:
                with tarfile.open(fileobj=io.BytesIO(data)) as inner:
                    for item in inner:
                        image = inner.extractfile(item)
                        if image is not None:
                            with Image.open(image) as im:
                                found[item.name] = (info.name[:-4], im.size)
            else:
                with Image.open(io.BytesIO(data)) as im:
                    found[info.name] = ("", im.size)
    return found


def write_bbox(dest: Path, seed: int = 0, quirks: bool = True) -> dict[str, list[tuple[str, Sequence[str]]]]:
    """Bounding-box archives for the ILSVRC2012 sample in ``dest`` (written with defaults when absent): boxes
    for about two thirds of the images, 1-2 each, inside the image; with ``quirks`` some files carry float
    values, reversed min/max, a ``<name>`` that is no wnid and ``%s`` in ``<filename>``. Returns image stem ->
    the (name, (xmin, ymin, xmax, ymax) as written) objects."""
    from .fetch.catalog import TRAIN_TAR, VAL_TAR
    from .sample import write_sample

    if not (dest / TRAIN_TAR).exists():
        write_sample(dest)
    written: dict[str, list[tuple[str, Sequence[str]]]] = {}
    for archive, nested, out_name in (
        (TRAIN_TAR, True, "ILSVRC2012_bbox_train_v2.tar.gz"),
        (VAL_TAR, False, "ILSVRC2012_bbox_val_v3.tgz"),
    ):
        members = []
        for name, (wnid, (width, height)) in sorted(_image_sizes(dest / archive, nested).items()):
            stem = name.split(".")[0]
            rng = random.Random(f"{seed}:box:{stem}")
            if rng.random() < 0.33:
                continue
            label = wnid or classes.val_labels()[int(stem[-8:]) - 1]
            objects: list[tuple[str, Sequence[str]]] = []
            for _ in range(rng.choice((1, 1, 2))):
                x0, x1 = sorted(rng.sample(range(0, width + 1), 2))
                y0, y1 = sorted(rng.sample(range(0, height + 1), 2))
                coords: list[str] = [str(x0), str(y0), str(x1), str(y1)]
                kind = rng.random() if quirks else 1.0
                if kind < 0.1:
                    coords = [f"{x0}.5" if x0 < x1 - 1 else str(x0), str(y0), str(x1), str(y1)]
                elif kind < 0.2:
                    coords = [str(x1), str(y0), str(x0), str(y1)]  # reversed x
                objects.append(("dog" if quirks and kind > 0.95 else label, coords))
            file_name = "%s" if quirks and rng.random() < 0.1 else stem
            folder = f"{wnid}/" if wnid else "val/"
            members.append((f"{folder}{stem}.xml", _voc(label, (width, height), objects, file_name)))
            written[stem] = objects
        (dest / out_name).write_bytes(_gzip(_tar_bytes(members)))
    return written


def _eval_images(
    wnids: Sequence[str], per_class: int, seed: int, namer
) -> list[tuple[str, str, bytes]]:  # (wnid, member name, bytes)
    out = []
    for wnid in wnids:
        for i in range(per_class):
            data = render_image(seed, wnid, f"{wnid}-{i}", False)
            out.append((wnid, namer(wnid, i, data), data))
    return out


def write_imagenetv2(
    dest: Path,
    variant: str = "matched-frequency",
    wnids: Sequence[str] | None = None,
    per_class: int = 2,
    seed: int = 0,
) -> Path:
    """``imagenetv2-<variant>.tar.gz``: folders named by the sorted-1K index (default: classes 0, 2, 10, 100,
    999 -- "100" sorts before "2" as a string), images ``<sha1>.jpeg``."""
    chosen = wnids or tuple(classes.by_index(i).wnid for i in (0, 2, 10, 100, 999))
    top = f"imagenetv2-{variant}-format-val"
    members = [
        (f"{top}/{classes.by_wnid(w).index}/{name}", data)
        for w, name, data in _eval_images(
            chosen, per_class, seed, lambda w, i, data: f"{hashlib.sha1(data).hexdigest()}.jpeg"
        )
    ]
    path = dest / f"imagenetv2-{variant}.tar.gz"
    path.write_bytes(_gzip(_tar_bytes(members)))
    return path


def write_imagenet_ar(
    dest: Path,
    which: str = "imagenet-a",
    wnids: Sequence[str] | None = None,
    per_class: int = 2,
    seed: int = 0,
) -> Path:
    """``imagenet-a.tar`` / ``imagenet-r.tar``: ``<which>/<wnid>/<name>.jpg`` (default: 4 of its 200 classes)."""
    chosen = wnids or classes.subset_wnids(which)[::50]
    prefix = "0." if which == "imagenet-a" else "art_"
    members = [
        (f"{which}/{w}/{name}", data)
        for w, name, data in _eval_images(chosen, per_class, seed, lambda w, i, d: f"{prefix}{i:04d}.jpg")
    ]
    path = dest / f"{which}.tar"
    path.write_bytes(_tar_bytes(members))
    return path


def write_sketch(dest: Path, wnids: Sequence[str] | None = None, per_class: int = 2, seed: int = 0) -> Path:
    """``ImageNet-Sketch.zip``: ``sketch/<wnid>/sketch_<n>.JPEG``, deflated (default: 5 classes)."""
    chosen = wnids or tuple(classes.by_index(i).wnid for i in (0, 1, 151, 500, 999))
    path = dest / "ImageNet-Sketch.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for w, name, data in _eval_images(chosen, per_class, seed, lambda w, i, d: f"sketch_{i}.JPEG"):
            info = zipfile.ZipInfo(f"sketch/{w}/{name}", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def write_layout(
    dest: str | os.PathLike[str],
    layout: str,
    *,
    wnids: Sequence[str] | None = None,
    per_class: int | Sequence[int] | None = None,
    seed: int = 0,
    variant: str = "matched-frequency",
) -> Path:
    """Write the miniature ``layout`` (one of :data:`BEYOND_LAYOUTS`) into ``dest``; returns ``dest``. The
    ``--layout`` of ``imagenet-prep sample`` for these layouts."""
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    count = per_class if per_class is not None else None
    if layout == "fall11":
        write_fall11(root, wnids or DEFAULT_21K_CLASSES, count or 6, seed)
    elif layout == "winter21":
        write_winter21(root, wnids or DEFAULT_21K_CLASSES, count or 6, seed)
    elif layout == "bbox":
        write_bbox(root, seed)
    elif layout == "imagenetv2":
        write_imagenetv2(root, variant, wnids, _one(count, 2), seed)
    elif layout in ("imagenet-a", "imagenet-r"):
        write_imagenet_ar(root, layout, wnids, _one(count, 2), seed)
    elif layout == "sketch":
        write_sketch(root, wnids, _one(count, 2), seed)
    else:
        raise UsageError(f"Unknown sample layout '{layout}': use one of {', '.join(BEYOND_LAYOUTS)}.")
    return root


def _one(count: int | Sequence[int] | None, default: int) -> int:
    if count is None:
        return default
    if isinstance(count, int):
        return count
    raise UsageError("This layout takes one number of images per class.")
