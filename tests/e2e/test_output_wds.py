"""The WebDataset output read back by the real `webdataset` package, tarfile and the DALI index format
(issue 11): every sample once with the manifest's label, .idx offsets and sizes, _info.json, check."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from imagenet_prep.build import build
from imagenet_prep.config import build_config
from imagenet_prep.outputs import check_output
from imagenet_prep.outputs.wds import read_idx

SHARD = 20  # samples per shard: the quirky release's 72 train + 36 val images make 4 + 2 shards


def read_rows(out: Path, split: str) -> list[dict[str, str]]:
    with (out / f"{split}.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def wds_out(quirky_release, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wds") / "out"
    values = {"source": quirky_release.root, "out": out, "size": 40, "workers": 2}
    result = build(build_config({}, {**values, "output": "wds", "shard_size": str(SHARD)}))
    assert result.images_written == quirky_release.num_images and not result.skipped
    return out


def test_webdataset_yields_every_sample_once_with_the_manifest_label(wds_out):
    import webdataset

    info = json.loads((wds_out / "_info.json").read_text())
    labels = (wds_out / "labels.txt").read_text().split()
    for split in ("train", "val"):
        rows = {row["key"]: row for row in read_rows(wds_out, split)}
        urls = [str(wds_out / name) for name in info["splits"][split]["filenames"]]
        seen: list[str] = []
        for sample in webdataset.WebDataset(urls, shardshuffle=False):
            key = sample["__key__"]
            seen.append(key)
            row = rows[key]
            label = int(sample["cls"])
            assert label == int(row["label"]) == labels.index(row["wnid"])
            meta = json.loads(sample["json"])
            assert meta == {
                "label": label,
                "wnid": row["wnid"],
                "width": int(row["width"]),
                "height": int(row["height"]),
                "filename": f"{key}.JPEG",
            }
            with Image.open(io.BytesIO(sample["jpg"])) as image:
                assert image.format == "JPEG" and image.mode == "RGB"
                assert image.size == (int(row["width"]), int(row["height"]))
        assert sorted(seen) == sorted(rows) and len(seen) == len(set(seen))


def test_dali_index_offsets_and_sizes_match_the_tar_members(wds_out):
    shards = sorted(wds_out.glob("imagenet-*.tar"))
    assert len(shards) == 6
    for shard in shards:
        with tarfile.open(shard) as archive:
            members = archive.getmembers()
        index = read_idx(shard.with_suffix(".idx"))
        assert (shard.with_suffix(".idx").read_text().splitlines()[0]) == f"v1.2 {len(index)}"
        entries = [entry for sample in index for entry in sample]
        assert [(name, offset, size) for _, offset, size, name in entries] == [
            (m.name, m.offset_data, m.size) for m in members
        ]
        raw = shard.read_bytes()
        for sample in index:
            assert [ext for ext, *_ in sample] == ["cls", "jpg", "json"]
            assert len({name.split(".")[0] for *_, name in sample}) == 1
            assert all(offset % 512 == 0 for _, offset, _, _ in sample)
        ext, offset, size, name = index[0][1]
        with tarfile.open(shard) as archive:
            assert raw[offset : offset + size] == archive.extractfile(name).read()
        # Deterministic, plain ustar members: integer mtime 0, no owner names, no PAX headers.
        assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" and not m.pax_headers for m in members)
        assert len(raw) % tarfile.RECORDSIZE == 0


def test_info_json_agrees_with_the_shards(wds_out, quirky_release):
    info = json.loads((wds_out / "_info.json").read_text())
    assert set(info["splits"]) == {"train", "val"}
    for split, expected in (("train", 72), ("val", 36)):
        split_info = info["splits"][split]
        assert split_info["name"] == split and split_info["num_samples"] == expected
        lengths = []
        for name in split_info["filenames"]:
            assert name.startswith(f"imagenet-{split}-") and (wds_out / name).is_file()
            with tarfile.open(wds_out / name) as archive:
                lengths.append(len({m.name.split(".")[0] for m in archive.getmembers()}))
        assert lengths == split_info["shard_lengths"] and sum(lengths) == expected
        assert all(length <= SHARD for length in lengths)
        assert sorted({row["shard"] for row in read_rows(wds_out, split)}) == sorted(split_info["filenames"])


def test_quirk_files_come_out_as_rgb_jpegs(wds_out, quirky_release):
    """The CMYK and PNG-named-JPEG originals are repaired like in the ImageFolder output."""
    record = json.loads((wds_out / "build.json").read_text())
    repaired = {Path(item["file"]).name for item in record["repaired"]}
    assert {name for name in quirky_release.quirk_files if name.endswith(".JPEG")} >= {
        "n01739381_1309.JPEG",
        "n02105855_2933.JPEG",
    }
    assert {"n01739381_1309.JPEG", "n02105855_2933.JPEG"} <= repaired
    assert record["config"]["output"] == "wds" and record["config"]["shard_size"] == str(SHARD)


def test_check_passes_and_finds_a_changed_label(wds_out, tmp_path):
    checked = subprocess.run(
        [sys.executable, "-m", "imagenet_prep", "check", str(wds_out), "--decode"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr
    assert "Checked 108 images" in checked.stdout

    copy = tmp_path / "copy"
    shutil.copytree(wds_out, copy)
    shard = copy / "imagenet-train-000001.tar"
    ext, offset, size, name = read_idx(shard.with_suffix(".idx"))[3][0]
    assert ext == "cls"
    data = bytearray(shard.read_bytes())
    old = data[offset : offset + size]
    data[offset : offset + size] = b"9" * size if old != b"9" * size else b"8" * size
    shard.write_bytes(bytes(data))
    (copy / "imagenet-val-000000.idx").unlink()
    report = check_output(copy, decode=False)
    assert not report.ok and report.checked == 108
    assert any(f"{name.split('.')[0]}: .cls" in problem for problem in report.problems)
    assert any("imagenet-val-000000.idx: missing" in problem for problem in report.problems)
