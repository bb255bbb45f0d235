"""The DALI block of docs/outputs.md runs as written (paths pointed at a built miniature) where DALI is installed,
on the CPU when there is no GPU, and decodes every label: multi-digit ones included, in shard order."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

from imagenet_prep.build import build
from imagenet_prep.config import build_config

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nvidia.dali") is None,
    reason="NVIDIA DALI is not installed (pip install nvidia-dali-cuda120; it runs on the CPU too)",
)


def _dali_block() -> str:
    text = (REPO / "docs" / "outputs.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "nvidia.dali" in b]
    assert len(blocks) == 1
    return blocks[0]


def _run(code: str, cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{code}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_dali_block_runs_and_decodes_the_labels(quirky_release, tmp_path):
    out = tmp_path / "wds"
    build(
        build_config(
            {}, {"source": quirky_release.root, "out": out, "output": "wds", "size": 32, "workers": 2}
        )
    )
    with (out / "train.csv").open(newline="") as handle:
        manifest = [int(row["label"]) for row in csv.DictReader(handle)]
    assert max(manifest) >= 10  # two-digit labels: ASCII "10", "11" must decode as such
    code = _dali_block().replace("/data/imagenet-wds", str(out))
    report = (
        "\nimport json\nfirst = images.as_cpu().at(0) if gpu else images.at(0)\n"
        "print(json.dumps({'labels': label_ids, 'shape': list(first.shape)}))"
    )
    # As written: a batch of 256 shuffled samples (the reader wraps around the 72 images).
    ran = _run(code + report, tmp_path)
    assert len(ran["labels"]) == 256 and set(ran["labels"]) == set(manifest)
    assert len(ran["shape"]) == 3 and ran["shape"][2] == 3 and 32 in ran["shape"][:2]
    # In file order, one epoch in one batch: exactly the manifest's labels, in its order.
    ordered = code.replace("random_shuffle=True", "random_shuffle=False").replace(
        "batch_size=256", f"batch_size={len(manifest)}"
    )
    assert ordered != code
    assert _run(ordered + report, tmp_path)["labels"] == manifest
