"""Miniature ILSVRC2012 bounding-box archives (``--layout bbox``): ``ILSVRC2012_bbox_train_v2.tar.gz``
(``<wnid>/<wnid>_<n>.xml``) and ``ILSVRC2012_bbox_val_v3.tgz`` (``val/ILSVRC2012_val_%08d.xml``), PASCAL VOC
files for the images of the ILSVRC2012 miniature beside them (written first when absent)."""

from __future__ import annotations

import io
import random
import tarfile
from collections.abc import Sequence
from pathlib import Path

from ..fetch.catalog import TRAIN_TAR, VAL_TAR
from ..taxonomy import classes
from .common import gzip_bytes, tar_bytes
from .ilsvrc import SampleSpec, write_sample

__all__ = ["write_bbox"]


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


def write_bbox(
    dest: Path,
    seed: int = 0,
    quirks: bool = True,
    spec: SampleSpec = SampleSpec(),  # noqa: B008 - frozen, so a shared default is safe
) -> dict[str, list[tuple[str, Sequence[str]]]]:
    """Bounding-box archives for the ILSVRC2012 sample in ``dest`` (written from ``spec`` when absent): boxes
    for about two thirds of the images, 1-2 each, inside the image; with ``quirks`` some files carry float
    values, reversed min/max, a ``<name>`` that is no wnid and ``%s`` in ``<filename>``. Returns image stem ->
    the (name, (xmin, ymin, xmax, ymax) as written) objects."""
    if not (dest / TRAIN_TAR).exists():
        write_sample(dest, spec)
    written: dict[str, list[tuple[str, Sequence[str]]]] = {}
    for archive, nested, out_name in (
        (TRAIN_TAR, True, "ILSVRC2012_bbox_train_v2.tar.gz"),
        (VAL_TAR, False, "ILSVRC2012_bbox_val_v3.tgz"),
    ):
        members: list[tuple[str, bytes | None]] = []
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
        (dest / out_name).write_bytes(gzip_bytes(tar_bytes(members)))
    return written
