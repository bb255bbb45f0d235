"""The WebDataset writer's tar headers: the fast header (a template tarfile made, patched) is tarfile's."""

from __future__ import annotations

import io
import tarfile

from hypothesis import given
from hypothesis import strategies as st

from imagenet_prep.outputs import wds


def _tarfile(name: str, size: int) -> bytes | type[Exception]:
    try:
        return wds._tarfile_header(name, size)
    except Exception as exc:  # tarfile's refusals (a size over the ustar field) must be the fast path's too
        return type(exc)


def _fast(name: str, size: int) -> bytes | type[Exception]:
    try:
        return wds.member_header(name, size)
    except Exception as exc:
        return type(exc)


@given(st.text(max_size=130), st.integers(min_value=0, max_value=2**40))
def test_the_member_header_is_tarfile_s(name, size):
    assert _fast(name, size) == _tarfile(name, size)


def test_the_member_header_at_its_edges_and_read_back():
    for name in ("", "a", "k.cls", "x" * 99, "x" * 100, "x" * 101, "é" * 50, "é" * 51, "a/b.jpg"):
        for size in (0, 1, 511, 512, 2500, 8**11 - 1, 8**11):
            assert _fast(name, size) == _tarfile(name, size), (name, size)
    header = wds.member_header("n01440764_10026.jpg", 3)
    with tarfile.open(fileobj=io.BytesIO(header + b"abc".ljust(512, b"\0") + bytes(1024))) as tar:
        (info,) = tar.getmembers()
    assert (info.name, info.size, info.mode, info.mtime, info.uname) == (
        "n01440764_10026.jpg",
        3,
        0o644,
        0,
        "",
    )
