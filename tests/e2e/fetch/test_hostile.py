"""Issue 15, fetch side: credentials never stored or echoed, .part files never followed through links, a
minimum transfer rate, and a cap on bodies of unknown size. Against the real loopback server."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import time

import pytest
from support import cli
from support.fetching import EXTRA, FAST, SIZE, VAL, assert_no_final, interrupt_after, md5, only
from support.http_server import etag_of

from imagenet_prep.errors import UsageError
from imagenet_prep.fetch import download as fetch_mod
from imagenet_prep.fetch.download import fetch, redact


class Counter:
    """A progress factory that totals the bytes written to partial files."""

    def __init__(self) -> None:
        self.total = 0

    def __call__(self, name: str, total: int | None, initial: int):
        def update(n: int) -> None:
            self.total += n

        return update


# ---------------------------------------------------------------------------------------------- credentials


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("at http://user:p@ss@host:8080/x/y.tar now", "at http://***@host:8080/x/y.tar now"),
        ("http://a:b@c@d@host/", "http://***@host/"),
        ("see https://tok@host/p and ftp://u:v@h2/q", "see https://***@host/p and ftp://***@h2/q"),
        ("'http://u:pw@127.0.0.1:5/data/'", "'http://***@127.0.0.1:5/data/'"),
        ("http://host/a@b and mailto:x@y", "http://host/a@b and mailto:x@y"),  # no userinfo: unchanged
        ("http://u:p@ss?x@host/", "http://***@host/"),  # '?' inside the password still masked
    ],
)
def test_redact_masks_the_whole_userinfo(text, expected):
    assert redact(text) == expected


def test_password_with_at_sign_is_fully_masked_in_errors(tmp_path, server, sums, no_netrc):
    server.faults.fail_status, server.faults.fail_requests = 403, 1
    url = server.url.replace("http://", "http://dave:t0p@secret@")
    r = only(fetch(tmp_path, [VAL], url, checksums=sums, **FAST))
    assert r.status == "failed"
    assert "secret" not in r.error and "t0p" not in r.error and "dave" not in r.error
    assert f"http://***@127.0.0.1:{server.port}/" in r.error


def test_part_json_never_stores_credentials_and_is_private(tmp_path, server, payload, sums, no_netrc):
    """A download that stops keeps its sidecar: without the URL's userinfo, mode 0600, and it still resumes."""
    url = server.url.replace("http://", "http://dave:t0psecret@")

    interrupting = interrupt_after(1_000_000)

    with pytest.raises(KeyboardInterrupt):
        fetch(tmp_path, [VAL], url, checksums=sums, progress=interrupting, **FAST)
    sidecar = tmp_path / f"{VAL}.part.json"
    text = sidecar.read_text()
    assert "t0psecret" not in text and "dave" not in text
    assert json.loads(text)["url"] == server.url + VAL
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
    r = only(fetch(tmp_path, [VAL], url, checksums=sums, **FAST))
    assert r.status == "resumed" and (tmp_path / VAL).read_bytes() == payload
    assert server.seen[-1].headers["If-Range"] == etag_of(payload)  # the stripped URL still matches


@pytest.mark.parametrize(
    "header",
    ["Authorization Bearer s3cr3tTOKEN", "Authorization: Bearer s3cr3tTOKEN\r\nX-Injected: 1", "s3cr3tTOKEN"],
    ids=["no-colon", "line-break", "bare-token"],
)
def test_malformed_header_is_refused_without_echoing_it(tmp_path, server, header):
    args = ["--dest", str(tmp_path / "d"), "--base-url", server.url, "--only", "devkit"]
    done = cli("fetch", *args, "--header", header)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("imagenet-prep: error: ") and len(done.stderr.strip().splitlines()) == 1
    assert "malformed" in done.stderr and "Name: value" in done.stderr
    assert "s3cr3tTOKEN" not in done.stderr + done.stdout
    assert server.seen == []


def test_library_refuses_a_header_value_with_a_line_break_without_echoing_it(tmp_path, server):
    with pytest.raises(UsageError, match="malformed") as exc:
        fetch(tmp_path, [VAL], server.url, headers={"Authorization": "Bearer s3cr3t\r\nX: y"}, **FAST)
    assert "s3cr3t" not in str(exc.value) and "Authorization" in str(exc.value)
    assert server.seen == []


# ------------------------------------------------------------------------------------------ .part symlinks


@pytest.mark.parametrize("local", [False, True], ids=["http", "local-mirror"])
def test_part_symlink_is_refused_and_its_target_untouched(tmp_path, server, payload, sums, local):
    dest = tmp_path / "dest"
    dest.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    (dest / f"{VAL}.part").symlink_to(victim)
    base = server.url
    if local:
        mirror = tmp_path / "mirror"
        mirror.mkdir()
        (mirror / VAL).write_bytes(payload)
        base = str(mirror)
    r = only(fetch(dest, [VAL], base, checksums=sums, **FAST))
    assert r.status == "failed" and "symbolic link" in r.error and f"{VAL}.part" in r.error
    assert victim.read_bytes() == b"precious\n"
    assert (dest / f"{VAL}.part").is_symlink()  # refused, not silently removed: the user decides
    assert_no_final(dest)


def _sums_file(tmp_path, sums) -> str:
    path = tmp_path / "MD5SUMS"
    path.write_text("".join(f"{h}  {n}\n" for n, h in sums.items()))
    return str(path)


def test_part_fifo_is_refused_without_hanging(tmp_path, server, sums):
    """A FIFO planted as the partial file: refused at once (a subprocess, so a hang fails the test)."""
    dest = tmp_path / "dest"
    dest.mkdir()
    os.mkfifo(dest / f"{VAL}.part")
    args = ["--dest", str(dest), "--base-url", server.url, "--checksums", _sums_file(tmp_path, sums)]
    done = cli("fetch", *args, "--only", "val", "--timeout", "2", timeout=20)
    assert done.returncode == 1, done.stderr
    assert "not a regular file" in done.stderr and "Traceback" not in done.stderr
    assert_no_final(dest)


def test_part_json_symlink_is_replaced_not_followed(tmp_path, server, payload, sums):
    victim = tmp_path / "victim.json"
    victim.write_text("precious\n")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / f"{VAL}.part.json").symlink_to(victim)
    server.faults.drop_after, server.faults.drop_requests = 1_000_000, 1
    r = only(fetch(dest, [VAL], server.url, checksums=sums, **FAST))
    assert r.status == "resumed" and (dest / VAL).read_bytes() == payload
    assert victim.read_text() == "precious\n"
    assert server.seen[1].headers["If-Range"] == etag_of(payload)  # the sidecar was written (as a file)


def test_part_json_fifo_does_not_hang_the_resume(tmp_path, server, payload, sums):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / f"{VAL}.part").write_bytes(payload[:1000])
    os.mkfifo(dest / f"{VAL}.part.json")
    args = ["--dest", str(dest), "--base-url", server.url, "--checksums", _sums_file(tmp_path, sums)]
    done = cli("fetch", *args, "--only", "val", "--timeout", "2", timeout=20)
    assert done.returncode == 0, done.stderr
    assert (dest / VAL).read_bytes() == payload
    assert "If-Range" not in server.seen[0].headers and server.seen[0].headers["Range"] == "bytes=1000-"


# ------------------------------------------------------------------------------------- minimum rate, caps

SLOW = {**FAST, "min_rate": 1024, "rate_window": 0.5, "max_stalls": 2}


def test_trickling_server_is_aborted_retried_then_fails_naming_the_rate(tmp_path, server, sums):
    server.faults.trickle_rate, server.faults.trickle_requests, server.faults.trickle_seconds = 200, 100, 4.0
    t0 = time.monotonic()
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **SLOW))
    elapsed = time.monotonic() - t0
    assert r.status == "failed", r
    assert "minimum rate" in r.error and "1.0 KB/s" in r.error and "--min-rate" in r.error
    assert len(server.seen) == SLOW["max_stalls"] + 1  # retried like a dropped connection, then gave up
    assert elapsed < 3.5  # well before the server itself would speed up
    assert_no_final(tmp_path)
    assert (tmp_path / f"{VAL}.part").stat().st_size > 0  # kept: a later run resumes


def test_one_slow_attempt_is_resumed(tmp_path, server, payload, sums):
    server.faults.trickle_rate, server.faults.trickle_requests, server.faults.trickle_seconds = 200, 1, 4.0
    t0 = time.monotonic()
    r = only(fetch(tmp_path, [VAL], server.url, checksums=sums, **SLOW))
    assert r.status == "resumed" and (tmp_path / VAL).read_bytes() == payload
    assert len(server.seen) == 2 and time.monotonic() - t0 < 3.5


def test_cli_has_min_rate(tmp_path):
    done = cli("fetch", "--help")
    assert "--min-rate" in done.stdout


def test_body_of_unknown_size_is_capped_by_max_size(tmp_path, server):
    """No Content-Length and no size known (a name only the MD5SUMS lists): stopped at max_size."""
    server.faults.omit_length = True
    data = server.files[EXTRA]
    accepted = Counter()
    r = only(
        fetch(tmp_path, [EXTRA], server.url, checksums={EXTRA: md5(data)}, max_size=300_000, progress=accepted,
              **FAST)
    )  # fmt: skip
    assert r.status == "failed" and "300.0 KB" in r.error and "--max-size" in r.error
    assert accepted.total <= 300_000  # not one byte past the cap was written
    assert_no_final(tmp_path, EXTRA)
    assert not (tmp_path / f"{EXTRA}.part").exists()


def test_body_of_unknown_size_stops_before_the_disk_is_full(tmp_path, server, monkeypatch):
    server.faults.omit_length = True
    data = server.files[EXTRA]
    real = fetch_mod.shutil.disk_usage

    class Usage:
        total, used, free = (
            10**12,
            10**12 - fetch_mod.FREE_SPACE_RESERVE - 400_000,
            (fetch_mod.FREE_SPACE_RESERVE + 400_000),
        )

    monkeypatch.setattr(fetch_mod.shutil, "disk_usage", lambda path: Usage)
    r = only(fetch(tmp_path, [EXTRA], server.url, checksums={EXTRA: md5(data)}, **FAST))
    monkeypatch.setattr(fetch_mod.shutil, "disk_usage", real)
    assert r.status == "failed" and "free" in r.error and "no size" in r.error
    assert_no_final(tmp_path, EXTRA)


def test_body_of_unknown_size_within_the_cap_downloads(tmp_path, server):
    server.faults.omit_length = True
    data = server.files[EXTRA]
    r = only(fetch(tmp_path, [EXTRA], server.url, checksums={EXTRA: md5(data)}, max_size=2_000_000, **FAST))
    assert r.status == "downloaded" and (tmp_path / EXTRA).read_bytes() == data


def test_known_size_never_accepts_more_bytes(tmp_path, server, payload, monkeypatch):
    """A size known beforehand (the catalog's) and a server that announces no length and sends more: not one
    byte beyond that size is accepted."""
    real_resolve = fetch_mod.resolve
    monkeypatch.setattr(
        fetch_mod, "resolve", lambda *a: [dataclasses.replace(e, size=SIZE) for e in real_resolve(*a)]
    )
    server.faults.omit_length = True
    server.files[VAL] = payload + b"x" * 3_000_000
    accepted = Counter()
    r = only(fetch(tmp_path, [VAL], server.url, checksums={VAL: md5(payload)}, progress=accepted, **FAST))
    assert r.status == "failed" and f"more than the {SIZE} bytes" in r.error
    assert accepted.total <= SIZE
    assert_no_final(tmp_path)
