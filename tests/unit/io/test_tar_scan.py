"""The fast tar header scan (``io.tar._scan_plain``) gives exactly what tarfile gives (``io.tar._scan_tarfile``):
the same members, offsets, header offsets, refusals and errors, on plain, quirky, hostile, damaged and
byte-by-byte mutated tars; and an index cache built with it is the same document as one built by tarfile."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import pytest
from support import tars as harden_tars
from support.tars import MemoryBytes

from imagenet_prep.errors import ArchiveError
from imagenet_prep.io import tar as tar_module
from imagenet_prep.io.bytesource import FileByteSource
from imagenet_prep.io.tar import TarMember, scan_tar
from imagenet_prep.io.tar_index import TrainArchive, ValArchive, read_cache_document
from imagenet_prep.sample import SampleSpec, write_sample
from imagenet_prep.sources.ilsvrc import index_class, index_class_columns, index_class_section


def _info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname, info.mtime, info.mode = size, kind, linkname, 1_330_000_000, 0o644
    return info


def _tar(entries: list[tuple[str | tarfile.TarInfo, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tar:
        for entry, data in entries:
            info = _info(entry, len(data)) if isinstance(entry, str) else entry
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _fix_checksum(header: bytearray, signed: bool = False) -> None:
    header[148:156] = b" " * 8
    total = sum(b - 256 if signed and b > 127 else b for b in header)
    header[148:156] = b"%06o\0 " % (total & 0o777777)


def _edit(data: bytes, header_index: int, changes: dict[int, bytes], *, fix: bool = True) -> bytes:
    """``data`` with bytes of the n-th header (a plain tar of plain headers) replaced."""
    out = bytearray(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        at = tar.getmembers()[header_index].offset
    header = bytearray(out[at : at + 512])
    for where, value in changes.items():
        header[where : where + len(value)] = value
    if fix:
        _fix_checksum(header)
    out[at : at + 512] = header
    return bytes(out)


PLAIN = [(f"n01440764_{n}.JPEG", bytes([n % 251 + 1]) * (n * 97 % 1500)) for n in (1, 22, 333, 4444, 5)]


def _cases() -> dict[str, bytes]:
    plain = _tar(PLAIN)
    body = 512 * len(PLAIN) + sum(-(-len(data) // 512) * 512 for _, data in PLAIN)  # up to the end marker
    hostile = [
        ("n01440764_1.JPEG", b"good one"),
        ("../evil", b"escape"),
        ("/abs/evil", b"absolute"),
        ("sub/n01440764_2.JPEG", b"in a folder"),
        ("sub/../../x.JPEG", b"x"),
        ("a\\b.JPEG", b"backslash"),
        ("C:x.JPEG", b"drive"),
        ("bell\x07.JPEG", b"control"),
        ("\udcff\udcfe.JPEG", b"not utf-8"),
        ("._n01440764_1.JPEG", b"resource fork"),
        ("x" * 201, b"too long"),
        ("", b"no name"),
        (".", b"dot"),
        ("./n01440764_7.JPEG", b"dot slash"),
        (_info("link.JPEG", kind=tarfile.SYMTYPE, linkname="/etc/passwd"), b""),
        (_info("rel.JPEG", kind=tarfile.SYMTYPE, linkname="n01440764_1.JPEG"), b""),
        (_info("hard.JPEG", kind=tarfile.LNKTYPE, linkname="n01440764_1.JPEG"), b""),
        (_info("dev.JPEG", kind=tarfile.CHRTYPE), b""),
        (_info("blk.JPEG", kind=tarfile.BLKTYPE), b""),
        (_info("fifo.JPEG", kind=tarfile.FIFOTYPE), b""),
        (_info("cont.JPEG", 5, kind=tarfile.CONTTYPE), b"conti"),
        (_info("folder", kind=tarfile.DIRTYPE), b""),
        (_info("./", kind=tarfile.DIRTYPE), b""),
        (_info("../up", kind=tarfile.DIRTYPE), b""),
        ("n01440764_1.JPEG", b"duplicate"),
        ("n01440764_3.JPEG", b"good too"),
    ]
    cases = {
        "gnu": plain,
        "ustar": _tar(PLAIN, tarfile.USTAR_FORMAT),
        "pax, plain names": _tar(PLAIN, tarfile.PAX_FORMAT),
        "empty members": _tar([("n01440764_1.JPEG", b""), ("n01440764_2.JPEG", b"z" * 512)]),
        "a '.' root folder and ./ names": _tar(
            [(_info("./", kind=tarfile.DIRTYPE), b""), *((f"./{n}", d) for n, d in PLAIN)]
        ),
        "folders in a tree": _tar(
            [(_info("imagenet-a/", kind=tarfile.DIRTYPE), b""), ("imagenet-a/n01498041/0.jpg", b"jpg")]
        ),
        "old-style folder (NUL type, trailing '/')": _edit(_tar([("dir/", b""), *PLAIN]), 0, {156: b"\0"}),
        "hostile, gnu": _tar(hostile),
        "hostile, pax": _tar(hostile, tarfile.PAX_FORMAT),
        "gnu long names": _tar([("n" * 150 + ".JPEG", b"long"), *PLAIN]),
        "pax long names": _tar([("p" * 150 + ".JPEG", b"long"), *PLAIN], tarfile.PAX_FORMAT),
        "ustar prefix": _tar(
            [("d" * 90 + "/" + "f" * 60 + ".JPEG", b"prefixed"), *PLAIN], tarfile.USTAR_FORMAT
        ),
        "pax non-ascii name": _tar([("caf\u00e9.JPEG", b"accent"), *PLAIN], tarfile.PAX_FORMAT),
        "gnu non-ascii name": _tar([("caf\u00e9.JPEG", b"accent"), *PLAIN]),
        "global pax header": _global_pax(),
        "gnu sparse": _with_sparse(harden_tars.gnu_sparse_member),
        "pax sparse": _with_sparse(harden_tars.pax_sparse_member),
        "bad checksum (2nd header)": _edit(plain, 1, {148: b"000001\0 "}, fix=False),
        "bad checksum (1st header)": _edit(plain, 0, {148: b"000001\0 "}, fix=False),
        "signed checksum": _signed_checksum(plain),
        "base-256 size": _edit(plain, 2, {124: b"\x80" + (len(PLAIN[2][1])).to_bytes(11, "big")}),
        "space-padded numbers": _edit(plain, 1, {100: b"   644 \0", 124: b"%10o \0" % len(PLAIN[1][1])}),
        "leading-space checksum": _leading_space_checksum(plain),
        "ustar prefix on a gnu header": _edit(plain, 3, {345: b"atime"}),
        "size with a sign": _edit(plain, 1, {124: b"+%010o\0" % len(PLAIN[1][1])}),
        "device numbers": _edit(plain, 1, {329: b"0000001\x000000002\0"}),
        "garbage device numbers": _edit(plain, 1, {329: b"zzzzzzz\0"}),
        "contiguous type": _edit(plain, 1, {156: b"7"}),
        "unknown type": _edit(plain, 1, {156: b"Q"}),
        "linkname on a file": _edit(plain, 1, {157: b"/etc/passwd"}),
        "no end marker": plain[:body],
        "half an end marker": plain[: body + 512],
        "garbage after the last member": plain[:body] + b"garbage!" * 128,
        "a zero block then more": plain[: body + 512] + _tar(PLAIN[:1]),
        "all zeros": b"\0" * 10240,
        "empty": b"",
        "not a tar": b"this is not a tar archive at all\n" * 40,
        "gzip": b"\x1f\x8b\x08\x00" + b"\0" * 600,
    }
    for cut in range(0, body + 1024, 301):
        cases[f"cut at {cut}"] = plain[:cut]
    return cases


def _with_sparse(craft) -> bytes:
    ht = harden_tars
    sparse = craft("s.JPEG", b"d" * 700, 1 << 20)
    return ht.to_bytes(ht.tar(ht.member("a.JPEG", b"x" * 10), sparse, ht.member("b.JPEG", b"y")))


def _global_pax() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "x"}) as tar:
        for name, data in PLAIN:
            tar.addfile(_info(name, len(data)), io.BytesIO(data))
    return buf.getvalue()


def _signed_checksum(plain: bytes) -> bytes:
    out = bytearray(plain)
    header = bytearray(out[:512])
    header[20:22] = b"\xc3\xa9"  # high-bit bytes in the name, and a checksum summed as signed chars
    _fix_checksum(header, signed=True)
    out[:512] = header
    return bytes(out)


def _leading_space_checksum(plain: bytes) -> bytes:
    out = bytearray(plain)
    header = bytearray(out[:512])
    _fix_checksum(header)
    header[148:156] = b" " + bytes(header[148:154]).lstrip(b"0").rjust(6, b" ") + b"\0"
    out[:512] = header
    return bytes(out)


def _outcome(scan, data: bytes, *, flat: bool, tolerate: bool, start: int = 0) -> tuple:
    source = MemoryBytes(b"\xaa" * start + data)
    try:
        members, refused = scan(source, start, len(data), "T", tolerate_cut_last=tolerate, flat=flat)
    except ArchiveError as exc:
        return ("error", str(exc))
    return ("ok", members, refused)


def _reference(source, start, length, label, *, tolerate_cut_last, flat):
    if source.read_at(start, min(length, 2)) == b"\x1f\x8b":
        return scan_tar(source, start, length, label, tolerate_cut_last=tolerate_cut_last, flat=flat)
    return tar_module._scan_tarfile(
        source, start, length, label, tolerate_cut_last=tolerate_cut_last, flat=flat
    )


CASES = _cases()
FAST = {"gnu", "ustar", "pax, plain names", "empty members", "a '.' root folder and ./ names", "folders in a tree",
        "old-style folder (NUL type, trailing '/')", "linkname on a file", "device numbers", "all zeros",
        "a zero block then more", "half an end marker", "gnu non-ascii name"}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_the_fast_scan_gives_what_tarfile_gives(name):
    data = CASES[name]
    for flat in (True, False):
        for tolerate in (True, False):
            for start in (0, 1536):
                got = _outcome(scan_tar, data, flat=flat, tolerate=tolerate, start=start)
                want = _outcome(_reference, data, flat=flat, tolerate=tolerate, start=start)
                assert got == want, (name, flat, tolerate, start)
    if not name.startswith("cut at"):
        fast = tar_module._scan_plain(MemoryBytes(data), 0, len(data), flat=True)
        assert (fast is not None) == (name in FAST), name  # the fast path takes exactly the plain tars


def test_the_hostile_tar_is_refused_member_by_member_on_the_fast_path_too():
    names = ["n01440764_1.JPEG", "._x.JPEG", "n01440764_1.JPEG", "../evil", "bell\x07.JPEG", "a\\b", "sub/c"]
    data = _tar([(name, name.encode()) for name in names])
    fast = tar_module._scan_plain(MemoryBytes(data), 0, len(data), flat=True)
    assert fast is not None
    members, refused = fast
    assert [(m.name, m.size) for m in members] == [("n01440764_1.JPEG", 16)]
    assert [name for name, _ in refused] == names[1:]
    reasons = [reason for _, reason in refused]
    assert "hidden" in reasons[0] and reasons[1] == "duplicate name" and "'..'" in reasons[2]
    assert "control" in reasons[3] and "backslash" in reasons[4] and "folder" in reasons[5]


@pytest.mark.slow  # thousands of mutated tars
def test_every_single_byte_change_in_a_header_gives_what_tarfile_gives():
    """Each byte of the second header set to a few telling values, with the checksum left wrong or fixed."""
    plain = _tar(PLAIN[:3])
    at = 512 + 512 * -(-len(PLAIN[0][1]) // 512)  # the second header
    values = [0, 0x20, 0x2F, 0x30, 0x38, 0xFF]
    fast_taken = 0
    for where in range(512):
        for value in values:
            for fix in (False, True):
                header = bytearray(plain[at : at + 512])
                header[where] = value
                if fix:
                    _fix_checksum(header)
                data = plain[:at] + header + plain[at + 512 :]
                # scan_tar is _scan_plain's answer when it gives one, else tarfile's: compare those answers
                for flat in (True, False) if fix else (True,):
                    fast = tar_module._scan_plain(MemoryBytes(data), 0, len(data), flat=flat)
                    if fast is not None:
                        want = _outcome(_reference, data, flat=flat, tolerate=True)
                        assert ("ok", *fast) == want, (where, value, fix, flat)
                        fast_taken += 1
    assert fast_taken > 2000  # most edits (names, fields tarfile does not read) stay on the fast path


# ------------------------------------------------------------------------------- the index, end to end
@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(tmp_path_factory.mktemp("release"), SampleSpec(classes=8, train_per_class=5, seed=3))


def _cache_documents(release, cache: Path) -> tuple[dict, dict]:
    train = TrainArchive(release.train_tar, cache_dir=cache)
    for wnid in train.classes():
        train.members(wnid)
    val = ValArchive(release.val_tar, cache_dir=cache)
    val.members()
    paths = train.save(), val.save()
    return tuple(read_cache_document(p) for p in paths)  # type: ignore[return-value, arg-type]


def test_the_index_cache_is_the_same_document_as_tarfile_builds(release, tmp_path, monkeypatch):
    fast = _cache_documents(release, tmp_path / "fast")
    source = FileByteSource(release.train_tar)
    first = TrainArchive(release.train_tar, cache_dir=tmp_path / "probe").classes()
    some = next(iter(first.values()))
    assert tar_module._scan_plain(source, some.offset, some.size, flat=True) is not None  # it ran fast
    monkeypatch.setattr(tar_module, "_scan_plain", lambda *args, **kwargs: None)  # tarfile only
    assert _cache_documents(release, tmp_path / "tarfile") == fast
    assert sum(len(entry["names"]) for entry in fast[0]["members"].values()) == 8 * 5


def test_the_pool_reply_unpickles_into_index_class_s_result(release):
    train = TrainArchive(release.train_tar, cache_dir=None)
    for class_tar in train.classes().values():
        want = index_class(str(release.train_tar), class_tar)
        reply = index_class_columns(str(release.train_tar), class_tar)
        wire = pickle.dumps(reply)
        got = pickle.loads(wire)
        assert got == want and len(got[0]) == 5
        assert all(
            isinstance(m, TarMember) and type(m.offset) is type(m.header_offset) is int for m in got[0]
        )
        assert b"TarMember" not in wire  # columns, not records, cross the process boundary
        members, refused, nbytes = reply  # a runner that ran it in-process hands over the reply itself
        assert (members, refused, nbytes) == want


def test_the_pool_sends_each_class_as_its_cache_section(release, tmp_path):
    """A cold index in a pool: each worker sends its class as the cache section it becomes (one bytes
    object, no name list, no record per member); the parent keeps those bytes and writes them as they came.
    The cache, the members and the plan's columns are those of a class indexed in this process."""
    train = TrainArchive(release.train_tar, cache_dir=tmp_path / "pool")
    here = TrainArchive(release.train_tar, cache_dir=tmp_path / "here")
    for wnid, class_tar in train.classes().items():
        reply = index_class_section(str(release.train_tar), class_tar)
        wire = pickle.dumps(reply)
        assert b"TarMember" not in wire and b"array" not in wire  # bytes, not records or columns
        (data, count, gap), refused, nbytes = pickle.loads(wire)
        assert gap == 512 and count == 5 and refused == [] and nbytes >= 512 * count
        train.add_section(wnid, (data, count, gap), refused)
        assert train.has_members(wnid) and train.members(wnid) == here.members(wnid)
    assert train.unsaved
    assert read_cache_document(train.save()) == read_cache_document(here.save())  # type: ignore[arg-type]
    again = TrainArchive(release.train_tar, cache_dir=tmp_path / "pool")
    assert all(again.members(wnid) == here.members(wnid) for wnid in here.classes())
    assert again.source.bytes_read == 0  # read from the cache the sections made
