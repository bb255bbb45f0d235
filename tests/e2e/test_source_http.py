"""Remote sources over HTTP (issue 12 item 3), against a real loopback server with Range, ETag and byte
counting: a subset read by Range gives the local build's tree while transferring little more than its images;
the index costs a few requests per class tar; dropped connections are resumed; an archive replaced mid-build
is a clear error with nothing mixed; credentials never follow a redirect to another origin."""

from __future__ import annotations

from collections import Counter

import pytest
from support import snapshot
from support.http_server import ArchiveServer

from imagenet_prep.build import STATE_DIR, build
from imagenet_prep.config import build_config
from imagenet_prep.errors import BuildError, UsageError
from imagenet_prep.io import http
from imagenet_prep.io.tar_index import TrainArchive, ValArchive
from imagenet_prep.sample import SampleSpec, write_sample

TRAIN = "ILSVRC2012_img_train.tar"
VAL = "ILSVRC2012_img_val.tar"
# 40 classes, the Imagenette ten among them: a build of --subset imagenette needs a quarter of the train archive.
SPEC = SampleSpec(classes=40, train_per_class=4, val_per_class=2, seed=8)
OPTIONS = {"subset": "imagenette", "resize": "shorter", "size": 32, "workers": 1}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(tmp_path_factory.mktemp("http-release"), SPEC)


@pytest.fixture(scope="module")
def files(release) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in release.root.iterdir() if path.is_file()}


@pytest.fixture(scope="module")
def reference(release, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("http-reference") / "out"
    assert build(build_config({}, {"source": release.root, "out": out, **OPTIONS})).ok
    tree = snapshot(out)
    assert sum(name.endswith(".JPEG") for name in tree) == 10 * 4 + 10 * 2
    return tree


@pytest.fixture
def server(files):
    with ArchiveServer(files) as started:
        yield started


def image_bytes(release, files: dict[str, bytes], wnids: set[str]) -> int:
    """The bytes of the chosen classes' class tars plus their val images: what a build must read."""
    with TrainArchive(release.train_tar, cache_dir=release.root / "idx") as archive:
        train = sum(c.size for w, c in archive.classes().items() if w in wnids)
    with ValArchive(release.val_tar, cache_dir=release.root / "idx") as archive:
        chosen = {name for name, wnid in release.val_files.items() if wnid in wnids}
        val = sum(m.size for m in archive.members() if m.name in chosen)
    return train + val


def test_a_remote_subset_gives_the_local_tree_reading_little_more_than_its_images(
    release, files, reference, server, tmp_path
):
    out = tmp_path / "out"
    result = build(build_config({}, {"source": server.url, "out": out, **OPTIONS}))
    assert result.ok
    assert snapshot(out) == reference
    archives = len(files[TRAIN]) + len(files[VAL])
    needed = image_bytes(release, files, set(reference_wnids(reference)))
    served = server.bytes_served
    # The class tars are streamed once to index them and their images read once more by Range; val is indexed
    # by its headers (a small block each) and its chosen images read by Range: nothing else.
    assert served <= 2 * needed + 2048 * (len(release.val_files) + 50) + len(
        files["ILSVRC2012_devkit_t12.tar.gz"]
    )
    assert served < 0.6 * archives, (served, archives)
    for seen in server.seen:
        if seen.method == "GET" and seen.path.endswith((TRAIN, VAL)):
            assert seen.headers.get("Range", "").startswith("bytes="), seen
            assert seen.headers.get("If-Match", "").startswith('"'), "every ranged read is pinned to the ETag"
    record = (out / "build.json").read_text()
    assert server.url in record or "127.0.0.1" in record


def reference_wnids(reference: dict[str, bytes]) -> list[str]:
    return reference["labels.txt"].decode().split()


def test_indexing_a_remote_train_archive_costs_a_few_requests_per_class_tar(release, server, tmp_path):
    with TrainArchive(server.url + TRAIN, cache_dir=tmp_path / "cache") as archive:
        classes = archive.classes()
        for wnid in classes:
            archive.members(wnid)
        assert len(archive.members(sorted(classes)[0])) == 4
        archive.save()
    requests = [seen for seen in server.seen if seen.path.endswith(TRAIN)]
    assert len(requests) <= 3 * len(classes) + 5, Counter(seen.method for seen in requests)
    # A second look comes from the cache (keyed by URL, size and ETag): one HEAD, no reads.
    before = len(server.seen)
    with TrainArchive(server.url + TRAIN, cache_dir=tmp_path / "cache") as again:
        assert again.classes() == classes and again.has_members(sorted(classes)[0])
    assert [seen.method for seen in server.seen[before:]] == ["HEAD"]


def test_dropped_connections_are_resumed_and_give_the_same_tree(reference, server, tmp_path):
    server.faults.drop_after = 700
    server.faults.drop_requests = 12
    server.faults.drop_reset = True
    out = tmp_path / "out"
    assert build(build_config({}, {"source": server.url, "out": out, **OPTIONS})).ok
    assert snapshot(out) == reference
    assert sum(1 for seen in server.seen if seen.status == 206) > 12


def test_an_archive_replaced_mid_build_is_a_clear_error_and_nothing_is_mixed(files, server, tmp_path):
    out = tmp_path / "out"
    changed = bytearray(files[TRAIN])
    changed[-1] ^= 0xFF  # same size, other bytes: only the ETag tells

    def swap(plan: object, todo: int) -> None:
        server.files[TRAIN] = bytes(changed)

    with pytest.raises(BuildError) as caught:
        build(build_config({}, {"source": server.url, "out": out, **OPTIONS}), on_plan=swap)
    message = str(caught.value)
    assert "changed on the server" in message and TRAIN in message and "\n" not in message
    assert any(seen.status == 412 for seen in server.seen), "the If-Match precondition must catch it"
    assert not (out / "train.csv").exists() and not (out / "build.json").exists()
    done = list((out / STATE_DIR / "done").glob("train-*.json"))
    assert done == [], "no train unit may finish from the replaced archive"


def test_credentials_never_follow_a_redirect_to_another_origin(files, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("")
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("IMAGENET_PREP_USER", "alice")
    monkeypatch.setenv("IMAGENET_PREP_PASSWORD", "s3cret")
    monkeypatch.setattr(http, "_SESSIONS", {})
    with ArchiveServer(files) as home, ArchiveServer(files) as other:  # another port: another origin
        home.faults.redirect_to = other.url
        source = http.HttpByteSource(home.url + VAL)
        assert source.size == len(files[VAL])
        assert source.read_at(512, 100) == files[VAL][512:612]
        assert all("Authorization" in seen.headers for seen in home.seen)
        assert other.seen and all("Authorization" not in seen.headers for seen in other.seen)
        assert "s3cret" not in repr(source) and "alice" not in str(source)


def test_the_spool_makes_a_subset_cross_the_network_once(
    release, files, reference, server, tmp_path, monkeypatch
):
    """Indexing streams each chosen class tar once; the spool keeps those bytes, so the build's image reads
    cost no second transfer (without it, the class tars are transferred twice)."""
    monkeypatch.setenv("IMAGENET_PREP_CACHE", str(tmp_path / "cache"))
    wnids = set(reference_wnids(reference))
    with TrainArchive(release.train_tar, cache_dir=release.root / "idx") as archive:
        class_tars = sum(c.size for w, c in archive.classes().items() if w in wnids)
        images = sum(m.size for w in wnids for m in archive.members(w))
    needed = image_bytes(release, files, wnids)
    devkit = len(files["ILSVRC2012_devkit_t12.tar.gz"])
    headers = 1024 * (len(release.val_files) + 40 + 10)  # val headers, outer headers, one check per unit

    out = tmp_path / "out"
    assert build(build_config({}, {"source": server.url, "out": out, **OPTIONS})).ok
    assert snapshot(out) == reference
    assert server.bytes_served <= needed + headers + devkit, (server.bytes_served, needed)
    spooled = sorted((tmp_path / "cache" / "remote-spool").rglob("*.bin"))
    # One file per chosen class tar, from its first header to its end-of-archive marker (every image in it).
    assert len(spooled) == 10 and sum(p.stat().st_size for p in spooled) >= images + 512 * 40

    # The same build with the spool off: the class tars cross twice.
    monkeypatch.setenv("IMAGENET_PREP_CACHE", str(tmp_path / "cache-off"))
    monkeypatch.setenv("IMAGENET_PREP_SPOOL_MAX", "0")
    before = server.bytes_served
    assert build(build_config({}, {"source": server.url, "out": tmp_path / "off", **OPTIONS})).ok
    assert snapshot(tmp_path / "off") == reference
    assert server.bytes_served - before >= 2 * class_tars
    assert not (tmp_path / "cache-off" / "remote-spool").exists()


def test_the_spool_stays_within_its_bound_and_a_build_is_right_either_way(
    reference, server, tmp_path, monkeypatch
):
    from imagenet_prep.io import spool

    monkeypatch.setenv("IMAGENET_PREP_CACHE", str(tmp_path / "cache"))
    bound = 60_000  # two or so of the ten ~24 KB class tars
    monkeypatch.setenv("IMAGENET_PREP_SPOOL_MAX", str(bound))
    out = tmp_path / "out"
    assert build(build_config({}, {"source": server.url, "out": out, **OPTIONS})).ok
    assert snapshot(out) == reference
    kept = list(spool.spool_root().rglob("*.bin"))
    assert 0 < len(kept) < 10 and sum(p.stat().st_size for p in kept) <= bound
    assert not list(spool.spool_root().rglob(".part-*")), "no temporary file is left behind"
    monkeypatch.setenv("IMAGENET_PREP_SPOOL_MAX", "lots")
    with pytest.raises(UsageError, match="IMAGENET_PREP_SPOOL_MAX"):
        spool.spool_limit()


def test_remote_min_rate_is_a_build_option_a_dripping_source_ends_in_one_line(release, files, tmp_path):
    """--remote-min-rate (bytes/s, as fetch --min-rate): a server dripping a byte a second ends the build within
    the window plus one pause, exit 1, in one line naming the URL and the option. The option wins over the
    environment (IMAGENET_PREP_HTTP_MIN_RATE=0 would turn the minimum off); the window stays an environment
    setting (2 s here instead of 30 s)."""
    import os
    import subprocess
    import time

    from support import build_argv

    env = {**os.environ, "IMAGENET_PREP_HTTP_MIN_RATE": "0", "IMAGENET_PREP_HTTP_RATE_WINDOW": "2"}
    with ArchiveServer(files) as running:
        running.faults.drip_seconds = 1.0
        argv = build_argv(
            running.url, tmp_path / "out", "--subset", "imagenette", "--remote-min-rate", "1024"
        )
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        elapsed = time.monotonic() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode in (1, 2) and len(lines) == 1, done.stderr
    assert "--remote-min-rate" in lines[0] and running.url.split("//")[1].rstrip("/") in lines[0], lines[0]
    assert "Traceback" not in done.stderr
    assert elapsed < 2 + 1 + 20, elapsed  # the window, one pause; slack for start-up on a loaded machine
