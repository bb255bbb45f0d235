"""S3 with no credentials anywhere (no AWS_* variables, no ~/.aws files, no instance metadata): a build to or
from a bucket is one line naming what to set, exit 2, never botocore's NoCredentialsError traceback. The
endpoint is moto's real S3 server, so nothing but the missing credentials can fail."""

from __future__ import annotations

import os
import subprocess

import pytest
from support import cli_argv

from imagenet_prep.sample import SampleSpec, write_sample


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(
        tmp_path_factory.mktemp("nocreds"), SampleSpec(classes=2, train_per_class=2, val_per_class=1)
    )


def _no_credentials(s3_endpoint: str, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_ENDPOINT_URL": s3_endpoint,
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "HOME": str(tmp_path),
        }
    )
    return env


@pytest.mark.parametrize("side", ["out", "source"])
def test_s3_without_credentials_is_one_line_naming_what_to_set(s3_endpoint, release, tmp_path, side):
    source, out = (
        (str(release.root), "s3://shards/nocreds")
        if side == "out"
        else ("s3://shards/src", str(tmp_path / "o"))
    )
    done = subprocess.run(
        cli_argv("build", "--source", source, "--out", out, "--output", "wds", "--size", "16", "--quiet"),
        capture_output=True,
        text=True,
        timeout=120,
        env=_no_credentials(s3_endpoint, tmp_path),
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "AWS_ACCESS_KEY_ID" in lines[0] and "credentials" in lines[0]
