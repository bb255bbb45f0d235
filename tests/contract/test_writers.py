"""The contract every registered writer keeps, run over ``outputs.WRITERS`` itself (a new writer gets these
tests by its registry line): a kill -9 mid-build then the same command gives the same bytes; ``check`` catches a
truncated and a deleted file; a re-run rebuilds exactly the damaged units (every other unit's files keep their
inode and mtime) and ``check`` passes again; ``--out s3://`` (moto's server on 127.0.0.1) gives the same objects
for a writer that supports object stores (``Writer.shards``) and is refused for one that does not."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from support import build_argv
from support.kill_trial import kill_after_first_unit

from imagenet_prep.build import STATE_DIR, build
from imagenet_prep.config import build_config
from imagenet_prep.errors import UsageError
from imagenet_prep.outputs import WRITERS, check_output


@pytest.fixture(scope="session")
def contract_release(tmp_path_factory):
    from imagenet_prep.sample import SampleSpec, write_sample

    return write_sample(
        tmp_path_factory.mktemp("contract-release"),
        SampleSpec(classes=3, train_per_class=4, val_per_class=2, seed=21),
    )


def _options(output: str) -> dict[str, object]:
    """Small images; shard writers cut 3 samples a shard (so every writer has several units); the image options
    a writer needs (``Writer.needs``)."""
    shards = {"shard_size": "3", "shuffle_seed": 4} if WRITERS[output].shards else {}
    return {"output": output, "size": 24, "workers": 1, **shards, **WRITERS[output].needs}


def _argv(source: Path, out: str | Path, options: dict[str, object]) -> list[str]:
    flags = [part for key, value in options.items() for part in (f"--{key.replace('_', '-')}", str(value))]
    return build_argv(source, out, *flags, "--quiet")


def _hashes(out: Path) -> dict[str, str]:
    return {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file() and STATE_DIR not in path.relative_to(out).parts and path.name != "build.json"
    }


def _unit_files(out: Path) -> dict[str, list[str]]:
    """unit id -> the files its done marker records (relative to OUT)."""
    return {
        marker.stem: sorted(json.loads(marker.read_text())["files"])
        for marker in sorted((out / STATE_DIR / "done").glob("*.json"))
    }


@pytest.fixture(scope="module", params=sorted(WRITERS))
def clean(request, contract_release, tmp_path_factory):
    """A writer's name, a clean build of the release and its file hashes."""
    output = request.param
    out = tmp_path_factory.mktemp(f"contract-{output}") / "out"
    result = build(build_config({}, {"source": contract_release.root, "out": out, **_options(output)}))
    assert result.ok and result.units_total >= 4
    return output, out, result.units_total, _hashes(out)


def test_kill_9_mid_build_then_the_same_command_gives_the_same_bytes(clean, contract_release, tmp_path):
    output, _, units, expected = clean
    out = tmp_path / "out"
    argv = _argv(contract_release.root, out, _options(output))
    assert kill_after_first_unit(argv, out, units=units)
    assert not (out / "build.json").exists()  # killed mid-build
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _hashes(out) == expected
    assert check_output(out, decode=True).ok


def test_check_finds_a_truncated_and_a_deleted_file_and_a_rerun_rebuilds_only_those(
    clean, contract_release, tmp_path
):
    output, _, units, expected = clean
    out = tmp_path / "out"
    config = build_config({}, {"source": contract_release.root, "out": out, **_options(output)})
    assert build(config).ok
    unit_files = _unit_files(out)
    assert len(unit_files) == units and all(unit_files.values())  # every unit records its files
    (truncated_unit, truncated_files), (deleted_unit, deleted_files) = list(unit_files.items())[:2]
    truncated, deleted = out / truncated_files[0], out / deleted_files[-1]
    truncated.write_bytes(truncated.read_bytes()[:-7])
    deleted.unlink()

    report = check_output(out)
    assert not report.ok
    found = "\n".join(report.problems)
    assert truncated_files[0] in found and deleted_files[-1] in found
    assert report.repair is not None and "build" in report.repair

    kept = {
        rel: (os.stat(out / rel).st_ino, os.stat(out / rel).st_mtime_ns)
        for unit, files in unit_files.items()
        if unit not in (truncated_unit, deleted_unit)
        for rel in files
    }
    rerun = build(config)
    assert rerun.ok and rerun.units_rebuilt == 2 and rerun.units_resumed == units - 2
    assert {rel: (os.stat(out / rel).st_ino, os.stat(out / rel).st_mtime_ns) for rel in kept} == kept
    assert _hashes(out) == expected
    assert check_output(out, decode=True).ok


def test_out_s3_gives_the_local_bytes_where_the_writer_supports_it(clean, contract_release, request):
    output, _, _, expected = clean
    url = f"s3://contract/{output}"
    config = build_config({}, {"source": contract_release.root, "out": url, **_options(output)})
    if not WRITERS[output].shards:
        with pytest.raises(UsageError, match="object store takes shard outputs only"):
            build(config)
        return
    import boto3

    endpoint = request.getfixturevalue("s3_endpoint")
    request.getfixturevalue("s3_env")
    client = boto3.client("s3", endpoint_url=endpoint)
    if "contract" not in {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket="contract")
    assert build(config).ok
    objects = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="contract", Prefix=f"{output}/"):
        for item in page.get("Contents", []):
            rel = item["Key"][len(output) + 1 :]
            if not rel.startswith(f"{STATE_DIR}/") and rel != "build.json":
                data = client.get_object(Bucket="contract", Key=item["Key"])["Body"].read()
                objects[rel] = hashlib.sha256(data).hexdigest()
    assert objects == expected
