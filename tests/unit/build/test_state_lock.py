"""One build per OUT, even when the lock file is unlinked or replaced while a build holds it: the lock is also
taken on the state folder itself, which a second build cannot get beside the first."""

from __future__ import annotations

import os

import pytest

from imagenet_prep.build.state import STATE_DIR, output_lock
from imagenet_prep.errors import OutputLockedError


def test_a_second_build_is_refused_after_the_lock_file_is_unlinked(tmp_path):
    with output_lock(tmp_path):
        (tmp_path / STATE_DIR / "lock").unlink()
        with pytest.raises(OutputLockedError) as caught, output_lock(tmp_path):
            pass
        assert str(tmp_path) in str(caught.value) and "\n" not in str(caught.value)
    with output_lock(tmp_path):  # released with the first build
        pass


def test_a_second_build_is_refused_after_the_lock_file_is_replaced(tmp_path):
    with output_lock(tmp_path):
        lock = tmp_path / STATE_DIR / "lock"
        lock.unlink()
        lock.write_text(f"{os.getpid()} elsewhere\n")
        with pytest.raises(OutputLockedError), output_lock(tmp_path):
            pass


def test_a_shard_is_refused_beside_a_whole_build_whose_lock_file_was_unlinked(tmp_path):
    with output_lock(tmp_path):
        (tmp_path / STATE_DIR / "lock").unlink()
        with pytest.raises(OutputLockedError), output_lock(tmp_path, shard=0):
            pass


def test_shards_still_share_the_folder(tmp_path):
    with (
        output_lock(tmp_path, shard=0),
        output_lock(tmp_path, shard=1),
        pytest.raises(OutputLockedError),
        output_lock(tmp_path),
    ):
        pass
