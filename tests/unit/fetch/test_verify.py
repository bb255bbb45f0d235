"""verify: size and MD5 of present archives, the (size, mtime) cache, the CLI's exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from support.cli import main_in_process as run_cli
from support.fetching import DEVKIT, VAL, by_file, md5
from support.fetching import VERIFY_EXTRA as EXTRA

from imagenet_prep.errors import InputError
from imagenet_prep.fetch import verify as verify_mod
from imagenet_prep.fetch.catalog import by_key
from imagenet_prep.fetch.verify import SIDECAR_NAME, md5_file, verify


def test_md5_file_matches_hashlib_and_reports_progress(tmp_path):
    data = random.Random(1).randbytes(9 * 1024 * 1024 + 7)  # more than two 4 MiB chunks
    path = tmp_path / "f"
    path.write_bytes(data)
    seen: list[int] = []
    assert md5_file(path, seen.append) == md5(data)
    assert sum(seen) == len(data) and len(seen) == 3


def test_verify_checks_present_known_archives(release):
    folder, sums = release
    results = by_file(verify(folder, checksums=sums))
    assert set(results) == {VAL, DEVKIT, EXTRA}  # unrelated.txt is not a known archive
    for name, r in results.items():
        assert r.ok and r.status == "ok" and r.actual_md5 == sums[name] and not r.cached
        assert r.bytes_read == (folder / name).stat().st_size
    # Without the MD5SUMS, the catalog's MD5 applies to the catalog names (and these bytes are not the real
    # ones).
    results = by_file(verify(folder))
    assert set(results) == {VAL, DEVKIT}
    assert results[DEVKIT].status == "mismatch" and results[DEVKIT].expected_md5 == by_key("devkit").md5
    assert results[DEVKIT].cached  # the hash of the bytes was cached by the first run, whatever was expected
    # The catalog knows the real val size, so the wrong size fails without reading a byte.
    assert results[VAL].size_ok is False and results[VAL].md5_ok is None and results[VAL].bytes_read == 0


def test_second_verify_reads_no_bytes(release):
    folder, sums = release
    first = verify(folder, checksums=sums)
    assert sum(r.bytes_read for r in first) > 0
    second = verify(folder, checksums=sums)
    assert all(r.ok and r.cached for r in second)
    assert sum(r.bytes_read for r in second) == 0
    # Proof that nothing is read: swap the bytes for others of the same size and put the mtime back.
    # The cache (keyed by size and mtime, as documented) still answers with the old hash.
    path = folder / VAL
    st = path.stat()
    path.write_bytes(bytes(st.st_size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    third = by_file(verify(folder, checksums=sums))
    assert third[VAL].cached and third[VAL].ok and third[VAL].bytes_read == 0


def test_modified_file_is_rehashed(release):
    folder, sums = release
    verify(folder, checksums=sums)
    path = folder / VAL
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touch: a later mtime
    r = by_file(verify(folder, checksums=sums))[VAL]
    assert not r.cached and r.bytes_read == len(data)
    assert r.status == "mismatch" and r.md5_ok is False and r.actual_md5 == md5(bytes(data))


def test_damaged_cache_is_ignored(release):
    folder, sums = release
    verify(folder, checksums=sums)
    (folder / SIDECAR_NAME).write_text("{not json")
    results = verify(folder, checksums=sums)
    assert all(r.ok and not r.cached for r in results)
    assert json.loads((folder / SIDECAR_NAME).read_text())["entries"][VAL]["md5"] == sums[VAL]


def test_without_cache(release):
    folder, sums = release
    verify(folder, checksums=sums)
    results = verify(folder, checksums=sums, use_cache=False)
    assert all(r.ok and not r.cached and r.bytes_read > 0 for r in results)


def test_unverifiable_archive(tmp_path):
    (tmp_path / "ILSVRC2012_devkit_t3.tar.gz").write_bytes(b"x" * 10)  # the catalog has no MD5 for it
    (r,) = verify(tmp_path)
    assert r.status == "unverified" and not r.ok and r.bytes_read == 0


def test_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        verify(tmp_path / "nope")


@contextlib.contextmanager
def read_only(folder: Path):
    """Make ``folder`` really read-only: permissions for a normal user, a read-only bind mount for root."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(
            f"running as root without mount rights, cannot make a folder read-only: {mounted.stderr!r}"
        )
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_read_only_folder_caches_in_cache_dir(release, tmp_path, monkeypatch):
    folder, sums = release
    cache = tmp_path / "cache"
    monkeypatch.setenv("IMAGENET_PREP_CACHE", str(cache))
    with read_only(folder):
        with pytest.raises(OSError):
            (folder / "probe").write_text("x")
        first = verify(folder, checksums=sums)
        second = verify(folder, checksums=sums)
    assert not (folder / SIDECAR_NAME).exists()
    assert all(r.ok and not r.cached for r in first)
    assert all(r.ok and r.cached and r.bytes_read == 0 for r in second)
    (stored,) = (cache / "verify").glob("*.json")
    assert set(json.loads(stored.read_text())["entries"]) == {VAL, DEVKIT, EXTRA}
    assert verify_mod.cache_dir() == cache


# ------------------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def sums_file(release, tmp_path) -> Path:
    _, sums = release
    path = tmp_path / "MD5SUMS"
    path.write_text("".join(f"{h}  {n}\n" for n, h in sums.items()))
    return path


def test_cli_verify_ok_then_cached(release, sums_file, capsys, monkeypatch):
    folder, sums = release
    code, out, err = run_cli(["verify", str(folder), "--checksums", str(sums_file)], capsys, monkeypatch)
    assert code == 0, err
    assert f"OK          {VAL}" in out and sums[VAL] in out and "3 ok, 0 mismatched" in out
    assert "(cached)" not in out
    code, out, _ = run_cli(["verify", str(folder), "--checksums", str(sums_file)], capsys, monkeypatch)
    assert code == 0 and out.count("(cached)") == 3


def test_cli_verify_mismatch_exits_1(release, sums_file, capsys, monkeypatch):
    folder, sums = release
    (folder / EXTRA).write_bytes(b"changed")
    code, out, err = run_cli(["verify", str(folder), "--checksums", str(sums_file)], capsys, monkeypatch)
    assert code == 1
    assert f"MISMATCH    {EXTRA}" in out and "2 ok, 1 mismatched" in out
    assert f"1 archive(s) do not match: {EXTRA}" in err


def test_cli_verify_hints_at_md5sums_in_the_folder(release, capsys, monkeypatch):
    folder, sums = release
    (folder / "MD5SUMS").write_text("".join(f"{h}  {n}\n" for n, h in sums.items()))
    code, out, err = run_cli(["verify", str(folder)], capsys, monkeypatch)
    assert code == 1 and f"pass --checksums {folder / 'MD5SUMS'}" in err
    code, out, err = run_cli(
        ["verify", str(folder), "--checksums", str(folder / "MD5SUMS")], capsys, monkeypatch
    )
    assert code == 0 and "3 ok" in out


def test_cli_verify_json(release, sums_file, capsys, monkeypatch):
    folder, sums = release
    (folder / DEVKIT).unlink()
    code, out, _ = run_cli(
        ["verify", str(folder), "--checksums", str(sums_file), "--json"], capsys, monkeypatch
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True and doc["missing"] == [DEVKIT]
    assert {r["file"]: (r["status"], r["actual_md5"]) for r in doc["results"]} == {
        VAL: ("ok", sums[VAL]),
        EXTRA: ("ok", sums[EXTRA]),
    }


def test_cli_verify_missing_folder_or_nothing_known_exits_2(tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(["verify", str(tmp_path / "nope")], capsys, monkeypatch)
    assert code == 2 and "not a folder" in err
    (tmp_path / "notes.txt").write_text("hello")
    code, _, err = run_cli(["verify", str(tmp_path)], capsys, monkeypatch)
    assert code == 2 and "no known archive" in err and "ILSVRC2012_img_train.tar" in err and "fetch" in err
