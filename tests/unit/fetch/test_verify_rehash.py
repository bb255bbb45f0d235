"""Issue 15, verify: bit rot with the mtime restored is invisible to the (size, mtime) cache; --rehash is the
way to re-read every archive and re-record its MD5."""

from __future__ import annotations

import os
import subprocess
import sys

from support.fetching import VAL, by_file, md5

from imagenet_prep.fetch.verify import cached_md5, verify


def rot_in_place(path) -> bytes:
    """Flip one byte and put the modification time back: what bit rot (or a restored backup) looks like."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    with open(path, "r+b") as f:
        f.write(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return bytes(data)


def verify_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imagenet_prep", "verify", *args], capture_output=True, text=True, timeout=60
    )


def test_rehash_ignores_the_cache_and_records_the_fresh_md5(release):
    folder, sums = release
    verify(folder, checksums=sums)
    rotten = rot_in_place(folder / VAL)
    assert by_file(verify(folder, checksums=sums))[VAL].ok  # the cache cannot see it: the documented limit
    r = by_file(verify(folder, checksums=sums, rehash=True))[VAL]
    assert r.status == "mismatch" and not r.cached and r.bytes_read == len(rotten)
    assert r.actual_md5 == md5(rotten)
    assert cached_md5(folder / VAL) == md5(rotten)  # re-recorded: a plain verify now reports it too
    again = by_file(verify(folder, checksums=sums))[VAL]
    assert again.cached and again.status == "mismatch"


def test_cli_verify_rehash(release, tmp_path):
    folder, sums = release
    sums_file = tmp_path / "MD5SUMS"
    sums_file.write_text("".join(f"{h}  {n}\n" for n, h in sums.items()))
    assert verify_cli(str(folder), "--checksums", str(sums_file)).returncode == 0
    rot_in_place(folder / VAL)
    cached = verify_cli(str(folder), "--checksums", str(sums_file))
    assert cached.returncode == 0 and "(cached)" in cached.stdout
    done = verify_cli(str(folder), "--checksums", str(sums_file), "--rehash")
    assert done.returncode == 1, done.stderr
    assert f"MISMATCH    {VAL}" in done.stdout and "(cached)" not in done.stdout
    assert "Traceback" not in done.stderr
    helptext = verify_cli("--help").stdout
    assert "--rehash" in helptext and "bit rot" in helptext
