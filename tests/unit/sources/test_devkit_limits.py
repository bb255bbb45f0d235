"""Devkits read by the tool itself are bounded: a ground-truth or meta.mat bomb is refused, a FIFO does not
hang, the sample devkit still reads. (Trees given to `check`: unit/outputs/test_imagefolder_check.py.)"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile

import pytest

from imagenet_prep.errors import DevkitError
from imagenet_prep.fetch.catalog import GROUND_TRUTH_PATH, META_PATH
from imagenet_prep.sources import devkit as devkit_mod
from imagenet_prep.sources.devkit import read_devkit


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=9)


@pytest.fixture(scope="module")
def real_members(dog_release) -> dict[str, bytes]:
    with tarfile.open(dog_release.devkit) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


# ------------------------------------------------------------------------------------------------ devkit
def test_devkit_caps_are_generous_for_the_real_devkit():
    # The real ILSVRC2012_devkit_t12 holds a ~2 MB meta.mat and a ~190 KB ground truth (50,000 short lines).
    assert devkit_mod.MAX_META_BYTES >= 8 << 20 and devkit_mod.MAX_GROUND_TRUTH_BYTES >= 1 << 20


def test_ground_truth_bomb_in_the_tar_gz_is_refused(tmp_path, real_members):
    bomb = b"1\n" * (10 << 20)  # 20 MB of ground truth; ~20 KB once compressed
    path = tmp_path / "ILSVRC2012_devkit_t12.tar.gz"
    path.write_bytes(_tar_gz({META_PATH: real_members[META_PATH], GROUND_TRUTH_PATH: bomb}))
    assert path.stat().st_size < 100_000
    with pytest.raises(DevkitError, match="too large to be the real one") as exc:
        read_devkit(path)
    assert "ILSVRC2012_validation_ground_truth.txt" in str(exc.value) and len(str(exc.value)) < 400


def test_huge_meta_mat_is_refused_before_it_is_read(tmp_path, real_members):
    path = tmp_path / "ILSVRC2012_devkit_t12.tar.gz"
    path.write_bytes(
        _tar_gz({META_PATH: bytes(64 << 20), GROUND_TRUTH_PATH: real_members[GROUND_TRUTH_PATH]})
    )
    with pytest.raises(DevkitError, match="meta.mat .*too large to be the real one"):
        read_devkit(path)


def test_extracted_devkit_folder_with_a_huge_ground_truth_is_refused(tmp_path, real_members):
    data = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    (data / "meta.mat").write_bytes(real_members[META_PATH])
    with open(data / "ILSVRC2012_validation_ground_truth.txt", "wb") as f:
        f.truncate(64 << 20)  # sparse: costs no disk
    with pytest.raises(DevkitError, match="too large to be the real one"):
        read_devkit(tmp_path)


def test_extracted_devkit_folder_with_a_fifo_does_not_hang(tmp_path, real_members):
    data = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    os.mkfifo(data / "meta.mat")
    (data / "ILSVRC2012_validation_ground_truth.txt").write_bytes(real_members[GROUND_TRUTH_PATH])
    probe = "import sys; from imagenet_prep.sources.devkit import read_devkit; read_devkit(sys.argv[1])"
    done = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0 and "not a regular file" in done.stderr


def test_the_sample_devkit_still_reads(dog_release):
    assert len(read_devkit(dog_release.devkit).val_ground_truth) == 50_000
