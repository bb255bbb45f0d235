"""ILSVRC2012 bounding boxes: parse them (PASCAL VOC XML, Kaggle ``LOC_*_solution.csv``), map them through a
resize/crop into output pixels, and write ``boxes.csv`` rows.

Sources (see shared/formats.md "Bounding boxes"):

- ``ILSVRC2012_bbox_train_v2.tar.gz`` (``<wnid>/<wnid>_<n>.xml``) and ``ILSVRC2012_bbox_val_v3.tgz``
  (``val/ILSVRC2012_val_%08d.xml``), also ``ILSVRC/Annotations/CLS-LOC/...`` in the Kaggle tree:
  :func:`parse_voc` takes one XML file's bytes and its member name.
- Kaggle ``LOC_train_solution.csv`` / ``LOC_val_solution.csv``: :func:`parse_loc_solution`.

Both give :class:`ImageBoxes` records keyed by the image's canonical stem (``n01440764_10026``,
``ILSVRC2012_val_00000001``). Coordinates are kept as given (floats allowed), as continuous pixel-edge
coordinates of the source image: 0 <= xmin < xmax <= width, the convention TF-models and the Kaggle CSV use
(whether the XMLs are 0- or 1-based is unconfirmed; the difference is at most one source pixel). They are
rounded only when written (:func:`boxes_csv_rows`).

Known quirks, repaired and labelled in :attr:`ImageBoxes.quirks` (one label per occurrence, for counts):

- ``float-coordinate``: a value like ``112.5``: kept as a float;
- ``reversed-coordinates``: xmin > xmax or ymin > ymax: swapped;
- ``name-not-wnid``: a ``<name>`` that is no wnid: the box is kept and attributed to the image's label;
- ``name-other-wnid``: a ``<name>`` that is a wnid other than the image's label: kept as written;
- ``<filename>`` is ignored (it sometimes holds ``%s``): the member name identifies the image.

A file that cannot be used (malformed XML, a DTD or entity declaration, a bad value) gives a record with
:attr:`ImageBoxes.problem` set and the boxes that could be read before it, never an exception. XML is parsed
with ``xml.etree.ElementTree`` only after refusing any ``<!DOCTYPE`` / ``<!ENTITY``, so entity expansion
("billion laughs") cannot happen.

Mapping: :func:`map_box` takes the geometry as ``(source size) -> (output size)`` plus the source region that
becomes the output (``geometry.source_box``), so it holds for any resize mode; :func:`box_geometry` gets those
from :class:`~imagenet_prep.image.ImageOptions`.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..taxonomy import classes
from .geometry import source_box, target_size
from .options import ImageOptions

__all__ = [
    "BOXES_CSV_HEADER",
    "Box",
    "BoxRowsItem",
    "ImageBoxes",
    "MapStats",
    "box_geometry",
    "boxes_csv_rows",
    "image_id_of",
    "label_of_image_id",
    "map_box",
    "map_boxes",
    "parse_loc_solution",
    "parse_voc",
    "quirk_counts",
    "scale_to_actual",
]

BOXES_CSV_HEADER = ("path", "label", "wnid", "xmin", "ymin", "xmax", "ymax")
MAX_XML_BYTES = 1 << 20  # real files are < 10 KB; a larger one is refused, not parsed
_WNID_RE = re.compile(r"^n\d{8}$")
_TRAIN_STEM_RE = re.compile(r"^(n\d{8})_\d+$")
_VAL_STEM_RE = re.compile(r"^ILSVRC2012_val_(\d{8})$")
_REFUSED_DECLARATIONS = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)

Region = tuple[float, float, float, float]
# One image for boxes.csv: (path, label, boxes) or (path, label, boxes, output size).
BoxRowsItem = tuple[str, int, Iterable["Box"]] | tuple[str, int, Iterable["Box"], tuple[int, int]]


@dataclass(frozen=True)
class Box:
    """One box in pixel coordinates (floats): ``wnid`` is the class it is attributed to."""

    wnid: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin


@dataclass(frozen=True)
class ImageBoxes:
    """The boxes of one image. ``declared_size`` is the XML's ``<size>`` (None for the CSV, or when absent)."""

    image_id: str
    boxes: tuple[Box, ...]
    declared_size: tuple[int, int] | None = None
    quirks: tuple[str, ...] = ()
    problem: str | None = None

    @property
    def label(self) -> str | None:
        """The image's class: the first box's wnid (the Kaggle CSV's convention), None without boxes."""
        return self.boxes[0].wnid if self.boxes else None


# ------------------------------------------------------------------------------------------------ naming


def image_id_of(member_name: str) -> str:
    """The canonical stem of an annotation or image member: ``val/ILSVRC2012_val_00000001.xml`` ->
    ``ILSVRC2012_val_00000001``; ``n01440764/n01440764_10026.xml`` -> ``n01440764_10026``."""
    base = PurePosixPath(member_name.replace("\\", "/")).name
    return base.split(".", 1)[0]


def label_of_image_id(image_id: str) -> str | None:
    """The wnid an image belongs to, from its name: a train stem's prefix, or the bundled validation labels
    for ``ILSVRC2012_val_%08d``; None when the name does not tell."""
    match = _TRAIN_STEM_RE.match(image_id)
    if match:
        return match.group(1)
    match = _VAL_STEM_RE.match(image_id)
    if match:
        number = int(match.group(1))
        labels = classes.val_labels()
        if 1 <= number <= len(labels):
            return labels[number - 1]
    return None


# ------------------------------------------------------------------------------------------------ parsing


class _BadValue(ValueError):
    pass


def _number(text: str | None, what: str, quirks: list[str]) -> float:
    if text is None or not text.strip():
        raise _BadValue(f"missing {what}")
    raw = text.strip()
    try:
        value = float(raw)
    except ValueError:
        raise _BadValue(f"{what} is not a number: {raw[:40]!r}") from None
    if not math.isfinite(value):
        raise _BadValue(f"{what} is not finite: {raw[:40]!r}")
    if not value.is_integer() or not re.fullmatch(r"[+-]?\d+", raw):
        quirks.append("float-coordinate")
    return value


def _make_box(
    name: str, coords: tuple[float, float, float, float], label: str | None, quirks: list[str]
) -> Box:
    xmin, ymin, xmax, ymax = coords
    if xmin > xmax or ymin > ymax:
        quirks.append("reversed-coordinates")
        xmin, xmax = min(xmin, xmax), max(xmin, xmax)
        ymin, ymax = min(ymin, ymax), max(ymin, ymax)
    if _WNID_RE.match(name):
        wnid = name
        if label is not None and name != label:
            quirks.append("name-other-wnid")
    else:
        quirks.append("name-not-wnid")
        wnid = label or ""
    return Box(wnid, xmin, ymin, xmax, ymax)


def parse_voc(data: bytes, member_name: str, label: str | None = None) -> ImageBoxes:
    """Parse one PASCAL VOC XML file. ``member_name`` identifies the image (``<filename>`` is ignored);
    ``label`` is the image's wnid (default: from the name, see :func:`label_of_image_id`), given to boxes
    whose ``<name>`` is no wnid. Never raises on bad content: see :attr:`ImageBoxes.problem`."""
    image_id = image_id_of(member_name)
    if label is None:
        label = label_of_image_id(image_id)
    if len(data) > MAX_XML_BYTES:
        return ImageBoxes(image_id, (), problem=f"annotation is {len(data)} bytes, over {MAX_XML_BYTES}")
    if _REFUSED_DECLARATIONS.search(data):
        return ImageBoxes(image_id, (), problem="annotation declares a DTD or entities: refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return ImageBoxes(image_id, (), problem=f"malformed XML: {exc}")
    quirks: list[str] = []
    boxes: list[Box] = []
    declared: tuple[int, int] | None = None
    try:
        size = root.find("size")
        if size is not None:
            width = _number(size.findtext("width"), "size width", quirks)
            height = _number(size.findtext("height"), "size height", quirks)
            if width >= 1 and height >= 1:
                declared = (round(width), round(height))
            else:
                quirks.append("bad-size")
        else:
            quirks.append("no-size")
        for obj in root.iter("object"):
            bndbox = obj.find("bndbox")
            if bndbox is None:
                raise _BadValue("an <object> has no <bndbox>")
            coords = tuple(
                _number(bndbox.findtext(tag), tag, quirks) for tag in ("xmin", "ymin", "xmax", "ymax")
            )
            name = (obj.findtext("name") or "").strip()
            boxes.append(_make_box(name, coords, label, quirks))  # type: ignore[arg-type]
    except _BadValue as exc:
        return ImageBoxes(image_id, tuple(boxes), declared, tuple(quirks), problem=str(exc))
    return ImageBoxes(image_id, tuple(boxes), declared, tuple(quirks))


def parse_loc_solution(lines: Iterable[str]) -> Iterator[ImageBoxes]:
    """Parse Kaggle's ``LOC_train_solution.csv`` / ``LOC_val_solution.csv`` (header ``ImageId,PredictionString``;
    the string is groups ``wnid xmin ymin xmax ymax``). Rows come in file order (they are not sorted); extra
    whitespace is tolerated; a row that cannot be used is a record with ``problem`` set."""
    rows = iter(lines)
    for number, raw in enumerate(rows, start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line:
            continue
        if number == 1 and line.replace(" ", "").lower() == "imageid,predictionstring":
            continue
        image_id, sep, prediction = line.partition(",")
        image_id = image_id_of(image_id.strip())
        if not sep:
            yield ImageBoxes(image_id, (), problem=f"line {number}: no comma")
            continue
        tokens = prediction.replace('"', " ").split()
        quirks: list[str] = []
        boxes: list[Box] = []
        problem = None
        if len(tokens) % 5:
            problem = f"line {number}: {len(tokens)} tokens, not groups of 5 (wnid xmin ymin xmax ymax)"
        label = tokens[0] if tokens and _WNID_RE.match(tokens[0]) else label_of_image_id(image_id)
        try:
            for start in range(0, len(tokens) - len(tokens) % 5, 5):
                name, *values = tokens[start : start + 5]
                coords = tuple(_number(v, "coordinate", quirks) for v in values)
                boxes.append(_make_box(name, coords, label, quirks))  # type: ignore[arg-type]
        except _BadValue as exc:
            problem = f"line {number}: {exc}"
        if not tokens and problem is None:
            problem = f"line {number}: no boxes"
        yield ImageBoxes(image_id, tuple(boxes), None, tuple(quirks), problem)


# ------------------------------------------------------------------------------------------------ mapping


@dataclass
class MapStats:
    """Counts over mapped boxes: every box is ``kept`` or ``dropped``; ``clipped`` ones are among the kept;
    ``rescaled`` counts boxes whose declared image size differed from the decoded one."""

    kept: int = 0
    clipped: int = 0
    dropped: int = 0
    rescaled: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "kept": self.kept,
            "clipped": self.clipped,
            "dropped": self.dropped,
            "rescaled": self.rescaled,
        }


def scale_to_actual(box: Box, declared_size: tuple[int, int], actual_size: tuple[int, int]) -> Box:
    """Scale a box given in the XML's declared image size to the decoded image's size."""
    sx = actual_size[0] / declared_size[0]
    sy = actual_size[1] / declared_size[1]
    return Box(box.wnid, box.xmin * sx, box.ymin * sy, box.xmax * sx, box.ymax * sy)


def box_geometry(source_size: tuple[int, int], options: ImageOptions) -> tuple[tuple[int, int], Region]:
    """(output size, source region) of a ``source_size`` image processed with ``options``: what
    :func:`map_box` needs. The output size is the source size when the image is kept as it is."""
    width, height = source_size
    out = target_size(width, height, options)
    if out is None:
        return (width, height), (0.0, 0.0, float(width), float(height))
    region = source_box(width, height, out, options)
    return out, (float(region[0]), float(region[1]), float(region[2]), float(region[3]))


def map_box(
    box: Box,
    source_size: tuple[int, int],
    output_size: tuple[int, int],
    source_region: Region | None = None,
    *,
    declared_size: tuple[int, int] | None = None,
    stats: MapStats | None = None,
) -> Box | None:
    """Map a box from source pixels to output pixels.

    ``source_region`` (left, top, right, bottom; default the whole source) is the part of the source that is
    resized onto ``output_size``. A box is first clamped to the source (annotations may overrun it), then
    clipped to the region; None when nothing of it is left (zero area). ``declared_size``: the size the box
    coordinates refer to (the XML's ``<size>``), when it differs from the decoded ``source_size``."""
    if declared_size is not None and tuple(declared_size) != tuple(source_size):
        box = scale_to_actual(box, declared_size, source_size)
        if stats is not None:
            stats.rescaled += 1
    width, height = source_size
    left, top, right, bottom = source_region if source_region is not None else (0, 0, width, height)
    # The source itself bounds every box; overrunning it is no clipping by the crop.
    xmin, xmax = min(max(box.xmin, 0.0), width), min(max(box.xmax, 0.0), width)
    ymin, ymax = min(max(box.ymin, 0.0), height), min(max(box.ymax, 0.0), height)
    cxmin, cxmax = max(xmin, left), min(xmax, right)
    cymin, cymax = max(ymin, top), min(ymax, bottom)
    if cxmax <= cxmin or cymax <= cymin:
        if stats is not None:
            stats.dropped += 1
        return None
    clipped = (cxmin, cymin, cxmax, cymax) != (xmin, ymin, xmax, ymax)
    sx = output_size[0] / (right - left)
    sy = output_size[1] / (bottom - top)
    out_w, out_h = output_size
    mapped = Box(
        box.wnid,
        min(max((cxmin - left) * sx, 0.0), out_w),
        min(max((cymin - top) * sy, 0.0), out_h),
        min(max((cxmax - left) * sx, 0.0), out_w),
        min(max((cymax - top) * sy, 0.0), out_h),
    )
    if stats is not None:
        stats.kept += 1
        stats.clipped += clipped
    return mapped


def map_boxes(
    boxes: Iterable[Box],
    source_size: tuple[int, int],
    options: ImageOptions,
    *,
    declared_size: tuple[int, int] | None = None,
    stats: MapStats | None = None,
) -> tuple[Box, ...]:
    """Map an image's boxes through the geometry ``options`` gives its ``source_size`` (dropped ones left out)."""
    output_size, region = box_geometry(source_size, options)
    mapped = (
        map_box(box, source_size, output_size, region, declared_size=declared_size, stats=stats)
        for box in boxes
    )
    return tuple(box for box in mapped if box is not None)


# ------------------------------------------------------------------------------------------------ writing


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _integer_box(box: Box, output_size: tuple[int, int] | None) -> tuple[int, int, int, int]:
    """Round to whole pixels; a box thinner than a pixel keeps one pixel (inside the image when known)."""
    coords = [
        _round_half_up(box.xmin),
        _round_half_up(box.ymin),
        _round_half_up(box.xmax),
        _round_half_up(box.ymax),
    ]
    for low, high, axis in ((0, 2, 0), (1, 3, 1)):
        if coords[high] <= coords[low]:
            coords[high] = coords[low] + 1
            if output_size is not None and coords[high] > output_size[axis]:
                coords[high] = output_size[axis]
                coords[low] = coords[high] - 1
    return coords[0], coords[1], coords[2], coords[3]


def boxes_csv_rows(
    images: Iterable[BoxRowsItem],
    *,
    header: bool = True,
) -> Iterator[tuple[str, ...]]:
    """Rows of ``boxes.csv`` (for ``csv.writer``): the header, then one row per box,
    ``path, label, wnid, xmin, ymin, xmax, ymax`` with whole output pixels (rounded half up; a box thinner than
    a pixel keeps one). Each item is ``(path, label, boxes)`` or ``(path, label, boxes, output_size)``."""
    if header:
        yield BOXES_CSV_HEADER
    for item in images:
        path, label, boxes = item[0], item[1], item[2]
        output_size = item[3] if len(item) > 3 else None
        for box in boxes:
            xmin, ymin, xmax, ymax = _integer_box(box, output_size)
            yield (path, str(label), box.wnid, str(xmin), str(ymin), str(xmax), str(ymax))


def quirk_counts(records: Iterable[ImageBoxes]) -> Counter[str]:
    """Quirk label -> occurrences, plus ``problem`` -> files with a problem, over many records."""
    counts: Counter[str] = Counter()
    for record in records:
        counts.update(record.quirks)
        if record.problem:
            counts["problem"] += 1
    return counts
