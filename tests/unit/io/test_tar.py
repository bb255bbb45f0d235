"""Archive index and readers, on real tars: the miniature release and hand-made hostile archives."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import subprocess
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from support.tars import MemoryBytes

from imagenet_prep.errors import ArchiveError
from imagenet_prep.io.bytesource import ByteSource, FileByteSource
from imagenet_prep.io.tar import ClassTar, TarMember, index_class_tar, read_member
from imagenet_prep.io.tar_index import TrainArchive, ValArchive, cache_path_candidates
from imagenet_prep.sample import SampleSpec, write_sample


# ------------------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(tmp_path_factory.mktemp("release"), SampleSpec(classes=10, train_per_class=6, seed=5))


@pytest.fixture(scope="module")
def big_release(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(tmp_path_factory.mktemp("big"), SampleSpec(classes=100, train_per_class=10, seed=2))


def _copy(release_file: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(release_file, folder / release_file.name))


def _info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.linkname = linkname
    info.mtime = 1_300_000_000
    return info


def _tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, len(data)), data


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _extract_reference(train_tar: Path) -> dict[str, dict[str, bytes]]:
    """What `tar x` would give, via tarfile in memory: wnid -> image name -> bytes."""
    out: dict[str, dict[str, bytes]] = {}
    with tarfile.open(train_tar) as outer:
        for cls in outer:
            with tarfile.open(fileobj=outer.extractfile(cls)) as inner:
                out[cls.name[:-4]] = {m.name: inner.extractfile(m).read() for m in inner}
    return out


# ------------------------------------------------------------------------------------------ correctness
def test_train_index_matches_tarfile_extraction(release, tmp_path):
    train = _copy(release.train_tar, tmp_path)
    reference = _extract_reference(train)
    archive = TrainArchive(train)
    classes = archive.classes()
    assert list(classes) == sorted(release.wnids)
    assert all(isinstance(c, ClassTar) and c.name == f"{c.wnid}.tar" for c in classes.values())
    for wnid in release.wnids:
        members = archive.members(wnid)
        assert tuple(m.name for m in members) == release.train_files[wnid]
        for member in members:
            assert read_member(archive.source, member) == reference[wnid][member.name]
            assert read_member(train, member) == reference[wnid][member.name]  # path form
    assert archive.refused == []


def test_val_index_matches_tarfile_extraction(release, tmp_path):
    val = _copy(release.val_tar, tmp_path)
    with tarfile.open(val) as tar:
        reference = {m.name: tar.extractfile(m).read() for m in tar}
    archive = ValArchive(val)
    members = archive.members()
    assert [m.name for m in members] == sorted(release.val_files) == list(reference)
    for member in members:
        assert read_member(archive.source, member) == reference[member.name]
    assert archive.refused == []


@pytest.mark.slow  # writes a 100-class release
def test_reading_one_class_of_a_100_class_train_tar_touches_under_5_percent(big_release, tmp_path):
    train = _copy(big_release.train_tar, tmp_path)
    archive = TrainArchive(train)
    wnid = big_release.wnids[57]
    images = [read_member(archive.source, m) for m in archive.members(wnid)]
    assert len(images) == 10 and all(img[:2] == b"\xff\xd8" for img in images)
    total = train.stat().st_size
    fraction = archive.source.bytes_read / total
    assert len(archive.classes()) == 100
    assert fraction < 0.05, f"read {archive.source.bytes_read} of {total} bytes ({fraction:.1%})"


def test_long_names_and_pax_headers_are_indexed(tmp_path):
    long_name = "ILSVRC2012_val_" + "7" * 150 + ".JPEG"
    unicode_name = "caf\u00e9_\u00fcber.JPEG"  # needs a pax header in PAX format
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        path = tmp_path / f"val-{fmt}.tar"
        path.write_bytes(_tar_bytes([_file(long_name, b"A" * 700), _file(unicode_name, b"B" * 5)], fmt))
        members = {m.name: m for m in ValArchive(path, cache_dir=tmp_path / "c").members()}
        assert set(members) == {long_name, unicode_name}
        assert read_member(path, members[long_name]) == b"A" * 700
        assert read_member(path, members[unicode_name]) == b"B" * 5


def test_read_member_short_read_is_an_archive_error(release):
    past_end = TarMember("x.JPEG", release.val_tar.stat().st_size - 10, 100)
    with pytest.raises(ArchiveError, match="truncated"):
        read_member(release.val_tar, past_end)


# --------------------------------------------------------------------------------- sources and processes
def test_other_byte_sources_plug_in(release):
    source = MemoryBytes(release.train_tar.read_bytes())
    assert isinstance(source, ByteSource)
    archive = TrainArchive(release.train_tar)
    wnid = release.wnids[0]
    members, refused = index_class_tar(source, archive.classes()[wnid])
    assert members == archive.members(wnid) and refused == []
    assert read_member(source, members[0]) == read_member(archive.source, members[0])


def test_file_byte_source_pickles_its_path_only_and_reopens(release):
    source = FileByteSource(release.train_tar)
    first = source.read_at(0, 512)
    blob = pickle.dumps(source)
    assert len(blob) < 300  # the path, not a file handle or data
    clone = pickle.loads(blob)
    assert clone.bytes_read == 0 and clone.read_at(0, 512) == first and clone.size == source.size


def test_index_class_tar_in_a_process_pool_then_save(release, tmp_path):
    train = _copy(release.train_tar, tmp_path)
    archive = TrainArchive(train)
    classes = archive.classes()
    wnids = list(release.wnids[:3])
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(index_class_tar, [str(train)] * 3, [classes[w] for w in wnids]))
    for wnid, (members, refused) in zip(wnids, results, strict=True):
        archive.add_members(wnid, members, refused)
        assert archive.has_members(wnid)
    assert archive.source.bytes_read < 100 * 1024  # the parent only read the outer headers
    saved = archive.save()
    assert saved == train.with_name(train.name + ".index.json")
    again = TrainArchive(train)
    for wnid, (members, _) in zip(wnids, results, strict=True):
        assert again.members(wnid) == members
        assert read_member(again.source, members[0])[:2] == b"\xff\xd8"
    assert again.indexed_wnids() == tuple(sorted(wnids))


# ------------------------------------------------------------------------------------------------ cache
def test_cache_is_reused_and_a_stale_cache_is_ignored(release, tmp_path):
    train = _copy(release.train_tar, tmp_path)
    wnid = release.wnids[4]
    first = TrainArchive(train)
    members = first.members(wnid)
    assert first.source.bytes_read > 0
    cache_file = first.save()
    assert cache_file is not None and cache_file.parent == train.parent
    assert not [p for p in train.parent.iterdir() if ".tmp-" in p.name]  # atomic: no temp left

    second = TrainArchive(train)
    assert second.cache_path == cache_file
    assert second.classes() == first.classes() and second.members(wnid) == members
    assert second.source.bytes_read == 0

    # The same bytes under a new mtime: the key no longer matches, so the archive is indexed again.
    st = train.stat()
    os.utime(train, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    third = TrainArchive(train)
    assert third.cache_path is None
    third.classes()
    assert third.source.bytes_read > 0

    # Different bytes (another class set): the stale index must not leak the old classes.
    other = write_sample(
        tmp_path / "other", SampleSpec(classes=3, train_per_class=2, val_per_class=0, seed=9)
    )
    shutil.copyfile(other.train_tar, train)
    fourth = TrainArchive(train)
    assert list(fourth.classes()) == list(other.wnids)


def test_val_cache_round_trip_and_cache_dir(release, tmp_path):
    val = _copy(release.val_tar, tmp_path / "src")
    cache_dir = tmp_path / "cache"
    archive = ValArchive(val, cache_dir=cache_dir)
    members = archive.members()
    saved = archive.save()
    assert saved is not None and saved.parent == cache_dir
    assert _tree(tmp_path / "src") == {val.name}  # nothing beside the archive when cache_dir is given
    again = ValArchive(val, cache_dir=cache_dir)
    assert again.members() == members and again.source.bytes_read == 0


def test_a_corrupt_cache_file_is_ignored(release, tmp_path):
    val = _copy(release.val_tar, tmp_path)
    cache_file = cache_path_candidates(val)[0]
    cache_file.write_text("{not json")
    archive = ValArchive(val)
    assert [m.name for m in archive.members()] == sorted(release.val_files)
    assert archive.save() == cache_file and ValArchive(val).cache_path == cache_file


def _make_read_only(folder: Path) -> bool:
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return True
    # root ignores permission bits; the immutable attribute stops even root (ext4 and most local fs).
    return (
        shutil.which("chattr") is not None and subprocess.run(["chattr", "+i", str(folder)]).returncode == 0
    )


def _undo_read_only(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], check=False)
    folder.chmod(0o755)


@pytest.mark.parametrize("env", ["IMAGENET_PREP_CACHE", "XDG_CACHE_HOME"])
def test_read_only_archive_folder_falls_back_to_the_user_cache(release, tmp_path, monkeypatch, env):
    folder = tmp_path / "readonly"
    val = _copy(release.val_tar, folder)
    monkeypatch.delenv("IMAGENET_PREP_CACHE", raising=False)
    monkeypatch.setenv(env, str(tmp_path / "user-cache"))
    if not _make_read_only(folder):
        pytest.skip("cannot make a read-only folder here (root without chattr)")
    try:
        archive = ValArchive(val)
        archive.members()
        saved = archive.save()
        assert saved is not None and saved.is_file()
        assert (tmp_path / "user-cache") in saved.parents
        assert _tree(folder) == {val.name}
        assert ValArchive(val).source.bytes_read == 0 and ValArchive(val).cache_path == saved
    finally:
        _undo_read_only(folder)


# ------------------------------------------------------------------------------------------ bad input
def test_missing_archive_says_how_to_get_it(tmp_path):
    with pytest.raises(ArchiveError, match="imagenet-prep fetch"):
        TrainArchive(tmp_path / "ILSVRC2012_img_train.tar")


@pytest.mark.parametrize(
    "content, pattern",
    [
        (b"this is not a tar archive at all\n" * 40, "not a tar archive"),
        (b"", "not a tar archive"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 600, "gzip"),
    ],
)
def test_non_tar_files_raise_a_clear_error(tmp_path, content, pattern):
    path = tmp_path / "ILSVRC2012_img_val.tar"
    path.write_bytes(content)
    with pytest.raises(ArchiveError, match=pattern) as info:
        ValArchive(path).members()
    assert str(path) in str(info.value) and "imagenet-prep" in str(info.value)
    with pytest.raises(ArchiveError):
        TrainArchive(path).classes()


def _cut_points(train: Path) -> dict[str, int]:
    with tarfile.open(train) as tar:
        members = tar.getmembers()
    last = members[-1]
    return {
        "mid-data of the last class tar": last.offset_data + last.size // 2,
        "mid-header": members[-1].offset + 100,
        "at a header boundary (no end marker)": last.offset_data
        + tarfile.BLOCKSIZE * ((last.size + 511) // 512),
    }


@pytest.mark.parametrize("where", ["mid-data of the last class tar", "mid-header", "at a header boundary"])
def test_truncated_outer_tar_is_an_error(release, tmp_path, where):
    train = _copy(release.train_tar, tmp_path)
    cut = next(v for k, v in _cut_points(train).items() if k.startswith(where))
    with open(train, "r+b") as handle:
        handle.truncate(cut)
    with pytest.raises(ArchiveError, match="truncated") as info:
        TrainArchive(train).classes()
    assert str(train) in str(info.value) and "imagenet-prep verify" in str(info.value)
    val = _copy(release.val_tar, tmp_path / "v")
    with open(val, "r+b") as handle:
        handle.truncate(val.stat().st_size - 9000)
    with pytest.raises(ArchiveError, match="truncated"):
        ValArchive(val).members()


def _train_tar_with(tmp_path: Path, class_tars: dict[str, bytes], extra: list | None = None) -> Path:
    path = tmp_path / "ILSVRC2012_img_train.tar"
    entries = [_file(name, data) for name, data in class_tars.items()] + (extra or [])
    path.write_bytes(_tar_bytes(entries))
    return path


def test_truncated_inner_tar_refuses_the_cut_image_only(tmp_path):
    good = [_file(f"n01440764_{n}.JPEG", bytes([n % 256]) * 3000) for n in (1, 22, 333)]
    whole = _tar_bytes(good)
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        last = tar.getmembers()[-1]
    cut = whole[: last.offset_data + 1000]  # the class tar ends inside its last image
    train = _train_tar_with(tmp_path, {"n01440764.tar": cut})
    archive = TrainArchive(train)
    members = archive.members("n01440764")
    assert [m.name for m in members] == ["n01440764_1.JPEG", "n01440764_22.JPEG"]
    assert read_member(train, members[1]) == bytes([22]) * 3000
    assert archive.refused == [("n01440764.tar/n01440764_333.JPEG", archive.refused[0][1])]
    assert "truncated" in archive.refused[0][1]


@pytest.mark.parametrize(
    "inner, pattern",
    [(b"garbage, not a tar" * 100, "not a tar archive"), ("header-cut", "truncated")],
)
def test_broken_inner_tar_names_the_class(tmp_path, inner, pattern):
    if inner == "header-cut":
        whole = _tar_bytes([_file("n01443537_1.JPEG", b"x" * 600), _file("n01443537_2.JPEG", b"y" * 600)])
        inner = whole[: 512 + 1024 + 200]  # inside the second header
    train = _train_tar_with(tmp_path, {"n01443537.tar": inner})
    with pytest.raises(ArchiveError, match=pattern) as info:
        TrainArchive(train).members("n01443537")
    assert "n01443537.tar" in str(info.value) and str(train) in str(info.value)


def _hostile_entries(prefix: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [
        _file(f"{prefix}_1.JPEG", b"good one"),
        _file("../evil", b"escape"),
        _file("/abs/evil", b"absolute"),
        _file(f"sub/{prefix}_2.JPEG", b"in a folder"),
        (_info("link.JPEG", kind=tarfile.SYMTYPE, linkname="/etc/passwd"), b""),
        (_info("hard.JPEG", kind=tarfile.LNKTYPE, linkname=f"{prefix}_1.JPEG"), b""),
        (_info("dev.JPEG", kind=tarfile.CHRTYPE), b""),
        (_info("fifo.JPEG", kind=tarfile.FIFOTYPE), b""),
        (_info("folder", kind=tarfile.DIRTYPE), b""),
        _file(f"{prefix}_1.JPEG", b"duplicate"),
        _file(f"{prefix}_3.JPEG", b"good too"),
    ]


_REFUSED = {
    "../evil": "'..'",
    "/abs/evil": "absolute",
    "link.JPEG": "symbolic link",
    "hard.JPEG": "hard link",
    "dev.JPEG": "device",
    "fifo.JPEG": "FIFO",
    "folder": "folder",
}


def test_hostile_members_are_refused_and_nothing_is_written(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # a relative '../evil' would land in tmp_path
    src = tmp_path / "src"
    src.mkdir()
    inner = _tar_bytes(_hostile_entries("n01440764"))
    outer_extra = [
        _file("../n01443537.tar", inner),
        (_info("n01484850.tar", kind=tarfile.SYMTYPE, linkname="n01440764.tar"), b""),
        _file("README.txt", b"not a class tar"),
    ]
    train = _train_tar_with(src, {"n01440764.tar": inner}, outer_extra)
    val = src / "ILSVRC2012_img_val.tar"
    val.write_bytes(_tar_bytes(_hostile_entries("ILSVRC2012_val_00000001")))
    before = _tree(tmp_path)

    archive = TrainArchive(train, cache_dir=tmp_path / "cache")
    assert list(archive.classes()) == ["n01440764"]
    outer_refused = dict(archive.refused)
    assert "'..'" in outer_refused["../n01443537.tar"]
    assert "symbolic link" in outer_refused["n01484850.tar"]
    assert "not a class tar" in outer_refused["README.txt"]
    members = archive.members("n01440764")
    assert [m.name for m in members] == ["n01440764_1.JPEG", "n01440764_3.JPEG"]
    assert read_member(train, members[0]) == b"good one"  # the first of the duplicates
    inner_refused = {name.split("/", 1)[1]: reason for name, reason in archive.refused if "/" in name}
    for name, reason in _REFUSED.items():
        assert reason in inner_refused[name], (name, inner_refused.get(name))
    assert "'/'" in inner_refused["sub/n01440764_2.JPEG"]
    assert inner_refused["n01440764_1.JPEG"] == "duplicate name"

    val_archive = ValArchive(val, cache_dir=tmp_path / "cache")
    assert [m.name for m in val_archive.members()] == [
        "ILSVRC2012_val_00000001_1.JPEG",
        "ILSVRC2012_val_00000001_3.JPEG",
    ]
    assert {name for name, _ in val_archive.refused} >= set(_REFUSED)

    assert _tree(tmp_path) == before  # indexing writes nothing (not even the cache until save())
    archive.save()
    val_archive.save()
    assert _tree(tmp_path) - before == {"cache", *(f"cache/{p.name}" for p in (tmp_path / "cache").iterdir())}
    assert not list(tmp_path.rglob("evil"))
    assert list(work.iterdir()) == []


def test_train_archive_that_holds_no_class_tars(tmp_path, release):
    with pytest.raises(ArchiveError, match="no <wnid>.tar class tars"):
        TrainArchive(release.val_tar, cache_dir=tmp_path).classes()
    with pytest.raises(ArchiveError, match="n99999999 is not in"):
        TrainArchive(release.train_tar, cache_dir=tmp_path).members("n99999999")


# ----------------------------------------------------------------------- the worker's header check
def _header_check(data: bytes, header_at: int, name: str, size: int) -> str | None:
    from imagenet_prep.io.tar import member_header_problem

    return member_header_problem(MemoryBytes(data), header_at, header_at + 512, size, name)


def test_the_header_check_s_fast_path_answers_as_tarfile_does(monkeypatch):
    """``member_header_problem`` parses a plain header itself (the worker checks one per image); every single-byte
    change of a header, its checksum fixed or not, gets the answer the tarfile path gives for it."""
    from imagenet_prep.io import tar as tar_module

    good = b"x" * 700
    for fmt in (tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT):
        data = _tar_bytes([_file("n01440764_1.JPEG", b"a" * 30), _file("./n01440764_22.JPEG", good)], fmt)
        at = 1024  # the second header
        fast_taken = 0
        for where in range(512):
            for value in (0, 0x20, 0x2F, 0x30, 0x35, 0x38, 0xFF):
                for fix in (False, True):
                    header = bytearray(data[at : at + 512])
                    header[where] = value
                    if fix:
                        header[148:156] = b" " * 8
                        header[148:156] = b"%06o\0 " % sum(header)
                    mutated = data[:at] + bytes(header) + data[at + 512 :]
                    for name, size in (
                        ("n01440764_22.JPEG", 700),
                        ("n01440764_2.JPEG", 700),
                        ("22.JPEG", 699),
                    ):
                        got = _header_check(mutated, at, name, size)
                        with monkeypatch.context() as patched:
                            patched.setattr(tar_module, "_plain_file_header", lambda block: None)
                            want = _header_check(mutated, at, name, size)
                        assert got == want, (fmt, where, value, fix, name, size)
                    fast_taken += tar_module._plain_file_header(bytes(header)) is not None
        assert fast_taken > 2000  # most changes (fields a regular member's check does not read) stay fast
        assert _header_check(data, at, "n01440764_22.JPEG", 700) is None
