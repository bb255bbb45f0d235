"""--scheduler local:N and --num-shards are bounded like --workers, and a Dask address must use a Dask scheme a
build can reach (``udp://`` is none, ``inproc://`` lives inside one process): each a one-line UsageError from the
declared option's parser, before any process or cluster starts."""

from __future__ import annotations

import os

import pytest

from imagenet_prep.build_options import MAX_NUM_SHARDS
from imagenet_prep.config import build_config, max_workers
from imagenet_prep.errors import UsageError


def _config(**values):
    return build_config({}, {"source": "src", "out": "out", **values})


@pytest.mark.parametrize("count", ["0", "-1", "x", "", str(4 * (os.cpu_count() or 1) + 1), "100000000"])
def test_local_scheduler_worker_count_is_bounded(count):
    with pytest.raises(UsageError) as caught:
        _config(executor="dask", scheduler=f"local:{count}")
    message = str(caught.value)
    assert "\n" not in message and "local:" in message and str(max_workers()) in message


def test_local_scheduler_within_bounds_is_accepted():
    assert _config(executor="dask", scheduler=f"local:{max_workers()}").scheduler == f"local:{max_workers()}"


@pytest.mark.parametrize(
    "address", ["udp://127.0.0.1:8786", "inproc://abc/1", "http://x:1", "127.0.0.1:8786"]
)
def test_dask_address_scheme_is_checked(address):
    with pytest.raises(UsageError) as caught:
        _config(executor="dask", scheduler=address)
    message = str(caught.value)
    assert "\n" not in message and "tcp://" in message and address in message


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "tls://sched.example:8786", "ws://h:1"])
def test_dask_addresses_with_a_network_scheme_are_accepted(address):
    assert _config(executor="dask", scheduler=address).scheduler == address


@pytest.mark.parametrize("count", [MAX_NUM_SHARDS + 1, 100_000_000])
def test_num_shards_is_bounded(count):
    with pytest.raises(UsageError) as caught:
        _config(num_shards=count, shard_index=0)
    assert "num-shards" in str(caught.value) and str(MAX_NUM_SHARDS) in str(caught.value)


def test_num_shards_at_the_bound_is_accepted():
    assert _config(num_shards=MAX_NUM_SHARDS, shard_index=MAX_NUM_SHARDS - 1).num_shards == MAX_NUM_SHARDS
