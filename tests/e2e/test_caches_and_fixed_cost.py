"""Planning at scale and the fixed cost of a command (issue 14, items 6 and 7): an older index cache is
re-indexed, the parsed devkit is cached, and a small build runs without waiting for the pool."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from imagenet_prep.io import tar_index
from imagenet_prep.records import WorkUnit


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from imagenet_prep.sample import SampleSpec, write_sample

    return write_sample(
        tmp_path_factory.mktemp("ux-scale"), SampleSpec(classes=6, train_per_class=5, val_per_class=2, seed=8)
    )


def test_an_older_cache_format_is_reindexed(release, tmp_path):
    with tar_index.TrainArchive(release.train_tar, cache_dir=tmp_path) as archive:
        members = archive.members(release.wnids[0])
        path = archive.save()
    assert path is not None
    header = json.loads(path.read_bytes().split(b"\n", 1)[0])
    header["format"] = 2
    path.write_text(json.dumps(header) + "\n")
    with tar_index.TrainArchive(release.train_tar, cache_dir=tmp_path) as archive:
        assert not archive.has_members(release.wnids[0])  # ignored, not misread
        assert archive.members(release.wnids[0]) == members


def test_devkit_is_parsed_once_then_read_from_the_cache(release, tmp_path):
    from imagenet_prep.sources import devkit

    first = devkit.read_devkit_cached(release.devkit, cache_dir=tmp_path)
    cached = list(tmp_path.glob("*.parsed.json"))
    assert len(cached) == 1
    assert (
        devkit.read_devkit_cached(release.devkit, cache_dir=tmp_path)
        == first
        == devkit.read_devkit(release.devkit)
    )
    # a warm build never imports scipy (its import and meta.mat's parse were ~0.3 s of every command)
    code = (
        "import sys; from imagenet_prep.sources import devkit; "
        f"devkit.read_devkit_cached({str(release.devkit)!r}, cache_dir={str(tmp_path)!r}); "
        "print('scipy.io' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_unit_fingerprint_is_computed_once_and_unchanged(release):
    from imagenet_prep.config import build_config
    from imagenet_prep.plan import make_plan

    plan = make_plan(build_config({}, {"source": release.root, "out": release.root.parent / "o"}))
    unit = plan.units[0]
    again = WorkUnit(unit.split, unit.unit_id, unit.source, unit.samples)
    assert unit.fingerprint == again.fingerprint and unit.fingerprint is unit.fingerprint
