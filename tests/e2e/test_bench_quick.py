"""`scripts/bench.py --quick` at a tiny size: one run writes results-quick.json with a number for each
performance item (the builds against the floor, planning with its projection, the streamed source, the fast
path) and prints its table; a second run reuses the releases it wrote."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import REPO

pytestmark = pytest.mark.slow

# --max-wait 0: measure file creation but never wait for it to be cheap (the suite's own deletions may have
# made it slow; the bench would otherwise wait for minutes).
TINY = ("--quick", "--images", "40", "--runs", "1", "--plan-scale", "0.001", "--workers", "2")
TINY += ("--max-wait", "0")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def test_quick_bench_reports_every_item(tmp_path):
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench.py"), *TINY, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results-quick.json").read_text())
    images = results["per_image"]
    for key in ("imagefolder-64/floor", "wds-64/floor", "cli-256/floor"):
        assert _number(images[key]), key
    assert images["images"] == 40
    planning = results["planning"]
    assert planning["members"] > 1000  # every one of the 1000 class tars holds at least one image
    for key in ("cold-index", "warm-plan", "imagenette"):
        entry = planning[key]
        assert all(_number(entry[k]) for k in ("seconds", "rss_mb", "projected_seconds", "projected_rss_mb"))
    # The projection grows with the member count; the Imagenette plan is its fixed part.
    assert planning["cold-index"]["projected_seconds"] > planning["cold-index"]["seconds"]
    assert _number(results["streamed"]["blurred/official"])
    fast = results["fast_path"]
    if fast["available"]:
        assert _number(fast["fast build/stock floor"]) and _number(fast["fast floor/stock floor"])
        assert fast["psnr db"]["min"] >= 45.0
    # File creation is probed before and after item 1 (the ImageFolder and CLI builds create a file per image).
    assert _number(results["file_create_ms"]) and _number(results["file_create_ms_after_item_1"])
    assert results["waited_for_cheap_creates_s"] < 20  # one probe, no wait: --max-wait 0
    for label in ("ImageFolder square-64 / floor", "cold index + plan", "blurred / official", "fast",
                  "creating a file:"):  # fmt: skip
        assert label in done.stdout
    assert not list(out.glob("quick-runs-*"))  # the run folders are gone; the releases stay for the next run
    assert (out / "quick-release" / "blurred").is_dir() and (out / "plan-release-0.001").is_dir()
