"""A plain script, with no ``if __name__ == "__main__":`` guard, calls ``imagenet_prep.build`` at its top level
on the first build of a fresh release (nothing cached: the devkit's meta.mat is parsed, numpy starts its BLAS
threads) and exits 0 on that FIRST run, with its workers started either way: from the forkserver (the process
runs other threads) and forked (BLAS limited to one thread, so the process stays single-threaded).

Negative control: the same script with the stock forkserver process class (the workers re-run the script, as
multiprocessing does by default) fails, so the first test can fail. docs/python-api.md's block runs the same way
(the README's Python block: tests/e2e/test_readme.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

SCRIPT = """
import json
import multiprocessing.forkserver

import imagenet_prep
{patch}
result = imagenet_prep.build(source="./release", out="./out", size=32, workers=2)
print(json.dumps({{
    "result": result.to_dict(),
    "forkserver": multiprocessing.forkserver._forkserver._forkserver_pid is not None,
    "check": imagenet_prep.check("./out").ok,
}}))
"""

STOCK_WORKERS = """
import multiprocessing.context
from imagenet_prep.executors import local
local._WorkerContext.Process = multiprocessing.context.ForkServerProcess
"""

ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_script(
    tmp_path: Path, patch: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Write a fresh release (a 66-image build runs the pool) and the script in ``tmp_path``, then run the
    script once with an empty cache."""
    from imagenet_prep.sample import SampleSpec, write_sample

    write_sample(tmp_path / "release", SampleSpec(classes=3, train_per_class=20, val_per_class=2, seed=3))
    (tmp_path / "script.py").write_text(SCRIPT.format(patch=patch))
    full_env = {key: value for key, value in os.environ.items() if key not in ONE_BLAS_THREAD}
    full_env.update(env or {})
    full_env["IMAGENET_PREP_CACHE"] = str(tmp_path / "empty-cache")
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("start", ["forkserver", "fork"])
def test_an_unguarded_script_builds_on_its_first_run(tmp_path: Path, start: str) -> None:
    done = run_script(tmp_path, env=ONE_BLAS_THREAD if start == "fork" else None)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["forkserver"] is (start == "forkserver")  # the start method this case is about
    result = report["result"]
    assert result["ok"] and result["images"] == 66 and result["images_built"] == 66
    assert result["per_split"] == {"train": 60, "val": 6}
    assert report["check"]
    assert (tmp_path / "out" / "build.json").is_file()


def test_without_the_mechanism_the_same_script_fails(tmp_path: Path) -> None:
    done = run_script(tmp_path, patch=STOCK_WORKERS)
    assert done.returncode != 0
    assert "BrokenProcessPool" in done.stderr or "worker process died" in done.stderr, done.stderr[-3000:]


def test_the_python_api_page_block_runs_as_a_plain_script(tmp_path: Path) -> None:
    """docs/python-api.md's first block ("Build, check, inspect"), pasted into a script beside a freshly sampled
    ``./ilsvrc-mini``, runs on its first try."""
    from imagenet_prep.sample import write_sample

    page = (REPO / "docs" / "python-api.md").read_text()
    code = page.split("```python\n", 1)[1].split("```", 1)[0]
    assert "imagenet_prep.build(" in code and "__main__" not in code
    write_sample(tmp_path / "ilsvrc-mini")
    (tmp_path / "block.py").write_text(code)
    env = {**os.environ, "IMAGENET_PREP_CACHE": str(tmp_path / "empty-cache")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "block.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("True ")  # result.ok, then the counts
    assert (tmp_path / "imagenet-mini-api" / "_info.json").is_file()  # output="wds"
