"""`--source s3://bucket/prefix` through fsspec/s3fs (issue 12 item 4) against moto's S3 server on 127.0.0.1:
the same tree as a local build, credentials from the environment and never in build.json."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from support import snapshot

from imagenet_prep.build import build
from imagenet_prep.config import build_config
from imagenet_prep.sample import SampleSpec, write_sample

moto_server = pytest.importorskip(
    "moto.server", reason="needs the test extra (moto[server])"
)  # in the test extra: never skipped here

OPTIONS = {"resize": "shorter", "size": 32, "workers": 1}
SECRET = "not-a-real-secret-key-4711"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(s3: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3)
    return s3


def test_a_build_from_s3_gives_the_local_tree_and_records_no_credentials(aws_env, tmp_path):
    import boto3

    release = write_sample(
        tmp_path / "release", SampleSpec(classes=2, train_per_class=2, val_per_class=1, seed=6)
    )
    client = boto3.client("s3", endpoint_url=aws_env)
    client.create_bucket(Bucket="datasets")
    for path in release.root.iterdir():
        if path.is_file():
            client.put_object(Bucket="datasets", Key=f"ilsvrc2012/{path.name}", Body=path.read_bytes())

    local = tmp_path / "local"
    assert build(build_config({}, {"source": release.root, "out": local, **OPTIONS})).ok
    remote = tmp_path / "remote"
    result = build(build_config({}, {"source": "s3://datasets/ilsvrc2012/", "out": remote, **OPTIONS}))
    assert result.ok and result.images_written == 2 * 2 + 2 * 1
    assert snapshot(remote) == snapshot(local)
    record = (remote / "build.json").read_text()
    assert json.loads(record)["config"]["source"] == "s3://datasets/ilsvrc2012/"
    assert SECRET not in record and "testing-key-id" not in record
    assert json.loads(record)["bytes_read"]["images"] > 0


def test_the_spool_makes_an_s3_build_transfer_its_class_tars_once(aws_env, tmp_path, monkeypatch):
    """The class tars' scan blocks are kept in the spool; the images are then read from it (after the worker's
    ETag check), not fetched again. One worker: every transfer is counted in this process."""
    import boto3

    from imagenet_prep.io.objectstore import ObjectByteSource

    release = write_sample(
        tmp_path / "release", SampleSpec(classes=3, train_per_class=8, val_per_class=1, seed=9)
    )
    client = boto3.client("s3", endpoint_url=aws_env)
    client.create_bucket(Bucket="spooled")
    for path in release.root.iterdir():
        if path.is_file():
            client.put_object(Bucket="spooled", Key=f"ilsvrc/{path.name}", Body=path.read_bytes())
    from imagenet_prep.io.tar_index import TrainArchive

    with TrainArchive(release.train_tar, cache_dir=tmp_path / "idx") as archive:
        train_images = sum(m.size for wnid in archive.classes() for m in archive.members(wnid))
    local = tmp_path / "local"
    assert build(build_config({}, {"source": release.root, "out": local, **OPTIONS})).ok

    transferred = {}
    for label, limit in (("spool", None), ("off", "0")):
        monkeypatch.setenv("IMAGENET_PREP_CACHE", str(tmp_path / f"cache-{label}"))  # cold: index again
        if limit is not None:
            monkeypatch.setenv("IMAGENET_PREP_SPOOL_MAX", limit)
        ObjectByteSource.process_bytes_read = 0
        out = tmp_path / label
        assert build(build_config({}, {"source": "s3://spooled/ilsvrc/", "out": out, **OPTIONS})).ok
        assert snapshot(out) == snapshot(local)
        transferred[label] = ObjectByteSource.process_bytes_read
    spooled = list((tmp_path / "cache-spool" / "remote-spool").rglob("*.bin"))
    assert len(spooled) == 3  # one scan block per class tar
    assert not (tmp_path / "cache-off" / "remote-spool").exists()
    # Without the spool every image of the class tars crosses twice (with its header); with it, once.
    assert transferred["off"] - transferred["spool"] >= train_images, (transferred, train_images)
