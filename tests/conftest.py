"""Shared fixtures. Every test run gets its own cache folder, so nothing is written to the user's ~/.cache."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_CACHE = Path(tempfile.mkdtemp(prefix="imagenet-prep-test-cache-"))
os.environ["IMAGENET_PREP_CACHE"] = str(_SESSION_CACHE)
os.environ["XDG_CACHE_HOME"] = str(_SESSION_CACHE / "xdg")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _environment_per_module() -> Iterator[None]:
    """Put back the process environment after each test file: distributed's LocalCluster sets OMP_NUM_THREADS=1,
    OPENBLAS_NUM_THREADS=1, PYTHONHASHSEED... in this process, and every CLI process a later file starts would
    inherit them (a single-threaded build forks its workers instead of starting the forkserver)."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def quirky_release(tmp_path_factory: pytest.TempPathFactory):
    """A miniature release in the real format: 12 classes (Imagenette + dogs + quirk classes), quirk files."""
    from imagenet_prep.sample import SampleSpec, write_sample

    return write_sample(
        tmp_path_factory.mktemp("quirky-release"),
        SampleSpec(classes=12, train_per_class=6, val_per_class=3, quirks=True, seed=1),
    )


@pytest.fixture(scope="session")
def dog_release(tmp_path_factory: pytest.TempPathFactory):
    """A miniature release whose classes mix dogs (ImageNet-1K indices 151..268) and others."""
    from imagenet_prep.sample import SampleSpec, write_sample

    wnids = ("n01440764", "n02085620", "n02099601", "n02106662", "n02110185", "n02123045", "n03000684")
    return write_sample(
        tmp_path_factory.mktemp("dog-release"),
        SampleSpec(train_per_class=5, val_per_class=2, seed=3, wnids=wnids, classes=len(wnids)),
    )


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port), one per test module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3_env(s3_endpoint: str) -> Iterator[dict[str, str]]:
    """The environment botocore reads, pointed at ``s3_endpoint`` with made-up credentials (restored after)."""
    values = {
        "AWS_ACCESS_KEY_ID": "testing-key-id-0815",
        "AWS_SECRET_ACCESS_KEY": "not-a-real-secret-key-0815",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    yield values
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def gcs_endpoint() -> Iterator[str]:
    """gcp-storage-emulator on 127.0.0.1 (a free port; bucket ``imagenet``), one per test module, with
    ``STORAGE_EMULATOR_HOST`` pointing at it (restored after)."""
    import socket

    emulator = pytest.importorskip(
        "gcp_storage_emulator.server", reason="needs the test extra (gcp-storage-emulator)"
    )  # in the test extra: never skipped here
    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = emulator.create_server("127.0.0.1", port, in_memory=True, default_bucket="imagenet")
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    yield endpoint
    if saved is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = saved
    server.stop()


E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/e2e/ is marked e2e, so the fast tier is `-m "not e2e and not slow"`."""
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.e2e)
