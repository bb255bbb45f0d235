"""`--source gs://bucket/prefix/` through gcsfs (issue 12 item 4) against gcp-storage-emulator on 127.0.0.1
(``STORAGE_EMULATOR_HOST``; read anonymously): the same tree as a local build, read by ranged GETs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from imagenet_prep.build import STATE_DIR, build
from imagenet_prep.config import build_config
from imagenet_prep.sample import SampleSpec, write_sample

OPTIONS = {"resize": "shorter", "size": 32, "workers": 1}


def _hashes(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and STATE_DIR not in p.relative_to(out).parts and p.name != "build.json"
    }


def test_a_build_from_gcs_gives_the_local_tree(gcs_endpoint, tmp_path):
    from imagenet_prep.io.objectstore import ObjectByteSource, filesystem

    release = write_sample(
        tmp_path / "release", SampleSpec(classes=3, train_per_class=3, val_per_class=2, seed=21)
    )
    fs = filesystem("gs")
    archives = 0
    for path in release.root.iterdir():
        if path.is_file():
            fs.pipe_file(f"gs://imagenet/ilsvrc2012/{path.name}", path.read_bytes())
            archives += path.stat().st_size

    # ranged reads from the emulator are exact (the whole source rests on them)
    val = next(path for path in release.root.iterdir() if "img_val" in path.name)
    remote = ObjectByteSource(f"gs://imagenet/ilsvrc2012/{val.name}")
    data = val.read_bytes()
    assert remote.size == len(data)
    for offset, size in ((0, 512), (512, 1), (1000, 70_000), (len(data) - 3, 10)):
        assert remote.read_at(offset, size) == data[offset : offset + size]

    local = tmp_path / "local"
    assert build(build_config({}, {"source": release.root, "out": local, **OPTIONS})).ok
    out = tmp_path / "from-gcs"
    result = build(build_config({}, {"source": "gs://imagenet/ilsvrc2012/", "out": out, **OPTIONS}))
    assert result.ok and result.images_written == 3 * 3 + 3 * 2
    assert _hashes(out) == _hashes(local)
    record = json.loads((out / "build.json").read_text())
    assert record["config"]["source"] == "gs://imagenet/ilsvrc2012/"
    assert 0 < record["bytes_read"]["images"] < archives
