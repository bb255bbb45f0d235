"""Builds with --boxes (boxes.csv in output pixels, counts in build.json) and --real-labels (val.csv column)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from imagenet_prep.build import build
from imagenet_prep.config import build_config
from imagenet_prep.outputs import check_output
from imagenet_prep.sample import SampleSpec, write_sample
from imagenet_prep.sample.boxes import write_bbox

WNIDS = ("n01751748", "n04228054", "n09193705")  # sea snake, ski (795), alp (970)
SEED = 128  # the seed whose val sample holds ILSVRC2012_val_00000001 and _00000002


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("bbox-release")
    spec = SampleSpec(classes=3, wnids=WNIDS, train_per_class=4, val_per_class=4, seed=SEED)
    write_sample(root, spec)
    write_bbox(root, seed=1)
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _xml_boxes(root: Path) -> dict[str, tuple[tuple[int, int], list[tuple[float, ...]]]]:
    """stem -> (declared size, boxes as written, min/max put right): an independent reading of the archives."""
    found = {}
    for name in ("ILSVRC2012_bbox_train_v2.tar.gz", "ILSVRC2012_bbox_val_v3.tgz"):
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress((root / name).read_bytes()))) as tar:
            for info in tar:
                xml = ET.fromstring(tar.extractfile(info).read())
                size = (int(xml.findtext("size/width")), int(xml.findtext("size/height")))
                boxes = []
                for obj in xml.iter("object"):
                    x0, y0, x1, y1 = (
                        float(obj.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")
                    )
                    boxes.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
                found[Path(info.name).stem] = (size, boxes)
    return found


def _expected(box, size, out, mode):
    """The box in output pixels, or None when the crop leaves nothing of it."""
    (w, h), (ow, oh) = size, out
    x0, y0, x1, y1 = box
    if mode == "center-crop":
        side = min(w, h)
        left, top = (w - side) / 2, (h - side) / 2
        x0, x1 = max(x0, left), min(x1, left + side)
        y0, y1 = max(y0, top), min(y1, top + side)
        if x1 <= x0 or y1 <= y0:
            return None
        scale = ow / side
        return ((x0 - left) * scale, (y0 - top) * scale, (x1 - left) * scale, (y1 - top) * scale)
    return (x0 * ow / w, y0 * oh / h, x1 * ow / w, y1 * oh / h)


@pytest.mark.parametrize(("mode", "size"), [("shorter", 32), ("square", 24), ("center-crop", 24)])
def test_every_output_box_is_the_xml_box_through_the_resize(release, tmp_path, mode, size):
    out = tmp_path / mode
    build(
        build_config(
            {}, {"source": release, "out": out, "workers": 2, "boxes": True, "resize": mode, "size": size}
        )
    )
    xml = _xml_boxes(release)
    manifest = {r["path"]: r for split in ("train", "val") for r in _rows(out / f"{split}.csv")}
    written: dict[str, list[tuple[int, ...]]] = {}
    for row in _rows(out / "boxes.csv"):
        assert row["wnid"] == manifest[row["path"]]["wnid"]  # every box is of the image's class here
        assert row["label"] == manifest[row["path"]]["label"]
        written.setdefault(row["path"], []).append(
            tuple(int(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        )
    kept = dropped = clipped = 0
    for path, row in manifest.items():
        stem = Path(path).stem
        if stem not in xml:
            assert path not in written
            continue
        size_in, boxes = xml[stem]
        out_size = (int(row["width"]), int(row["height"]))
        expected = [_expected(b, size_in, out_size, mode) for b in boxes]
        dropped += sum(e is None for e in expected)
        expected = [e for e in expected if e is not None]
        kept += len(expected)
        got = written.get(path, [])
        assert len(got) == len(expected), path
        for g, e in zip(got, expected, strict=True):
            assert all(abs(a - b) <= 1 for a, b in zip(g, e, strict=True)), (path, g, e)
        if mode == "center-crop":
            side = min(size_in)
            left, top = (size_in[0] - side) / 2, (size_in[1] - side) / 2
            clipped += sum(
                1
                for b in boxes
                if _expected(b, size_in, out_size, mode) is not None
                and (b[0] < left or b[1] < top or b[2] > left + side or b[3] > top + side)
            )
    record = json.loads((out / "build.json").read_text())["boxes"]
    assert record["images_with_boxes"] == sum(Path(p).stem in xml for p in manifest)
    assert (record["kept"], record["dropped"], record["clipped"]) == (kept, dropped, clipped)
    assert kept > 0 and (mode != "center-crop" or dropped + clipped > 0)
    quirks = record["annotation_quirks"]
    assert quirks.get("reversed-coordinates", 0) > 0 and quirks.get("float-coordinate", 0) > 0
    assert check_output(out).ok


def test_real_labels_column_in_the_built_class_order(release, tmp_path):
    full = tmp_path / "full"
    options = {"source": release, "workers": 2, "splits": "val", "real_labels": True, "resize": "none"}
    build(build_config({}, {**options, "out": full, "label_space": "imagenet-1k"}))
    rows = {Path(r["path"]).stem: r for r in _rows(full / "val.csv")}
    assert set(rows["ILSVRC2012_val_00000002"]["real_labels"].split()) == {"795", "970"}
    assert rows["ILSVRC2012_val_00000001"]["real_labels"] == ""  # excluded by ReaL
    assert rows["ILSVRC2012_val_00000002"]["label"] == "970"
    # A 3-class build: indices into its own sorted classes (ski = 1, alp = 2).
    small = tmp_path / "small"
    build(build_config({}, {**options, "out": small}))
    rows = {Path(r["path"]).stem: r for r in _rows(small / "val.csv")}
    assert rows["ILSVRC2012_val_00000002"]["real_labels"] == "1 2"
    assert check_output(small).ok
    # Without the option val.csv keeps exactly the standard columns.
    plain = tmp_path / "plain"
    build(build_config({}, {**options, "out": plain, "real_labels": False}))
    assert (plain / "val.csv").read_text().splitlines()[0] == "path,label,wnid,width,height"


def test_boxes_survive_a_resume_and_kaggle_csv_boxes_are_read(release, tmp_path):
    out = tmp_path / "resume"
    options = {"source": release, "out": out, "workers": 2, "boxes": True, "real_labels": True, "size": 32}
    build(build_config({}, options))
    first = {name: (out / name).read_bytes() for name in ("boxes.csv", "val.csv", "train.csv")}
    markers = sorted((out / ".imagenet-prep" / "done").glob("*.json"))
    assert markers
    build(build_config({}, options))  # every unit resumes from its done marker
    assert {name: (out / name).read_bytes() for name in first} == first
    # Kaggle's LOC_val_solution.csv where the VOC archive is absent: the same boxes for the same images.
    kaggle = tmp_path / "kaggle"
    kaggle.mkdir()
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz"):
        (kaggle / name).symlink_to(release / name)
    xml = _xml_boxes(release)
    lines = ["ImageId,PredictionString"]
    for stem, (_, boxes) in sorted(xml.items()):
        if stem.startswith("ILSVRC2012_val_"):
            label = next(r for r in _rows(out / "val.csv") if Path(r["path"]).stem == stem)["wnid"]
            lines.append(f"{stem}," + " ".join(f"{label} {' '.join(str(int(v)) for v in b)}" for b in boxes))
    (kaggle / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    from_csv = tmp_path / "from-csv"
    build(build_config({}, {**options, "source": kaggle, "out": from_csv, "splits": "val"}))
    expected = [
        r for r in csv.reader(first["boxes.csv"].decode().splitlines()) if r[0].startswith(("val/", "path"))
    ]
    got = list(csv.reader((from_csv / "boxes.csv").read_text().splitlines()))
    assert len(got) == len(expected) > 1
    for g, e in zip(got[1:], expected[1:], strict=True):
        assert g[:3] == e[:3] and all(abs(int(a) - int(b)) <= 1 for a, b in zip(g[3:], e[3:], strict=True))


def test_shard_outputs_carry_the_same_boxes_in_each_sample_json(release, tmp_path):
    """--boxes with --output wds: every sample's .json holds its boxes, equal to boxes.csv of the same build as
    an ImageFolder (the issue: boxes.csv, and the boxes in each sample's .json for shard outputs)."""
    options = {"source": release, "resize": "square", "size": 24, "workers": 1, "boxes": True}
    build(build_config({}, {**options, "out": tmp_path / "tree"}))
    build(build_config({}, {**options, "out": tmp_path / "wds", "output": "wds", "shuffle": False}))
    expected: dict[str, list[list[object]]] = {}
    for row in _rows(tmp_path / "tree" / "boxes.csv"):
        stem = Path(row["path"]).stem
        box = [row["wnid"], *(int(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))]
        expected.setdefault(stem, []).append(box)
    assert expected, "the release must hold boxes"
    found: dict[str, list[list[object]]] = {}
    for shard in sorted((tmp_path / "wds").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for info in tar:
                if info.name.endswith(".json"):
                    meta = json.loads(tar.extractfile(info).read())
                    if meta.get("boxes"):
                        found[info.name[: -len(".json")]] = meta["boxes"]
    assert found == expected
