"""Shards as work units (issue 11): seeded shuffle, shard sizes, repack without re-encoding (--resize none),
--no-verify, options refused for ImageFolder, and kill -9 mid-build then resume byte-identical."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from support import build_argv as cli_build_argv
from support import snapshot

from imagenet_prep.build import build
from imagenet_prep.config import build_config
from imagenet_prep.errors import UsageError
from imagenet_prep.image import ImageFailure, ImageOptions, ImageResult, process_image
from imagenet_prep.io.atomic import TMP_MARK
from imagenet_prep.outputs import check_output, writer_for
from imagenet_prep.outputs.shards import ShardSize, cut_shards, parse_shard_size
from imagenet_prep.records import ByteLocation, Sample


def run(release, out: Path, **options):
    values = {"source": release.root, "out": out, "size": 32, "workers": 2, "output": "wds"}
    values.update(options)
    return build(build_config({}, values))


def shard_rows(out: Path, split: str) -> dict[str, list[dict[str, str]]]:
    by_shard: dict[str, list[dict[str, str]]] = {}
    with (out / f"{split}.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_shard.setdefault(row["shard"], []).append(row)
    return by_shard


# --------------------------------------------------------------------------------------------------- shuffle
def test_same_seed_same_bytes_other_seed_other_order_same_multiset(quirky_release, tmp_path):
    first = run(quirky_release, tmp_path / "a", shard_size="12", splits="train")
    assert first.images_written == 72
    run(quirky_release, tmp_path / "b", shard_size="12", splits="train", workers=1)
    run(quirky_release, tmp_path / "c", shard_size="12", splits="train", shuffle_seed=1)
    a, b, c = (snapshot(tmp_path / name) for name in "abc")
    assert a == b  # same seed (and another worker count): identical shards, index, manifests
    assert a != c

    def order(name: str) -> list[tuple[str, str]]:
        rows = [row for rows in shard_rows(tmp_path / name, "train").values() for row in rows]
        return [(row["key"], row["label"]) for row in rows]

    assert order("a") != order("c") and Counter(order("a")) == Counter(order("c"))
    for name in "ac":  # 12 classes: no shard of 12 shuffled samples holds a single class
        for shard, rows in shard_rows(tmp_path / name, "train").items():
            assert len({row["wnid"] for row in rows}) > 1, shard
    # Without shuffle, train is in (class, key) order: the shards are single-class runs.
    run(quirky_release, tmp_path / "d", shard_size="6", splits="train", shuffle=False)
    unshuffled = shard_rows(tmp_path / "d", "train")
    assert all(len({row["wnid"] for row in rows}) == 1 for rows in unshuffled.values())


def test_val_keeps_file_order(quirky_release, tmp_path):
    run(quirky_release, tmp_path / "out", shard_size="10", splits="val")
    keys = [row["key"] for rows in shard_rows(tmp_path / "out", "val").values() for row in rows]
    assert keys == sorted(keys) and len(keys) == 36


def test_shard_sizes_in_samples_and_in_source_bytes():
    assert parse_shard_size("5000", "1GB") == ShardSize(5000, False)
    assert parse_shard_size(None, "1GB") == ShardSize(10**9, True)
    assert parse_shard_size("1.5GiB", "1GB") == ShardSize(int(1.5 * 2**30), True)
    assert parse_shard_size("500MB", "1GB") == ShardSize(500 * 10**6, True)
    for bad in ("0", "1.5", "ten", "5 parsecs", "-3"):
        with pytest.raises(UsageError, match="shard-size"):
            parse_shard_size(bad, "1GB")
    samples = [
        Sample("train", f"k{i}", "n01440764", 0, f"k{i}.JPEG", ByteLocation("x", 0, size))
        for i, size in enumerate([400, 300, 500, 2000, 100, 100])
    ]
    shards = cut_shards(samples, ShardSize(1000, True))
    assert [[s.key for s in shard] for shard in shards] == [["k0", "k1"], ["k2"], ["k3"], ["k4", "k5"]]
    assert [len(shard) for shard in cut_shards(samples, ShardSize(4, False))] == [4, 2]


def test_shard_options_are_refused_for_imagefolder(quirky_release, tmp_path):
    config = build_config({}, {"source": quirky_release.root, "out": tmp_path, "shard_size": "100"})
    with pytest.raises(UsageError, match="--shard-size applies to --output wds or parquet"):
        writer_for(config)
    done = subprocess.run(
        [sys.executable, "-m", "imagenet_prep", "build", "--source", str(quirky_release.root), "--out",
         str(tmp_path / "o"), "--output", "wds", "--shard-size", "lots"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "Invalid --shard-size 'lots'" in done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------------------------- repack
def train_member(release, wnid: str, name: str) -> bytes:
    with tarfile.open(release.train_tar) as outer:
        inner = outer.extractfile(f"{wnid}.tar").read()
    with tarfile.open(fileobj=io.BytesIO(inner)) as archive:
        return archive.extractfile(name).read()


@pytest.mark.parametrize("verify", [True, False], ids=["verify", "no-verify"])
def test_repack_keeps_the_original_bytes_and_repairs_quirks(quirky_release, tmp_path, verify):
    out = tmp_path / "out"
    wnids = ("n01440764", "n01739381")  # tench, and the class holding the CMYK quirk file
    result = run(quirky_release, out, resize="none", splits="train", classes=",".join(wnids), verify=verify)
    assert result.images_written == 12
    rows = {row["key"]: row for rows in shard_rows(out, "train").values() for row in rows}
    seen = 0
    for shard in sorted(out.glob("imagenet-train-*.tar")):
        with tarfile.open(shard) as archive:
            for member in archive.getmembers():
                key, _, ext = member.name.partition(".")
                if ext != "jpg":
                    continue
                seen += 1
                data = archive.extractfile(member).read()
                name = f"{key}.JPEG"
                original = train_member(quirky_release, rows[key]["wnid"], name)
                if quirky_release.quirk_files.get(name) in ("cmyk_jpeg", "png_disguised_as_jpeg"):
                    assert data != original
                    with Image.open(io.BytesIO(data)) as image:
                        assert image.mode == "RGB" and image.format == "JPEG"
                else:
                    assert data == original  # no re-encoding
    assert seen == 12
    config = json.loads((out / "build.json").read_text())["config"]
    assert config["verify"] is verify and config["resize"] == "none"
    assert check_output(out, decode=True).ok


def test_no_verify_skips_only_the_proof_decode(quirky_release):
    whole = train_member(quirky_release, "n01440764", quirky_release.train_files["n01440764"][0])
    cut = whole[: len(whole) // 2]
    checked = process_image(cut, ImageOptions(resize="none", size=None), "x.JPEG")
    assert isinstance(checked, ImageFailure) and checked.kind == "truncated"
    trusted = process_image(cut, ImageOptions(resize="none", size=None, verify=False), "x.JPEG")
    assert isinstance(trusted, ImageResult) and trusted.passthrough and trusted.data == cut


# ------------------------------------------------------------------------------------------------- kill -9
KILL_OPTIONS = ("--workers", "2", "--resize", "shorter", "--size", "32", "--shard-size", "10", "--quiet")


def build_argv(release, out: Path, output: str) -> list[str]:
    return cli_build_argv(release.root, out, "--output", output, *KILL_OPTIONS)


def committed(out: Path) -> int:
    found = list(out.glob("imagenet-*.tar")) + list((out / "data").glob("*.parquet"))
    return sum(1 for path in found if not path.name.startswith(TMP_MARK))


@pytest.mark.parametrize("output", ["wds", "parquet"])
def test_kill_9_mid_build_then_resume_is_byte_identical(quirky_release, tmp_path, output):
    """The quirky release in shards of 10 (8 train + 4 val units), killed once 3 shards are committed."""
    reference = tmp_path / "reference"
    run(quirky_release, reference, output=output, shard_size="10")  # the same options, in-process
    out = tmp_path / "out"
    # Its own session: the CLI, its forkserver and workers form one process group, killed together.
    proc = subprocess.Popen(
        build_argv(quirky_release, out, output),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        started = time.monotonic()
        while proc.poll() is None and committed(out) < 3 and time.monotonic() - started < 60:
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, "the kill must land before the build finishes"
    assert not (out / "build.json").exists()
    resumed = subprocess.run(
        build_argv(quirky_release, out, output), capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout  # the shards committed before the kill were kept
    leftovers = [p for p in out.rglob("*") if p.name.startswith(TMP_MARK)]
    assert leftovers == []
    assert snapshot(out) == snapshot(reference)
    assert check_output(out, decode=True).ok
