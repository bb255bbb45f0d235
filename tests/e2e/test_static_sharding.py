"""Static sharding for job arrays (issue 12 item 2): `--num-shards N --shard-index I` as separate processes, in
any order and at once, into one OUT; `imagenet-prep finalize OUT` then writes the same bytes as one build, and
exits 1 naming the missing units and shards while some are not done."""

from __future__ import annotations

import json
import subprocess

import pytest
from support import cli_argv, snapshot

from imagenet_prep.build import build
from imagenet_prep.build.orchestrator import finalize
from imagenet_prep.build.state import assign_shards
from imagenet_prep.config import build_config
from imagenet_prep.errors import UsageError
from imagenet_prep.outputs.imagefolder_check import check_tree
from imagenet_prep.records import ByteLocation, Sample, WorkUnit

OPTIONS = ("--resize", "shorter", "--size", "32", "--workers", "1", "--quiet")


@pytest.fixture(scope="module")
def release(dog_release):
    return dog_release  # shared with other tests (conftest): 7 classes x (5 train + 2 val)


@pytest.fixture(scope="module")
def reference(release, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("shard-reference") / "out"
    values = {"source": release.root, "out": out, "resize": "shorter", "size": 32, "workers": 1}
    assert build(build_config({}, values)).ok
    tree = snapshot(out)
    assert sum(name.endswith(".JPEG") for name in tree) == 7 * 5 + 7 * 2
    return tree


def test_three_shards_in_any_order_then_finalize_give_the_bytes_of_one_build(release, reference, tmp_path):
    out = tmp_path / "out"

    def shard(index: int) -> subprocess.Popen:
        argv = cli_argv("build", "--source", str(release.root), "--out", str(out), *OPTIONS)
        return subprocess.Popen(
            [*argv, "--num-shards", "3", "--shard-index", str(index)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # Shards 2 and 0 at once (they race on preparing OUT and on writing state.json/plan.json).
    running = [shard(2), shard(0)]
    for proc in running:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert not (out / "train.csv").exists(), "a shard must not finalize"

    early = subprocess.run(cli_argv("finalize", str(out)), capture_output=True, text=True)
    assert early.returncode == 1
    assert "shard 1 of --num-shards 3" in early.stderr
    assert "Traceback" not in early.stderr

    # The third shard in this process (the library call a job array's task makes through the CLI).
    values = {"source": release.root, "out": out, "resize": "shorter", "size": 32, "workers": 1}
    late = build(build_config({}, {**values, "num_shards": 3, "shard_index": 1}))
    assert late.shard == (1, 3) and not (out / "train.csv").exists()
    result = finalize(out)
    assert result.images_written == 7 * 5 + 7 * 2 and result.ok
    assert snapshot(out) == reference
    assert json.loads((out / "build.json").read_text())["units"]["total"] == 8
    assert check_tree(out, decode=True).ok


def test_shards_are_deterministic_balanced_and_cover_every_unit_once():
    def unit(uid: str, n: int) -> WorkUnit:
        sample = Sample("train", "k", "n01440764", 0, "k.JPEG", ByteLocation("x", 0, 1))
        return WorkUnit("train", uid, "ilsvrc", (sample,) * n)

    units = [unit(f"u{i:02d}", size) for i, size in enumerate([50, 50, 30, 20, 20, 10, 10, 10, 5, 5])]
    shards = assign_shards(units, 3)
    assert shards == assign_shards(list(reversed(units)), 3), "the split must not depend on the plan's order"
    ids = sorted(u.unit_id for shard in shards for u in shard)
    assert ids == sorted(u.unit_id for u in units)
    loads = [sum(len(u.samples) for u in shard) for shard in shards]
    assert max(loads) - min(loads) <= 10, loads


def test_shard_options_are_validated(release, tmp_path):
    base = {"source": str(release.root), "out": str(tmp_path / "o")}
    with pytest.raises(UsageError, match="go together"):
        build_config({}, {**base, "num_shards": 3})
    with pytest.raises(UsageError, match="0..2"):
        build_config({}, {**base, "num_shards": 3, "shard_index": 3})
    with pytest.raises(UsageError, match="overwrite"):
        build_config({}, {**base, "num_shards": 3, "shard_index": 0, "overwrite": True})
