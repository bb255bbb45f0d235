"""fetch against a real HTTP server on 127.0.0.1 with injected faults (issue 3 acceptance, issue 6 item 2)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from support.cli import main_in_process as run_cli
from support.fetching import EXTRA, FAST, SIZE, VAL, assert_no_final, interrupt_after, make_bytes, md5, only
from support.http_server import ArchiveServer, etag_of

from imagenet_prep.errors import UsageError
from imagenet_prep.fetch import download as fetch_mod
from imagenet_prep.fetch.download import InsufficientSpaceError, fetch
from imagenet_prep.fetch.verify import cached_md5, verify


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if p.name != ".imagenet-prep-verify.json")


# ------------------------------------------------------------------------------------------------ happy paths


def test_fetch_downloads_verifies_and_records_md5(tmp_path, server, payload, sums):
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert (r.status, r.error, r.md5, r.size, r.bytes_downloaded) == (
        "downloaded",
        None,
        md5(payload),
        SIZE,
        SIZE,
    )
    assert (tmp_path / VAL).read_bytes() == payload
    assert leftovers(tmp_path) == [VAL]  # no .part / .part.json left
    assert server.bytes_served == SIZE
    # The MD5 computed while streaming seeds the verify cache: verify afterwards reads nothing.
    assert cached_md5(tmp_path / VAL) == md5(payload)
    (v,) = verify(tmp_path, checksums=sums)
    assert v.ok and v.cached and v.bytes_read == 0


def test_second_fetch_is_already_verified_without_network(tmp_path, server, payload, sums):
    fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST)
    before = len(server.seen)
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "already-verified" and r.bytes_downloaded == 0 and r.md5 == md5(payload)
    assert len(server.seen) == before


def test_md5sums_file_and_extra_names(tmp_path, server, sums):
    sums_file = tmp_path / "MD5SUMS"
    sums_file.write_text("".join(f"{h} *{n}\n" for n, h in sums.items()))
    dest = tmp_path / "dest"
    results = fetch(dest, [EXTRA, "val"], server.url, checksums=sums_file, **FAST)
    assert [(r.file, r.status) for r in results] == [(EXTRA, "downloaded"), (VAL, "downloaded")]
    assert md5((dest / EXTRA).read_bytes()) == sums[EXTRA]


def test_jobs_download_files_in_parallel_in_order(tmp_path, server, sums):
    results = fetch(tmp_path, [VAL, EXTRA], server.url, checksums=sums, jobs=2, **FAST)
    assert [r.file for r in results] == [VAL, EXTRA]
    assert all(r.status == "downloaded" for r in results)
    assert {n: md5((tmp_path / n).read_bytes()) for n in sums} == sums


def test_progress_factory_gets_totals_and_bytes(tmp_path, server, sums):
    calls: dict[str, list] = {}

    def factory(name, total, initial):
        calls[name] = [total, initial, 0]

        def update(n):
            calls[name][2] += n

        return update

    fetch(tmp_path, [VAL], server.url, checksums=sums, progress=factory, **FAST)
    assert calls == {VAL: [SIZE, 0, SIZE]}


# ----------------------------------------------------------------------------------------- resume and faults


def test_dropped_connection_resumes_from_where_it_stopped(tmp_path, server, payload, sums):
    server.faults.drop_after, server.faults.drop_requests = 1_000_000, 1
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "resumed" and (tmp_path / VAL).read_bytes() == payload
    assert server.bytes_served < 1.2 * SIZE
    first, second = server.seen
    assert first.body_bytes == 1_000_000 and "Range" not in first.headers
    assert second.headers["Range"] == "bytes=1000000-" and second.status == 206
    assert second.headers["If-Range"] == etag_of(payload)  # resumes only the same bytes
    assert r.bytes_downloaded == SIZE


def test_connection_reset_mid_body_resumes(tmp_path, server, payload, sums):
    server.faults.drop_after, server.faults.drop_requests, server.faults.drop_reset = 1_000_000, 2, True
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "resumed" and (tmp_path / VAL).read_bytes() == payload
    assert server.bytes_served < 1.2 * SIZE
    assert [s.status for s in server.seen] == [200, 206, 206]


def test_many_drops_still_finish(tmp_path, server, payload, sums):
    server.faults.drop_after, server.faults.drop_requests = 400_000, 6
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "resumed" and md5((tmp_path / VAL).read_bytes()) == md5(payload)
    assert len(server.seen) == 7 and server.bytes_served == SIZE


def test_connection_dropping_without_progress_ends_in_clear_error(tmp_path, server, sums):
    server.faults.drop_after, server.faults.drop_requests = 0, 100
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "failed" and "no progress" in r.error and "re-run fetch" in r.error
    assert_no_final(tmp_path)
    assert (
        len(server.seen) == FAST["max_stalls"] + 1
    )  # bounded: gives up after max_stalls + 1 fruitless tries


def test_stall_beyond_read_timeout_resumes(tmp_path, server, payload, sums):
    server.faults.stall_after, server.faults.stall_requests = 700_000, 1
    t0 = time.monotonic()
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    elapsed = time.monotonic() - t0
    assert r.status == "resumed" and (tmp_path / VAL).read_bytes() == payload
    assert server.seen[1].headers["Range"] == "bytes=700000-"
    assert elapsed < server.faults.stall_seconds  # gave up on the silent connection at the read timeout


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_then_success(tmp_path, server, payload, sums, status):
    server.faults.fail_status, server.faults.fail_requests = status, 2
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "downloaded" and (tmp_path / VAL).read_bytes() == payload
    assert [s.status for s in server.seen] == [status, status, 200]


def test_server_errors_forever_end_in_clear_error(tmp_path, server, sums):
    server.faults.fail_status, server.faults.fail_requests = 503, 100
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "failed" and "HTTP 503" in r.error and VAL in r.error
    assert len(server.seen) == FAST["retries"] + 1
    assert_no_final(tmp_path)
    assert leftovers(tmp_path) == []


def test_range_ignored_restarts_cleanly(tmp_path, server, payload, sums):
    (tmp_path / f"{VAL}.part").write_bytes(payload[:1_500_000])
    server.faults.honor_range = False
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "downloaded" and (tmp_path / VAL).read_bytes() == payload
    assert server.seen[0].headers["Range"] == "bytes=1500000-" and server.seen[0].status == 200
    assert r.bytes_downloaded == SIZE


def test_range_ignored_after_a_drop_restarts_cleanly(tmp_path, server, payload, sums):
    server.faults.honor_range = False
    server.faults.drop_after, server.faults.drop_requests = 1_000_000, 1
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "downloaded" and (tmp_path / VAL).read_bytes() == payload
    assert [s.status for s in server.seen] == [200, 200]


def test_partial_file_from_an_earlier_run_is_hashed_and_resumed(tmp_path, server, payload, sums):
    (tmp_path / f"{VAL}.part").write_bytes(payload[:2_000_000])
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "resumed" and r.md5 == md5(payload) and (tmp_path / VAL).read_bytes() == payload
    assert server.bytes_served == SIZE - 2_000_000
    assert server.seen[0].headers["Range"] == "bytes=2000000-"
    assert "If-Range" not in server.seen[0].headers  # no validator was stored by that run


def test_interrupted_run_keeps_partial_and_validator_then_resumes(tmp_path, server, payload, sums):
    interrupting = interrupt_after(1_000_000)

    with pytest.raises(KeyboardInterrupt):
        fetch(tmp_path, [VAL], server.url, checksums=sums, progress=interrupting, **FAST)
    assert_no_final(tmp_path)
    kept = (tmp_path / f"{VAL}.part").stat().st_size
    assert 1_000_000 <= kept < SIZE
    assert json.loads((tmp_path / f"{VAL}.part.json").read_text())["etag"] == etag_of(payload)
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "resumed" and (tmp_path / VAL).read_bytes() == payload
    last = server.seen[-1]
    assert last.headers["Range"] == f"bytes={kept}-" and last.headers["If-Range"] == etag_of(payload)
    assert leftovers(tmp_path) == [VAL]


def test_file_changed_on_server_if_range_restarts(tmp_path, server, payload, sums):
    (tmp_path / f"{VAL}.part").write_bytes(payload[:1_000_000])
    (tmp_path / f"{VAL}.part.json").write_text(
        json.dumps({"url": server.url + VAL, "etag": etag_of(payload), "last_modified": None})
    )
    new = make_bytes(7)
    server.files[VAL] = new
    r = only(fetch(tmp_path, [VAL], server.url, checksums={VAL: md5(new)}, **FAST))
    assert r.status == "downloaded" and (tmp_path / VAL).read_bytes() == new
    assert server.seen[0].headers["If-Range"] == etag_of(payload) and server.seen[0].status == 200


def test_wrong_bytes_give_md5_error_and_no_final_file(tmp_path, server, payload, sums):
    server.faults.corrupt_at = 123_456
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "failed" and "MD5" in r.error and sums[VAL] in r.error and "deleted" in r.error
    assert_no_final(tmp_path)
    assert leftovers(tmp_path) == []  # the bad bytes are not kept for a resume


def test_content_length_too_long_is_caught_and_completed(tmp_path, server, payload, sums):
    server.faults.length_delta, server.faults.length_requests = 5000, 1
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    # The body ended short of the announced length; the resume got 416 with the real size and the MD5 settled
    # it.
    assert r.ok and (tmp_path / VAL).read_bytes() == payload
    assert server.seen[1].status == 416
    assert server.bytes_served == SIZE


def test_content_length_too_long_without_md5_is_an_error(tmp_path, server):
    name = "ILSVRC2012_devkit_t3.tar.gz"  # the catalog knows no MD5 for it
    server.files[name] = make_bytes(3, 200_000)
    server.faults.length_delta, server.faults.length_requests = 5000, 1
    r = only(fetch(tmp_path, ["devkit_t3"], server.url, **FAST))
    assert r.status == "failed" and "inconsistent sizes (200000, 205000 bytes)" in r.error
    assert_no_final(tmp_path, name)


def test_content_length_too_short_gives_md5_error(tmp_path, server, sums):
    server.faults.length_delta, server.faults.length_requests = -5000, 100
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "failed" and "MD5" in r.error
    assert_no_final(tmp_path)


def test_416_on_complete_partial_verifies_it(tmp_path, server, payload, sums):
    (tmp_path / f"{VAL}.part").write_bytes(payload)
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "resumed" and r.bytes_downloaded == 0 and (tmp_path / VAL).read_bytes() == payload
    assert [s.status for s in server.seen] == [416] and server.bytes_served == 0


def test_416_on_complete_but_corrupt_partial_is_an_md5_error(tmp_path, server, payload, sums):
    bad = bytearray(payload)
    bad[10] ^= 1
    (tmp_path / f"{VAL}.part").write_bytes(bytes(bad))
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "failed" and "MD5" in r.error
    assert_no_final(tmp_path)
    assert not (tmp_path / f"{VAL}.part").exists()


def test_partial_longer_than_the_file_restarts(tmp_path, server, payload, sums):
    (tmp_path / f"{VAL}.part").write_bytes(payload + b"junk")
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "downloaded" and (tmp_path / VAL).read_bytes() == payload
    assert [s.status for s in server.seen] == [416, 200]


def test_existing_wrong_final_file_is_left_alone(tmp_path, server, sums):
    (tmp_path / VAL).write_bytes(b"not the archive")
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "failed" and "exists but does not match" in r.error
    assert (tmp_path / VAL).read_bytes() == b"not the archive" and server.seen == []


def test_free_space_checked_before_starting(tmp_path, server, monkeypatch):
    class Usage:
        total, used, free = 10**12, 10**12 - 10**9, 10**9

    monkeypatch.setattr(fetch_mod.shutil, "disk_usage", lambda path: Usage)
    # train has a known size (147,897,477,120 bytes): refused before any request.
    with pytest.raises(InsufficientSpaceError, match="needs 147.9 GB .* 1.0 GB free"):
        fetch(tmp_path, ["train"], server.url, **FAST)
    assert server.seen == []


def test_free_space_checked_against_content_length(tmp_path, server, sums, monkeypatch):
    class Usage:
        total, used, free = 10**9, 10**9 - 1000, 1000

    monkeypatch.setattr(fetch_mod.shutil, "disk_usage", lambda path: Usage)
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "failed" and "free" in r.error
    assert_no_final(tmp_path)
    assert not (tmp_path / f"{VAL}.part").exists() or (tmp_path / f"{VAL}.part").stat().st_size == 0


def test_unknown_key_is_a_usage_error(tmp_path, server):
    with pytest.raises(UsageError, match="known archives: train, val, devkit"):
        fetch(tmp_path, ["trian"], server.url)


def test_server_404_is_a_clear_error(tmp_path, server):
    r = only(fetch(tmp_path, ["devkit"], server.url, **FAST))
    assert r.status == "failed" and "404" in r.error and "--base-url" in r.error
    assert leftovers(tmp_path) == []


# -------------------------------------------------------------------------------------------- local mirrors


@pytest.mark.parametrize("as_url", [False, True])
def test_local_folder_mirror(tmp_path, payload, as_url):
    mirror = tmp_path / "mirror dir"
    mirror.mkdir()
    (mirror / VAL).write_bytes(payload)
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / f"{VAL}.part").write_bytes(payload[:1000])
    base = mirror.as_uri() if as_url else str(mirror)
    r = only(fetch(tmp_path / "dest", [VAL], base, checksums={VAL: md5(payload)}))
    assert (r.status, r.bytes_downloaded) == ("resumed", SIZE - 1000)
    assert (tmp_path / "dest" / VAL).read_bytes() == payload


def test_local_mirror_with_wrong_bytes(tmp_path, payload):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / VAL).write_bytes(payload[:-1] + b"x")
    r = only(fetch(tmp_path / "dest", [VAL], str(mirror), checksums={VAL: md5(payload)}))
    assert r.status == "failed" and "MD5" in r.error
    assert_no_final(tmp_path / "dest")
    r = only(fetch(tmp_path / "dest", ["devkit"], str(mirror)))
    assert r.status == "failed" and "not in the mirror folder" in r.error


# ---------------------------------------------------------------------------------------------- credentials


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def other(payload: bytes):
    with ArchiveServer({VAL: payload}) as srv:
        yield srv


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["other-port", "other-host"])
def test_redirect_elsewhere_drops_all_credentials(tmp_path, server, other, payload, sums, no_netrc, host):
    server.faults.redirect_to = other.url.replace("127.0.0.1", host)
    r = only(
        fetch(
            tmp_path,
            [VAL],
            server.url,
            checksums=sums,
            auth=("alice", "s3cret"),
            headers={"X-Api-Token": "tok"},
            cookies={"session": "c00kie"},
            **FAST,
        )
    )
    assert r.status == "downloaded" and (tmp_path / VAL).read_bytes() == payload
    sent = server.seen[0].headers
    assert sent["Authorization"] == basic("alice", "s3cret") and sent["X-Api-Token"] == "tok"
    assert sent["Cookie"] == "session=c00kie"
    arrived = other.seen[0].headers
    assert not {"Authorization", "X-Api-Token", "Cookie"} & set(arrived), arrived


def test_redirect_to_other_port_drops_netrc_credentials(tmp_path, server, other, sums, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login bob password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.delenv("IMAGENET_PREP_USER", raising=False)
    server.faults.redirect_to = other.url
    r = only(fetch(tmp_path / "d", [VAL], server.url, checksums=sums, **FAST))
    assert r.ok
    assert server.seen[0].headers["Authorization"] == basic("bob", "hunter2")
    # Plain requests would re-add netrc credentials here: netrc knows hosts, not ports.
    assert "Authorization" not in other.seen[0].headers


def test_same_origin_redirect_keeps_credentials(tmp_path, server, payload, sums, no_netrc):
    server.faults.redirect_to = f"http://127.0.0.1:{server.port}/moved/"
    r = only(
        fetch(
            tmp_path,
            [VAL],
            server.url,
            checksums=sums,
            auth=("a", "b"),
            cookies="k=v",
            headers={"X-T": "1"},
            **FAST,
        )
    )
    assert r.ok and (tmp_path / VAL).read_bytes() == payload
    moved = server.seen[1]
    assert moved.path == f"/moved/{VAL}"
    assert moved.headers["Authorization"] == basic("a", "b") and moved.headers["Cookie"] == "k=v"
    assert moved.headers["X-T"] == "1"


def test_env_credentials_are_used_and_never_reported(tmp_path, server, sums, monkeypatch, no_netrc):
    monkeypatch.setenv("IMAGENET_PREP_USER", "carol")
    monkeypatch.setenv("IMAGENET_PREP_PASSWORD", "pa55word")
    server.faults.fail_status, server.faults.fail_requests = 401, 1
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **FAST))
    assert server.seen[0].headers["Authorization"] == basic("carol", "pa55word")
    assert r.status == "failed" and "HTTP 401" in r.error and ".netrc" in r.error
    assert "pa55word" not in r.error and "carol" not in r.error


def test_password_in_base_url_is_redacted(tmp_path, server, sums, no_netrc):
    server.faults.fail_status, server.faults.fail_requests = 403, 1
    url = server.url.replace("http://", "http://dave:t0psecret@")
    r = only(fetch(tmp_path, [VAL], url, checksums=sums, **FAST))
    assert server.seen[0].headers["Authorization"] == basic("dave", "t0psecret")
    assert r.status == "failed" and "t0psecret" not in r.error and "***@" in r.error


# ------------------------------------------------------------------------------------------------------ CLI


def test_cli_fetch_and_verify(tmp_path, server, payload, sums, capsys, monkeypatch, no_netrc):
    sums_file = tmp_path / "MD5SUMS"
    sums_file.write_text("".join(f"{h}  {n}\n" for n, h in sums.items()))
    dest = tmp_path / "dest"
    args = ["fetch", "--dest", str(dest), "--base-url", server.url, "--checksums", str(sums_file)]
    code, out, err = run_cli(
        [*args, "--only", f"val,{EXTRA}", "--header", "X-Token: abc", "--jobs", "2"], capsys, monkeypatch
    )
    assert code == 0, err
    assert f"downloaded         {VAL}" in out and sums[VAL] in out
    assert {s.headers.get("X-Token") for s in server.seen} == {"abc"}
    code, out, _ = run_cli(["verify", str(dest), "--checksums", str(sums_file)], capsys, monkeypatch)
    assert code == 0 and "2 ok, 0 mismatched" in out and "(cached)" in out


def test_cli_fetch_failure_exits_1(tmp_path, server, sums, capsys, monkeypatch, no_netrc):
    server.faults.corrupt_at = 5
    sums_file = tmp_path / "MD5SUMS"
    sums_file.write_text(f"{sums[VAL]}  {VAL}\n")
    args = ["fetch", "--dest", str(tmp_path / "d"), "--base-url", server.url, "--checksums", str(sums_file)]
    code, out, err = run_cli([*args, "--only", "val"], capsys, monkeypatch)
    assert code == 1 and "imagenet-prep: error:" in err and "MD5" in err


def test_cli_without_base_url_or_credentials_explains_the_account(tmp_path, capsys, monkeypatch, no_netrc):
    code, out, err = run_cli(["fetch", "--dest", str(tmp_path / "d")], capsys, monkeypatch)
    assert code == 2
    assert "image-net.org" in err and "--base-url" in err and ".netrc" in err and "IMAGENET_PREP_USER" in err
    assert not (tmp_path / "d").exists()


def test_cli_rejects_malformed_header(tmp_path, server, capsys, monkeypatch):
    code, _, err = run_cli(
        ["fetch", "--dest", str(tmp_path), "--base-url", server.url, "--header", "nocolon"],
        capsys,
        monkeypatch,
    )
    assert code == 2 and "Name: value" in err
