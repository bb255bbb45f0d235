"""`--out gs://bucket/prefix` with a shard output, against gcp-storage-emulator on 127.0.0.1 (as
tests/e2e/test_source_gcs.py): the bucket holds the same objects as a local build, every done marker sits beside
its shard's objects, the lock is released, and a re-run finds every unit finished. (The lock's conditional create,
gcsfs ``mode="create"`` = ``ifGenerationMatch=0``, is not honoured by the emulator, so a held lock cannot be
tested here; the read-back after the put still refuses a build whose put lost.)"""

from __future__ import annotations

import hashlib
import json

import pytest
from support import run_build
from support.tree import tree_hashes

emulator = pytest.importorskip(
    "gcp_storage_emulator.server", reason="needs the test extra (gcp-storage-emulator)"
)
pytest.importorskip("google_crc32c")


def test_tfrecord_shards_into_a_gcs_bucket_are_the_local_build(gcs_endpoint, quirky_release, tmp_path):
    from imagenet_prep.io.objectstore import filesystem

    local = tmp_path / "local"
    assert run_build(quirky_release, local, output="tfrecord", shard_size="9").ok
    result = run_build(quirky_release, "gs://imagenet/imagenet/v1", output="tfrecord", shard_size="9")
    assert result.ok and result.units_total >= 4
    fs = filesystem("gs")
    root = "imagenet/imagenet/v1/"
    objects = {
        path[len(root) :]: hashlib.sha256(fs.cat_file(path)).hexdigest()
        for path in fs.find(root)
        if not path[len(root) :].startswith(".imagenet-prep/") and not path.endswith("build.json")
    }
    assert objects == tree_hashes(local)
    markers = [p for p in fs.find(root + ".imagenet-prep/done/")]
    assert len(markers) == result.units_total
    for marker in markers:
        for name, size in json.loads(fs.cat_file(marker))["files"].items():
            assert fs.size(root + name) == size
    assert not fs.exists(root + ".imagenet-prep/lock")  # released
    again = run_build(quirky_release, "gs://imagenet/imagenet/v1", output="tfrecord", shard_size="9")
    assert again.ok and again.units_resumed == again.units_total and again.units_rebuilt == 0
