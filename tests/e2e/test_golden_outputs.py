"""Golden hashes: the example configs' outputs stay byte-identical across refactors.

The hashes in tests/data/golden_outputs.json were recorded from v0.1 (before the architecture refactor; the wds
and parquet cases before the writers shared a ShardWriter base) with
``IMAGENET_PREP_RECORD_GOLDEN=1 python -m pytest tests/e2e/test_golden_outputs.py``. A deliberate change of output
(a documented behaviour change) re-records them in the same commit, saying why.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import PIL
import pytest
from support import CONFIGS, TESTS_DATA

from imagenet_prep.config import build_config, read_config_file

GOLDEN = TESTS_DATA / "golden_outputs.json"
STATE_DIR = ".imagenet-prep"

# name -> (YAML config in configs/ or None, extra options)
CASES: dict[str, tuple[str | None, dict]] = {
    "ci-tiny": ("ci-tiny.yaml", {}),
    "imagenette-160": ("imagenette-160.yaml", {"train_per_class": 3}),
    "downsampled-64": ("downsampled-64.yaml", {}),
    "imagenet1k-full": ("imagenet1k-full.yaml", {}),
    "center-crop-webp": (None, {"resize": "center-crop", "size": 40, "format": "webp", "quality": 80}),
    "longer-original-bilinear": (
        None,
        {"resize": "longer", "size": 56, "format": "original", "filter": "bilinear"},
    ),
    "dogs-under-square-png": (None, {"under": "dog.n.01", "resize": "square", "size": 24, "format": "png"}),
    # The shard outputs: several train shards (a seeded permutation) and a val shard each.
    "ci-tiny-wds": ("ci-tiny.yaml", {"output": "wds", "shard_size": "16"}),
    "ci-tiny-parquet": ("ci-tiny.yaml", {"output": "parquet", "shard_size": "16", "shuffle_seed": 3}),
}


def _hashes(out: Path) -> dict[str, str]:
    return {
        str(path.relative_to(out)): hashlib.md5(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file() and STATE_DIR not in path.parts and path.name != "build.json"
    }


@pytest.fixture(scope="module")
def golden_release(tmp_path_factory):
    from imagenet_prep.sample import SampleSpec, write_sample

    # Imagenette + dogs + quirk classes, so the subset configs have their classes.
    return write_sample(
        tmp_path_factory.mktemp("golden-release"),
        SampleSpec(classes=14, train_per_class=5, val_per_class=2, quirks=True, seed=7),
    )


def _build_case(name: str, release, out: Path) -> dict[str, str]:
    from imagenet_prep.build import build

    config_file, extra = CASES[name]
    file_values = read_config_file(CONFIGS / config_file) if config_file else {}
    cli_values = {"source": release.root, "out": out, "workers": 2, "allow_skips": True, **extra}
    build(build_config(file_values, cli_values))
    return _hashes(out)


def test_example_configs_give_the_recorded_bytes(golden_release, tmp_path):
    results = {name: _build_case(name, golden_release, tmp_path / name) for name in CASES}
    for name, hashes in results.items():
        assert hashes, f"{name}: nothing was written"
    if os.environ.get("IMAGENET_PREP_RECORD_GOLDEN"):
        GOLDEN.write_text(
            json.dumps({"pillow": PIL.__version__, "cases": results}, indent=1, sort_keys=True) + "\n"
        )
    recorded = json.loads(GOLDEN.read_text())
    for name, hashes in results.items():
        expected = recorded["cases"][name]
        assert sorted(hashes) == sorted(expected), f"{name}: the set of output files changed"
        changed = [path for path in hashes if hashes[path] != expected[path]]
        assert not changed, (
            f"{name}: {len(changed)} files differ from the recorded bytes (recorded with Pillow "
            f"{recorded['pillow']}, running {PIL.__version__}), e.g. {changed[:3]}"
        )
