"""Bounding boxes: VOC XML and Kaggle CSV parsing with every known quirk, and mapping through each resize mode,
checked against the pixels the real image pipeline produces."""

from __future__ import annotations

import csv
import io

import pytest
from PIL import Image, ImageDraw

from imagenet_prep import classes
from imagenet_prep.image import boxes
from imagenet_prep.image.boxes import Box, MapStats, map_box
from imagenet_prep.image.process import ImageOptions, ImageResult, OutputFormat, ResizeMode, process_image


def voc_xml(
    filename: str,
    width: object,
    height: object,
    objects: list[tuple[str, object, object, object, object]],
    folder: str = "n01751748",
) -> bytes:
    """An annotation in the exact layout of the ILSVRC2012 bbox archives."""
    parts = []
    for name, xmin, ymin, xmax, ymax in objects:
        parts.append(
            f"""	<object>
		<name>{name}</name>
		<pose>Unspecified</pose>
		<truncated>0</truncated>
		<difficult>0</difficult>
		<bndbox>
			<xmin>{xmin}</xmin>
			<ymin>{ymin}</ymin>
			<xmax>{xmax}</xmax>
			<ymax>{ymax}</ymax>
		</bndbox>
	</object>
"""
        )
    text = f"""<annotation>
	<folder>{folder}</folder>
	<filename>{filename}</filename>
	<source>
		<database>ILSVRC_2012</database>
	</source>
	<size>
		<width>{width}</width>
		<height>{height}</height>
		<depth>3</depth>
	</size>
	<segmented>0</segmented>
{"".join(parts)}</annotation>
"""
    return text.encode()


def jpeg(width: int, height: int, rect: tuple[int, int, int, int] | None = None) -> bytes:
    im = Image.new("RGB", (width, height), (0, 0, 0))
    if rect is not None:
        x0, y0, x1, y1 = rect
        ImageDraw.Draw(im).rectangle((x0, y0, x1 - 1, y1 - 1), fill=(255, 255, 255))  # covers [x0, x1)
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", quality=98, subsampling=0)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------ VOC


def test_voc_val_file_with_two_objects() -> None:
    data = voc_xml(
        "ILSVRC2012_val_00000001", 500, 375, [("n01751748", 111, 108, 441, 193), ("n01751748", 1, 2, 30, 40)]
    )
    record = boxes.parse_voc(data, "val/ILSVRC2012_val_00000001.xml")
    assert record.problem is None
    assert record.image_id == "ILSVRC2012_val_00000001"
    assert record.declared_size == (500, 375)
    assert record.boxes == (Box("n01751748", 111, 108, 441, 193), Box("n01751748", 1, 2, 30, 40))
    assert record.quirks == ()
    assert record.label == "n01751748" == classes.val_labels()[0]


def test_voc_quirks_float_reversed_not_wnid_and_percent_s_filename() -> None:
    objects = [
        ("n01440764", "10.5", "20.0", "100.25", "80"),  # floats kept
        ("n01440764", 300, 200, 100, 50),  # reversed on both axes: swapped
        ("dog", 5, 6, 7, 8),  # not a wnid: attributed to the image's label
        ("n02085620", 1, 1, 9, 9),  # another wnid: kept as written, counted
    ]
    data = voc_xml("%s", "500.0", "375", objects, folder="n01440764")
    record = boxes.parse_voc(data, "n01440764/n01440764_10026.xml")
    assert record.problem is None
    assert record.image_id == "n01440764_10026"
    assert record.declared_size == (500, 375)
    assert record.boxes == (
        Box("n01440764", 10.5, 20.0, 100.25, 80),
        Box("n01440764", 100, 50, 300, 200),
        Box("n01440764", 5, 6, 7, 8),
        Box("n02085620", 1, 1, 9, 9),
    )
    counts = boxes.quirk_counts([record])
    assert counts["float-coordinate"] == 4  # 10.5, 20.0, 100.25 and the declared width 500.0
    assert counts["reversed-coordinates"] == 1
    assert counts["name-not-wnid"] == 1
    assert counts["name-other-wnid"] == 1
    assert counts["problem"] == 0


def test_voc_label_given_by_caller_wins_for_not_wnid_names() -> None:
    data = voc_xml("x", 100, 100, [("unknown thing", 1, 2, 3, 4)])
    record = boxes.parse_voc(data, "somewhere/picture.xml", label="n03000684")
    assert record.boxes == (Box("n03000684", 1, 2, 3, 4),)
    no_label = boxes.parse_voc(data, "somewhere/picture.xml")
    assert no_label.boxes == (Box("", 1, 2, 3, 4),) and no_label.quirks == ("name-not-wnid",)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"<annotation><size><width>5</width>", "malformed XML"),
        (b"", "malformed XML"),
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
            b"<annotation><object><name>&lol2;</name></object></annotation>",
            "DTD",
        ),
        (b'<!ENTITY x SYSTEM "file:///etc/passwd"><annotation/>', "DTD"),
        (
            voc_xml("a", 10, 10, [("n01440764", "abc", 1, 2, 3)]),
            "xmin is not a number",
        ),
        (voc_xml("a", 10, 10, [("n01440764", "", 1, 2, 3)]), "missing xmin"),
        (voc_xml("a", 10, 10, [("n01440764", "nan", 1, 2, 3)]), "not finite"),
        (b"<annotation><object><name>n01440764</name></object></annotation>", "no <bndbox>"),
    ],
)
def test_voc_bad_files_are_problems_not_exceptions(data: bytes, needle: str) -> None:
    record = boxes.parse_voc(data, "n01440764/n01440764_1.xml")
    assert record.problem is not None and needle in record.problem
    assert record.image_id == "n01440764_1"
    assert boxes.quirk_counts([record])["problem"] == 1


def test_voc_oversized_file_is_refused_before_parsing() -> None:
    data = b"<annotation>" + b" " * boxes.MAX_XML_BYTES + b"</annotation>"
    record = boxes.parse_voc(data, "a/b.xml")
    assert record.problem is not None and "bytes" in record.problem


def test_voc_boxes_read_before_a_bad_object_are_kept() -> None:
    data = voc_xml("a", 10, 10, [("n01440764", 1, 1, 5, 5), ("n01440764", "x", 1, 2, 3)])
    record = boxes.parse_voc(data, "n01440764/n01440764_1.xml")
    assert record.problem is not None
    assert record.boxes == (Box("n01440764", 1, 1, 5, 5),)


def test_voc_missing_size_is_a_quirk() -> None:
    data = (
        b"<annotation><object><name>n01440764</name><bndbox>"
        b"<xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>"
    )
    record = boxes.parse_voc(data, "n01440764_7.xml")
    assert record.declared_size is None and record.quirks == ("no-size",) and record.problem is None
    assert record.boxes == (Box("n01440764", 1, 2, 3, 4),)


# ------------------------------------------------------------------------------------------------ CSV


def test_loc_solution_rows_unsorted_with_trailing_space() -> None:
    text = (
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00008726,n02119789 255 142 454 329 n02119789 44 21 322 295 \n"
        "n02017213_4263,n02017213 10 20 30 40\n"
        "ILSVRC2012_val_00000002,n09999999 9 8 3 4\n"
        "n01440764_1,n01440764 1 2 3\n"
        "n01440764_2,n01440764 a 2 3 4\n"
        "no_comma_here\n"
    )
    records = list(boxes.parse_loc_solution(io.StringIO(text)))
    assert [r.image_id for r in records] == [
        "ILSVRC2012_val_00008726",
        "n02017213_4263",
        "ILSVRC2012_val_00000002",
        "n01440764_1",
        "n01440764_2",
        "no_comma_here",
    ]
    assert records[0].boxes == (Box("n02119789", 255, 142, 454, 329), Box("n02119789", 44, 21, 322, 295))
    assert records[0].problem is None and records[0].label == "n02119789"
    assert records[1].boxes == (Box("n02017213", 10, 20, 30, 40),) and records[1].problem is None
    assert records[2].boxes == (Box("n09999999", 3, 4, 9, 8),)
    assert records[2].quirks == ("reversed-coordinates",)
    assert records[3].problem is not None and "groups of 5" in records[3].problem
    assert records[4].problem is not None and "not a number" in records[4].problem
    assert records[5].problem is not None and "no comma" in records[5].problem


def test_csv_and_xml_give_the_same_records() -> None:
    xml_record = boxes.parse_voc(
        voc_xml("%s", 500, 375, [("n02119789", 255, 142, 454, 329)]), "val/ILSVRC2012_val_00008726.xml"
    )
    (csv_record,) = boxes.parse_loc_solution(["ILSVRC2012_val_00008726,n02119789 255 142 454 329"])
    assert xml_record.boxes == csv_record.boxes


# ------------------------------------------------------------------------------------------------ mapping


def measured_box(result: ImageResult) -> tuple[int, int, int, int] | None:
    """Where the white rectangle ended up in the output: the bounding box of pixels brighter than half."""
    im = Image.open(io.BytesIO(result.data)).convert("L")
    return im.point(lambda v: 255 if v >= 128 else 0).getbbox()


CASES = [
    # (mode, size, upscale, source size)
    ("shorter", 64, False, (200, 150)),
    ("shorter", 64, False, (150, 200)),
    ("shorter", 256, True, (120, 90)),
    ("shorter", 256, False, (120, 90)),  # smaller source kept as it is
    ("longer", 80, False, (240, 130)),
    ("longer", 300, True, (130, 100)),
    ("square", 64, False, (200, 150)),
    ("square", 256, True, (90, 120)),
    ("square", 256, False, (90, 120)),
    ("center-crop", 64, False, (200, 150)),
    ("center-crop", 64, False, (150, 220)),
    ("center-crop", 256, True, (120, 90)),
    ("center-crop", 256, False, (120, 90)),
    ("none", None, False, (130, 90)),
]
# Source boxes as fractions of the source: inside, at the edges, and ones a center crop cuts or removes.
FRACTIONS = [
    (0.3, 0.3, 0.7, 0.7),
    (0.0, 0.0, 0.5, 0.4),
    (0.55, 0.5, 1.0, 1.0),
    (0.0, 0.2, 0.08, 0.8),  # left strip: outside a center crop of a landscape source
    (0.2, 0.0, 0.8, 0.07),  # top strip: outside a center crop of a portrait source
    (0.05, 0.1, 0.6, 0.9),
]


@pytest.mark.parametrize(("mode", "size", "upscale", "source"), CASES)
def test_map_box_matches_the_pixels_of_the_real_pipeline(
    mode: str, size: int | None, upscale: bool, source: tuple[int, int]
) -> None:
    options = ImageOptions(resize=ResizeMode(mode), size=size, upscale=upscale, format=OutputFormat.PNG)
    width, height = source
    stats = MapStats()
    output_size, region = boxes.box_geometry(source, options)
    for fx0, fy0, fx1, fy1 in FRACTIONS:
        rect = (round(fx0 * width), round(fy0 * height), round(fx1 * width), round(fy1 * height))
        result = process_image(jpeg(width, height, rect), options, "x.JPEG")
        assert isinstance(result, ImageResult)
        assert (result.width, result.height) == output_size
        assert (result.source_width, result.source_height) == source  # the real decoded JPEG size
        mapped = map_box(Box("n01440764", *rect), source, output_size, region, stats=stats)
        seen = measured_box(result)
        if mapped is None:
            assert seen is None, (rect, seen)
            continue
        assert seen is not None, (rect, mapped)
        for got, want in zip(seen, (mapped.xmin, mapped.ymin, mapped.xmax, mapped.ymax), strict=True):
            assert abs(got - want) <= 1.0, (rect, seen, mapped)
    assert stats.kept + stats.dropped == len(FRACTIONS)


def test_center_crop_counts_clipped_and_dropped() -> None:
    options = ImageOptions(resize=ResizeMode.CENTER_CROP, size=100)
    source = (400, 200)  # region: x 100..300, whole height; scale 0.5
    out, region = boxes.box_geometry(source, options)
    assert out == (100, 100) and region == (100.0, 0.0, 300.0, 200.0)
    stats = MapStats()
    inside = map_box(Box("w", 150, 20, 250, 120), source, out, region, stats=stats)
    cut = map_box(Box("w", 50, 0, 150, 200), source, out, region, stats=stats)
    gone = map_box(Box("w", 0, 0, 100, 200), source, out, region, stats=stats)  # touches the edge: zero area
    assert inside == Box("w", 25, 10, 75, 60)
    assert cut == Box("w", 0, 0, 25, 100)
    assert gone is None
    assert stats.as_dict() == {"kept": 2, "clipped": 1, "dropped": 1, "rescaled": 0}
    assert boxes.map_boxes([Box("w", 0, 0, 100, 200), Box("w", 150, 20, 250, 120)], source, options) == (
        Box("w", 25, 10, 75, 60),
    )


def test_boxes_overrunning_the_source_are_clamped_not_counted_as_clipped() -> None:
    stats = MapStats()
    mapped = map_box(Box("w", -5, -5, 120, 60), (100, 50), (200, 100), stats=stats)
    assert mapped == Box("w", 0, 0, 200, 100)
    assert stats.clipped == 0 and stats.kept == 1
    assert map_box(Box("w", 150, 0, 160, 10), (100, 50), (200, 100), stats=stats) is None
    assert stats.dropped == 1


def test_declared_size_differing_from_the_decoded_one_is_rescaled() -> None:
    data = voc_xml("a", 1000, 750, [("n01440764", 100, 150, 500, 600)])
    record = boxes.parse_voc(data, "n01440764/n01440764_3.xml")
    decoded = Image.open(io.BytesIO(jpeg(500, 375))).size  # the real image is half the declared size
    assert decoded == (500, 375)
    stats = MapStats()
    options = ImageOptions(resize=ResizeMode.SHORTER, size=75)  # 500x375 -> 100x75
    out, region = boxes.box_geometry(decoded, options)
    assert out == (100, 75)
    mapped = map_box(record.boxes[0], decoded, out, region, declared_size=record.declared_size, stats=stats)
    assert mapped == Box("n01440764", 10, 15, 50, 60)
    assert stats.rescaled == 1
    same = map_box(record.boxes[0], (1000, 750), (200, 150), declared_size=(1000, 750), stats=stats)
    assert same == Box("n01440764", 20, 30, 100, 120) and stats.rescaled == 1


# ------------------------------------------------------------------------------------------------ CSV rows


def test_boxes_csv_rows_round_to_whole_pixels_with_header() -> None:
    items: list[boxes.BoxRowsItem] = [
        ("train/n01440764/n01440764_1.JPEG", 0, [Box("n01440764", 10.5, 20.49, 30.2, 40.7)]),
        (
            "val/n01440764/ILSVRC2012_val_00000001.JPEG",
            0,
            [Box("n01440764", 99.8, 5.1, 100.0, 5.3)],
            (100, 80),
        ),
        ("train/n01443537/n01443537_2.JPEG", 1, []),
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(boxes.boxes_csv_rows(items))
    assert buffer.getvalue() == (
        "path,label,wnid,xmin,ymin,xmax,ymax\n"
        "train/n01440764/n01440764_1.JPEG,0,n01440764,11,20,30,41\n"
        "val/n01440764/ILSVRC2012_val_00000001.JPEG,0,n01440764,99,5,100,6\n"
    )
    assert list(boxes.boxes_csv_rows([], header=False)) == []


def test_image_ids_and_labels_from_names() -> None:
    assert boxes.image_id_of("ILSVRC/Annotations/CLS-LOC/val/ILSVRC2012_val_00000002.xml") == (
        "ILSVRC2012_val_00000002"
    )
    assert boxes.label_of_image_id("n02017213_4263") == "n02017213"
    assert boxes.label_of_image_id("ILSVRC2012_val_00000002") == classes.val_labels()[1]
    assert boxes.label_of_image_id("ILSVRC2012_val_00000000") is None
    assert boxes.label_of_image_id("holiday") is None
