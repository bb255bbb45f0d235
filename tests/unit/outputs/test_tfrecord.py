"""--output tfrecord read back with TensorFlow itself (tf.data TFRecordDataset + parse_single_example with the
TPU feature spec): every label (sorted-wnid index + 1), synset, class words, file name, size and box; the DALI
index against record offsets found by parsing the framing here (not with the package's reader); check finds a
damaged record and a wrong index."""

from __future__ import annotations

import importlib.util
import io
import json
import struct
import tarfile
from pathlib import Path

import pytest
from PIL import Image
from support import run_build
from support.build import read_manifest

from imagenet_prep.outputs import check_output
from imagenet_prep.taxonomy import classes

google_crc32c = pytest.importorskip("google_crc32c")
if (
    importlib.util.find_spec("tensorflow") is None
):  # in the test extra; imported only by these tests (its threads
    pytest.skip(
        "needs tensorflow (the test extra)", allow_module_level=True
    )  # would make later builds forkserve)


def _masked(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frames(path: Path) -> list[tuple[int, int]]:
    """(offset, framed size) of each record, every CRC verified: TFRecord's published framing."""
    data, offset, found = path.read_bytes(), 0, []
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        assert struct.unpack_from("<I", data, offset + 8)[0] == _masked(data[offset : offset + 8])
        payload = data[offset + 12 : offset + 12 + length]
        assert struct.unpack_from("<I", data, offset + 12 + length)[0] == _masked(payload)
        found.append((offset, 16 + length))
        offset += 16 + length
    assert offset == len(data)
    return found


def tpu_spec():
    """The TPU scripts' feature spec (image, label, synset, text, file name, size, colour, boxes)."""
    import tensorflow as tf

    return {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/format": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
        "image/class/synset": tf.io.FixedLenFeature([], tf.string),
        "image/class/text": tf.io.FixedLenFeature([], tf.string),
        "image/filename": tf.io.FixedLenFeature([], tf.string),
        "image/height": tf.io.FixedLenFeature([], tf.int64),
        "image/width": tf.io.FixedLenFeature([], tf.int64),
        "image/colorspace": tf.io.FixedLenFeature([], tf.string),
        "image/channels": tf.io.FixedLenFeature([], tf.int64),
        **{
            f"image/object/bbox/{k}": tf.io.VarLenFeature(tf.float32)
            for k in ("xmin", "ymin", "xmax", "ymax")
        },
        "image/object/bbox/label": tf.io.VarLenFeature(tf.int64),
    }


def read_examples(out: Path, shard: str) -> list[dict]:
    import tensorflow as tf

    spec, examples = tpu_spec(), []
    for record in tf.data.TFRecordDataset(str(out / shard)):
        parsed = tf.io.parse_single_example(record, spec)
        examples.append(
            {
                k: (tf.sparse.to_dense(v).numpy().tolist() if isinstance(v, tf.SparseTensor) else v.numpy())
                for k, v in parsed.items()
            }
        )
    return examples


def tf_decode(data: bytes):
    import tensorflow as tf

    return tf.io.decode_jpeg(data)


@pytest.fixture(scope="module")
def built(quirky_release, tmp_path_factory):
    out = tmp_path_factory.mktemp("tfrecord") / "out"
    assert run_build(quirky_release, out, output="tfrecord", shard_size="7").ok
    return out


def test_tensorflow_reads_every_record_with_the_tpu_feature_spec(built):
    labels = built.joinpath("labels.txt").read_text().split()
    for split, name in (("train", "train"), ("val", "validation")):
        rows = read_manifest(built, split)
        shards = sorted({row["shard"] for row in rows})
        total = len(shards)
        assert shards == [f"{name}-{i:05d}-of-{total:05d}" for i in range(total)]
        seen = []
        for shard in shards:
            seen += [(shard, example) for example in read_examples(built, shard)]
        assert len(seen) == len(rows)
        for row, (shard, example) in zip(rows, seen, strict=True):
            assert row["shard"] == shard
            assert example["image/class/label"] == labels.index(row["wnid"]) + 1 == int(row["label"]) + 1
            assert example["image/class/synset"].decode() == row["wnid"]
            assert example["image/class/text"].decode() == classes.by_wnid(row["wnid"]).words
            assert example["image/filename"].decode() == f"{row['key']}.JPEG"
            assert (example["image/height"], example["image/width"]) == (
                int(row["height"]),
                int(row["width"]),
            )
            assert example["image/format"] == b"JPEG" and example["image/colorspace"] == b"RGB"
            assert example["image/channels"] == 3
            with Image.open(io.BytesIO(example["image/encoded"])) as image:
                assert image.format == "JPEG"
            image = tf_decode(example["image/encoded"])
            assert tuple(image.shape) == (int(row["height"]), int(row["width"]), 3)
            assert example["image/object/bbox/xmin"] == []  # no --boxes: no box features
    assert check_output(built).ok


def test_dali_index_matches_the_framing_of_every_shard(built):
    shards = sorted(p for p in built.glob("*-of-*") if p.suffix != ".idx")
    assert shards
    for shard in shards:
        lines = [
            tuple(map(int, line.split()))
            for line in shard.with_name(shard.name + ".idx").read_text().splitlines()
        ]
        assert lines == frames(shard)


def test_check_finds_a_flipped_payload_byte_and_a_wrong_index(built, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(built, out)
    shard = sorted(out.glob("train-*-of-*[0-9]"))[1]
    data = bytearray(shard.read_bytes())
    data[40] ^= 0xFF
    shard.write_bytes(bytes(data))
    index = sorted(out.glob("validation-*.idx"))[0]
    index.write_text(index.read_text().replace("0 ", "1 ", 1))
    report = check_output(out)
    assert not report.ok
    assert any(shard.name in p and "CRC" in p for p in report.problems)
    assert any(index.name in p for p in report.problems)


def test_boxes_are_normalised_by_the_output_size(tmp_path):
    from imagenet_prep.sample import SampleSpec, write_sample
    from imagenet_prep.sample.boxes import write_bbox

    root = tmp_path / "release"
    write_sample(root, SampleSpec(classes=3, train_per_class=4, val_per_class=3, seed=5))
    write_bbox(root, seed=1)

    class Release:
        pass

    release = Release()
    release.root = root
    out = tmp_path / "out"
    assert run_build(release, out, output="tfrecord", boxes=True).ok
    # The same build as WebDataset: its .json holds each image's boxes in output pixels (rounded).
    wds = tmp_path / "wds"
    assert run_build(release, wds, output="wds", boxes=True).ok
    boxes = {}
    for tar in wds.glob("*.tar"):
        with tarfile.open(tar) as archive:
            for member in archive:
                if member.name.endswith(".json"):
                    meta = json.loads(archive.extractfile(member).read())
                    boxes[member.name.partition(".")[0]] = meta.get("boxes", [])
    found = 0
    for split in ("train", "val"):
        rows = read_manifest(out, split)
        examples = [e for shard in sorted({r["shard"] for r in rows}) for e in read_examples(out, shard)]
        for row, example in zip(rows, examples, strict=True):
            mine = boxes[row["key"]]
            w, h = int(row["width"]), int(row["height"])
            assert len(example["image/object/bbox/xmin"]) == len(mine)
            assert example["image/object/bbox/label"] == [int(row["label"]) + 1] * len(mine)
            for i, box in enumerate(mine):
                found += 1
                for j, (name, size) in enumerate((("xmin", w), ("ymin", h), ("xmax", w), ("ymax", h))):
                    value = example[f"image/object/bbox/{name}"][i]
                    assert 0.0 <= value <= 1.0
                    assert value * size == pytest.approx(box[1 + j], abs=1.0)  # boxes.csv rounds outward
    assert found
