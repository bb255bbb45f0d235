"""`--out s3://bucket/prefix` for the shard outputs (issue 12 item 4) against moto's S3 server on 127.0.0.1: the
objects equal a local build's files, a build stopped mid-way (or killed -9) resumes from what the bucket holds to
the same objects, the real `webdataset` package reads the shards, ImageFolder is refused, one build per prefix."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support import build_argv

from imagenet_prep.build import STATE_DIR, build
from imagenet_prep.config import build_config
from imagenet_prep.errors import BuildInterrupted, InputError, OutputLockedError, UsageError
from imagenet_prep.sample import SampleSpec, write_sample

# In the test extra: never skipped here. The server and its environment: conftest.py (s3_endpoint, s3_env).
pytest.importorskip("moto.server", reason="needs the test extra (moto[server])")

OPTIONS = {"workers": 1, "size": 32, "shard_size": "3", "shuffle_seed": 5}


@pytest.fixture(scope="module")
def client(s3_env, s3_endpoint):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="datasets")
    s3.create_bucket(Bucket="shards")
    return s3


@pytest.fixture(scope="module")
def release(tmp_path_factory, client):
    release = write_sample(
        tmp_path_factory.mktemp("s3out-release"),
        SampleSpec(classes=3, train_per_class=4, val_per_class=2, seed=9),
    )
    for path in release.root.iterdir():
        if path.is_file():
            client.put_object(Bucket="datasets", Key=f"ilsvrc2012/{path.name}", Body=path.read_bytes())
    return release


def _local_hashes(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and STATE_DIR not in p.relative_to(out).parts and p.name != "build.json"
    }


def _objects(client, prefix: str, bucket: str = "shards") -> dict[str, bytes]:
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for item in page.get("Contents", []):
            found[item["Key"][len(prefix) + 1 :]] = client.get_object(Bucket=bucket, Key=item["Key"])[
                "Body"
            ].read()
    return found


def _object_hashes(client, prefix: str) -> dict[str, str]:
    return {
        rel: hashlib.sha256(data).hexdigest()
        for rel, data in _objects(client, prefix).items()
        if not rel.startswith(f"{STATE_DIR}/") and rel != "build.json"
    }


@pytest.fixture(scope="module")
def local(release, tmp_path_factory):
    hashes = {}
    for output in ("wds", "parquet"):
        out = tmp_path_factory.mktemp(f"s3out-local-{output}") / "out"
        assert build(build_config({}, {"source": release.root, "out": out, "output": output, **OPTIONS})).ok
        hashes[output] = _local_hashes(out)
    return hashes


def test_s3_to_s3_round_trip_equals_the_local_build_and_webdataset_reads_it(
    client, release, local, tmp_path, s3_env
):
    config = build_config(
        {}, {"source": "s3://datasets/ilsvrc2012/", "out": "s3://shards/round/", "output": "wds", **OPTIONS}
    )
    assert config.out == "s3://shards/round"
    result = build(config)
    assert result.ok and result.images_written == 3 * 4 + 3 * 2
    assert (
        str(result.out) == "s3://shards/round"
        and str(result.out / "build.json") == "s3://shards/round/build.json"
    )
    assert _object_hashes(client, "round") == local["wds"]
    objects = _objects(client, "round")
    record = objects["build.json"].decode()
    assert json.loads(record)["config"]["out"] == "s3://shards/round"
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in record and s3_env["AWS_ACCESS_KEY_ID"] not in record
    markers = [rel for rel in objects if rel.startswith(f"{STATE_DIR}/done/")]
    assert len(markers) == result.units_total == 4 + 2
    assert f"{STATE_DIR}/lock" not in objects  # released
    assert not any(
        rel.startswith("/tmp") or "imagenet-prep-out-" in data.decode(errors="ignore")
        for rel, data in objects.items()
        if rel.endswith((".json", ".csv"))
    )

    # the real webdataset package reads a shard downloaded from the bucket, labels as the manifest says
    import webdataset

    info = json.loads(objects["_info.json"])
    shard = tmp_path / info["splits"]["val"]["filenames"][0]
    shard.write_bytes(objects[shard.name])
    samples = list(webdataset.WebDataset(str(shard), shardshuffle=False))
    assert [int(s["cls"]) for s in samples] == [
        int(line.split(",")[2]) for line in objects["val.csv"].decode().splitlines()[1:]
    ][: len(samples)]
    assert len(samples) == info["splits"]["val"]["shard_lengths"][0] == 3

    # a re-run finds every unit finished in the bucket
    again = build(config)
    assert again.units_resumed == again.units_total and again.units_rebuilt == 0
    # an object cut short in the bucket is rebuilt, and only its unit
    victim = info["splits"]["train"]["filenames"][1]
    client.put_object(Bucket="shards", Key=f"round/{victim}", Body=objects[victim][:-512])
    healed = build(config)
    assert healed.units_rebuilt == 1
    assert _object_hashes(client, "round") == local["wds"]


def test_parquet_to_s3_equals_the_local_build(client, release, local):
    config = build_config(
        {}, {"source": release.root, "out": "s3://shards/pq", "output": "parquet", **OPTIONS}
    )
    assert build(config).ok
    assert _object_hashes(client, "pq") == local["parquet"]


def test_a_build_stopped_mid_way_resumes_from_the_bucket(client, release, local):
    config = build_config(
        {}, {"source": release.root, "out": "s3://shards/stopped", "output": "wds", **OPTIONS}
    )
    seen = []

    def stop_after_seven(count: int) -> None:
        seen.append(count)
        if sum(seen) >= 7:
            raise KeyboardInterrupt

    with pytest.raises(BuildInterrupted) as stopped:
        build(config, progress=stop_after_seven)
    assert "s3://shards/stopped" in str(stopped.value) and "imagenet-prep-out-" not in str(stopped.value)
    objects = _objects(client, "stopped")
    done = [rel for rel in objects if rel.startswith(f"{STATE_DIR}/done/")]
    assert 1 <= len(done) < 6 and "build.json" not in objects and f"{STATE_DIR}/lock" not in objects
    for rel in done:  # every marker's objects are in the bucket with the recorded sizes
        for name, size in json.loads(objects[rel])["files"].items():
            assert len(objects[name]) == size
    result = build(config)
    assert result.units_resumed == len(done) and result.ok
    assert _object_hashes(client, "stopped") == local["wds"]


def test_a_killed_cli_build_resumes_to_the_same_objects(client, release, local, s3_env):
    command = build_argv(
        "s3://datasets/ilsvrc2012/", "s3://shards/killed",
        "--output", "wds", "--size", "32", "--shard-size", "3", "--shuffle-seed", "5", "--workers", "1",
    )  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            listed = client.list_objects_v2(Bucket="shards", Prefix=f"killed/{STATE_DIR}/done/")
            if listed.get("KeyCount", 0) >= 1:
                break
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    import tempfile

    left = Path(tempfile.gettempdir()) / f"imagenet-prep-out-{proc.pid}-x"  # the dead build's staging folder
    left.mkdir(exist_ok=True)
    objects = _objects(client, "killed")
    if "build.json" not in objects:  # the kill landed mid-build: the lock is left behind by the dead process
        assert f"{STATE_DIR}/lock" in objects
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in proc.stdout.read().decode() + proc.stderr.read().decode()  # type: ignore[union-attr]
    # the same build again (in-process: a second interpreter start costs seconds) takes the dead build's lock
    rerun = build(build_config({}, {"source": "s3://datasets/ilsvrc2012/", "out": "s3://shards/killed",
                                    "output": "wds", **OPTIONS}))  # fmt: skip
    assert rerun.ok and rerun.units_resumed >= 1
    assert not left.exists()  # removed by the next build
    assert _object_hashes(client, "killed") == local["wds"]


def test_imagefolder_to_a_bucket_and_a_second_build_are_refused(client, release, tmp_path):
    cli = subprocess.run(
        build_argv(release.root, "s3://shards/if"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 2
    assert cli.stderr.count("\n") == 1 and "--output wds" in cli.stderr and "local --out" in cli.stderr
    with pytest.raises(UsageError, match="s3://bucket/prefix"):
        build_config({}, {"source": release.root, "out": "https://host/out", "output": "wds"})
    client.put_object(
        Bucket="shards", Key=f"held/{STATE_DIR}/lock", Body=json.dumps({"pid": 1, "host": "node-7"}).encode()
    )
    config = build_config({}, {"source": release.root, "out": "s3://shards/held", "output": "wds", **OPTIONS})
    with pytest.raises(OutputLockedError, match="node-7"):
        build(config)
    from imagenet_prep.outputs import check_output

    with pytest.raises(InputError, match="check reads a local folder, not s3://shards/round"):
        check_output(Path("s3://shards/round"))  # what the CLI's Path argument makes of the URL
    with pytest.raises(InputError, match="bucket no-such-bucket does not exist"):
        build(build_config({}, {"source": release.root, "out": "s3://no-such-bucket/x", "output": "wds"}))
    client.put_object(Bucket="shards", Key="foreign/data.bin", Body=b"x")
    with pytest.raises(UsageError, match="not empty"):
        build(
            build_config(
                {}, {"source": release.root, "out": "s3://shards/foreign", "output": "wds", **OPTIONS}
            )
        )
