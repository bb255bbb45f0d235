"""The TFRecord, TFDS and MDS outputs give the same bytes whatever the worker count and executor: one worker,
two local workers (forked processes) and a Dask LocalCluster (two processes) build the same tree."""

from __future__ import annotations

import pytest
from support import run_build
from support.tree import tree_hashes

pytest.importorskip("google_crc32c")

OUTPUTS = ("tfrecord", "tfds", "mds")


@pytest.mark.parametrize("output", OUTPUTS)
def test_one_and_two_workers_write_the_same_bytes(output, quirky_release, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_build(quirky_release, one, output=output, shard_size="5", workers=1).ok
    assert run_build(quirky_release, two, output=output, shard_size="5", workers=2).ok
    hashes = tree_hashes(one)
    shards = [
        name for name in hashes if ("-of-" in name and not name.endswith(".idx")) or name.endswith(".mds")
    ]
    assert len(shards) >= 4
    assert hashes == tree_hashes(two)


def test_dask_writes_the_same_bytes_as_the_local_pool(quirky_release, tmp_path):
    pytest.importorskip("distributed")
    for output in OUTPUTS:
        local, dask = tmp_path / f"{output}-local", tmp_path / f"{output}-dask"
        assert run_build(quirky_release, local, output=output, shard_size="5", workers=2).ok
        assert run_build(
            quirky_release, dask, output=output, shard_size="5", executor="dask", scheduler="local:2"
        ).ok
        assert tree_hashes(local) == tree_hashes(dask), output
