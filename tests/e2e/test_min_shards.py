"""--min-shards: every shard output cuts a split into at least N shards (as its images allow), so a loader with
N workers x GPUs finds a shard for each; a split with fewer than 16 shards gets one warning line saying what to
do; the option is recorded and repeated by the repair command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from support import build_argv, cli

from imagenet_prep.outputs.record import repair_command


def _shards(out: Path, split: str) -> dict[str, list[tuple[str, str]]]:
    """shard -> its (key, label) rows, from the manifest (the parquet output publishes val as validation)."""
    found: dict[str, list[tuple[str, str]]] = {}
    name = "validation" if split == "val" and (out / "validation.csv").is_file() else split
    with (out / f"{name}.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            found.setdefault(row["shard"], []).append((row["key"], row["label"]))
    return found


def _read_back(out: Path, output: str, shards: list[str]) -> list[tuple[str, int]]:
    """(key, label) of every sample, read by the real reader of the format."""
    if output == "wds":
        import webdataset

        urls = [str(out / shard) for shard in shards]
        return [(s["__key__"], int(s["cls"])) for s in webdataset.WebDataset(urls, shardshuffle=False)]
    import pyarrow.parquet as pq

    rows = []
    for shard in shards:  # the Hub's layout: an image struct (bytes, path = key + suffix) and an int label
        table = pq.read_table(out / shard).to_pylist()
        rows += [(row["image"]["path"].partition(".")[0], row["label"]) for row in table]
    return rows


@pytest.mark.parametrize("output", ["wds", "parquet"])
def test_min_shards_gives_each_split_enough_shards(quirky_release, tmp_path, output):
    common = ("--output", output, "--size", "32", "--workers", "2", "--shard-size", "1000", "-q")
    plain = cli(*build_argv(quirky_release.root, tmp_path / "plain", *common)[3:])
    assert plain.returncode == 0, plain.stderr
    few = [line for line in plain.stderr.splitlines() if "fewer than 16" in line]
    assert sorted(line.split(":")[1].strip() for line in few) == ["train", "val"], plain.stderr
    assert all("--min-shards N" in line for line in few)
    assert len(_shards(tmp_path / "plain", "val")) == 1

    out = tmp_path / "many"
    done = cli(*build_argv(quirky_release.root, out, *common, "--min-shards", "16")[3:])
    assert done.returncode == 0, done.stderr
    assert "fewer than 16" not in done.stderr  # both splits hold 16 or more images
    for split in ("train", "val"):
        shards = _shards(out, split)
        sizes = [len(rows) for rows in shards.values()]
        assert len(shards) == 16 and max(sizes) - min(sizes) <= 1, sizes
        # the same samples as the one-shard build, read back by the format's own reader
        expected = sorted(
            (k, int(label)) for rows in _shards(tmp_path / "plain", split).values() for k, label in rows
        )
        assert sorted(_read_back(out, output, list(shards))) == expected
    record = json.loads((out / "build.json").read_text())
    assert record["config"]["min_shards"] == 16 and "--min-shards 16" in repair_command(out)


def test_min_shards_is_refused_for_the_imagefolder_output(quirky_release, tmp_path):
    done = cli(*build_argv(quirky_release.root, tmp_path / "out", "--min-shards", "4")[3:])
    assert done.returncode == 2 and "--min-shards applies to --output" in done.stderr
    assert not (tmp_path / "out").exists()
