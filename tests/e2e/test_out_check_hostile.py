"""``check`` on a shard output with planted or altered files: a shard that is a FIFO or a link to /dev/zero, a
wrong Parquet schema, a null image, a non-integer label: each a reported problem (exit 1) within seconds, never a
hang or a traceback; ``finalize`` with a malformed plan.json: one line, exit 2. Real CLI processes, real FIFOs,
links and files written by pyarrow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import cli

from imagenet_prep.build.state import STATE_DIR
from imagenet_prep.sample import SampleSpec, write_sample

OPTIONS = ("--size", "16", "--workers", "1", "--quiet", "--splits", "train")
DEADLINE = (
    30  # seconds a check may take here (a few on a quiet machine); the hang it guards against is forever
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("check-hostile")
    release = write_sample(
        root / "release", SampleSpec(classes=2, train_per_class=3, val_per_class=1, seed=2)
    )
    outs = {}
    for output in ("wds", "parquet"):
        out = root / output
        done = cli("build", "--source", str(release.root), "--out", str(out), "--output", output, *OPTIONS)
        assert done.returncode == 0, done.stderr
        outs[output] = out
    return outs


def _copy(built: dict[str, Path], output: str, tmp_path: Path) -> Path:
    out = tmp_path / output
    shutil.copytree(built[output], out, symlinks=True)
    return out


def _shard(out: Path) -> Path:
    return next(iter(sorted(out.glob("imagenet-*.tar")) or sorted((out / "data").glob("*.parquet"))))


def _check_reports(out: Path, words: str) -> None:
    try:
        done = cli("check", str(out), timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        pytest.fail(f"check did not end within {DEADLINE} s")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert words in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.parametrize("output", ["wds", "parquet"])
def test_check_does_not_hang_on_a_shard_that_is_a_fifo(built, tmp_path, output):
    out = _copy(built, output, tmp_path)
    shard = _shard(out)
    shard.unlink()
    os.mkfifo(shard)
    _check_reports(out, "not a regular file")


@pytest.mark.parametrize("output", ["wds", "parquet"])
def test_check_does_not_read_a_shard_linked_to_dev_zero(built, tmp_path, output):
    out = _copy(built, output, tmp_path)
    shard = _shard(out)
    shard.unlink()
    shard.symlink_to("/dev/zero")
    _check_reports(out, "not a regular file")


def _rewrite_parquet(out: Path, change) -> None:
    import pyarrow.parquet as pq

    shard = _shard(out)
    table = pq.read_table(shard)
    pq.write_table(change(table), shard)
    # The done marker's recorded size would also flag it: keep the finding about the content itself.
    for marker in (out / STATE_DIR / "done").glob("*.json"):
        data = json.loads(marker.read_text())
        data["files"] = {rel: (out / rel).stat().st_size for rel in data.get("files", {})}
        marker.write_text(json.dumps(data))


def test_check_reports_a_parquet_shard_with_a_wrong_schema(built, tmp_path):
    import pyarrow as pa

    out = _copy(built, "parquet", tmp_path)
    _rewrite_parquet(
        out, lambda t: pa.table({"image": pa.array(["x"] * t.num_rows), "label": t.column("label")})
    )
    _check_reports(out, "schema")


def test_check_reports_a_null_image_in_a_parquet_shard(built, tmp_path):
    import pyarrow as pa

    out = _copy(built, "parquet", tmp_path)

    def null_first(table):
        images = table.column("image").to_pylist()
        images[0] = None
        return table.set_column(0, "image", pa.array(images, type=table.schema.field("image").type))

    _rewrite_parquet(out, null_first)
    _check_reports(out, "no image")


@pytest.mark.parametrize("output", ["wds", "parquet"])
def test_check_reports_a_non_integer_label_in_the_manifest(built, tmp_path, output):
    out = _copy(built, output, tmp_path)
    manifest = out / "train.csv"
    lines = manifest.read_text().splitlines()
    fields = lines[1].split(",")
    fields[2] = "seven"
    lines[1] = ",".join(fields)
    manifest.write_text("\n".join(lines) + "\n")
    _check_reports(out, "seven")


@pytest.mark.parametrize(
    "plan", ["{", "[]", '{"units": 3}', '{"units": [{"id": 1}]}', '{"fingerprint": "x"}']
)
def test_finalize_with_a_malformed_plan_is_one_line(built, tmp_path, plan):
    out = _copy(built, "wds", tmp_path)
    (out / STATE_DIR / "plan.json").write_text(plan)
    done = cli("finalize", str(out), timeout=DEADLINE)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "plan.json" in lines[0], done.stderr
