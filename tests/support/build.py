"""An in-process build with the tests' defaults, and a split's manifest read back."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from imagenet_prep.build import build
from imagenet_prep.config import build_config


def run_build(release, out: Path, **options):
    """Build ``release`` into ``out``: shorter side 48 px, one worker, unless ``options`` say otherwise."""
    values = {"source": release.root, "out": out, "resize": "shorter", "size": 48, "workers": 1}
    values.update(options)
    return build(build_config({}, values))


def read_manifest(out: Path, split: str) -> list[dict[str, str]]:
    with (out / f"{split}.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def build_record(source: Path, out: Path, **options) -> dict:
    """Build ``source`` into ``out`` with exactly ``options`` (no test defaults); returns its build.json."""
    result = build(build_config({}, {"source": str(source), "out": str(out), **options}))
    assert result.ok, result.skipped
    return json.loads((out / "build.json").read_text())


def build_allowing_skips(source: Path, out: Path, **options) -> dict:
    """An in-process build with one worker and --allow-skips (refused members are skipped images, listed in
    build.json); returns its build.json, whose skips are the build's."""
    values = {"source": str(source), "out": str(out), "workers": 1, "allow_skips": True, **options}
    result = build(build_config({}, values))
    record = json.loads((out / "build.json").read_text())
    assert len(result.skipped) == len(record["skipped"])
    return record
