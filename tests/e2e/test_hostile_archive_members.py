"""Hostile archives through a real build (issue 15 items 2, 3, 4 and 6): members claiming gigabytes, a
tampered or malformed index cache, GNU/pax sparse members, a non-1K class tar, a stray file in the val tar.

Archives are written in the exact ILSVRC2012 layout from the miniature release's real JPEGs; members tarfile
cannot write (sparse ones, gigabyte members stored as holes in a sparse file) are crafted byte by byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support import tars

from imagenet_prep.build import build
from imagenet_prep.config import build_config
from imagenet_prep.errors import ArchiveError, BuildError, UsageError
from imagenet_prep.io import tar_index
from imagenet_prep.io.bytesource import FileByteSource
from imagenet_prep.io.tar import member_header_problem, scan_tar
from imagenet_prep.outputs.imagefolder_check import check_tree
from imagenet_prep.records import ByteLocation, Sample, WorkUnit
from imagenet_prep.sample import SampleSpec, write_sample
from imagenet_prep.sources.base import LocationReader

TENCH, SPRINGER = "n01440764", "n02102040"
GIB = 1 << 30


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(
        tmp_path_factory.mktemp("harden-base"),
        SampleSpec(classes=2, train_per_class=4, val_per_class=3, seed=9, wnids=(TENCH, SPRINGER)),
    )


@pytest.fixture(scope="module")
def inner(base):
    return tars.class_tars(base.train_tar)


def _source(root: Path, base, train: tars.Segments | None = None, val: tars.Segments | None = None) -> Path:
    return tars.release_with(root, base, train, val)


def _build(src: Path, out: Path, **options):
    values = {"source": src, "out": out, "size": 32, "workers": 1, "allow_skips": True, **options}
    return build(build_config({}, values))


def _record(out: Path) -> dict:
    return json.loads((out / "build.json").read_text())


def _refused(out: Path) -> dict[str, str]:
    return {row["member"]: row["reason"] for row in _record(out)["refused_members"]}


def _built(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for split in ("train", "val") for p in out.glob(f"{split}/*/*"))


def _class(inner, wnid: str, *extra: tars.Segments, after: int = 1) -> tars.Segments:
    """The class tar of ``wnid`` with ``extra`` members inserted after its first ``after`` images."""
    images = [tars.member(n, d) for n, d in inner[wnid]]
    return tars.tar(*images[:after], *extra, *images[after:])


# ---------------------------------------------------------------------------------------- member size
def test_members_claiming_gigabytes_are_refused_and_the_worker_stays_small(base, inner, tmp_path):
    """A 1 GiB and a 4 GiB member (holes on disk) in a class tar and in the val tar: refused before any read,
    recorded with their reason, every real image built; peak RSS of the (one-process) build <= 300 MB."""
    train = tars.train_tar(
        {
            TENCH: _class(inner, TENCH, tars.member(f"{TENCH}_666.JPEG", [b"\xff\xd8\xff\xe0", GIB - 4])),
            SPRINGER: tars.tar(*(tars.member(n, d) for n, d in inner[SPRINGER])),
        }
    )
    val_members = tars.read_members(base.val_tar)
    huge_val = val_members[0][0]  # a real val name (labelled by the devkit), claiming 4 GiB
    val = tars.tar(
        tars.member(huge_val, [b"\xff\xd8", 4 * GIB - 2]), *(tars.member(n, d) for n, d in val_members[1:])
    )
    src = _source(tmp_path / "src", base, train, val)
    assert os.stat(src / "ILSVRC2012_img_val.tar").st_blocks * 512 < 64 << 20  # sparse: little real disk
    out = tmp_path / "out"
    measure = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
    )
    argv = [sys.executable, "-c", measure, sys.executable, "-m", "imagenet_prep", "build"]
    argv += ["--source", str(src), "--out", str(out), "--size", "32", "--workers", "1", "--quiet"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    peak_mb = int(done.stdout.strip().splitlines()[-1]) / 1024
    assert peak_mb <= 300, f"peak RSS {peak_mb:.0f} MB"
    assert done.returncode == 1, done.stderr  # refused members count as skipped: exit 1 without --allow-skips
    assert "Traceback" not in done.stderr
    refused = _refused(out)
    assert "member-size cap" in refused[f"train/{TENCH}.tar/{TENCH}_666.JPEG"]
    assert "member-size cap" in refused[f"val/{huge_val}"]
    assert len(_built(out)) == base.num_images - 1  # all but the val image replaced by the 4 GiB member
    assert check_tree(out, decode=True).ok


def test_the_member_size_cap_is_settable_and_validated(base, inner, tmp_path):
    src = _source(tmp_path / "src", base)
    largest = max(len(d) for images in inner.values() for _, d in images)
    out = tmp_path / "out"
    _build(src, out, max_member_size=largest - 1)
    refused = _refused(out)
    assert refused and all("member-size cap" in reason for reason in refused.values())
    assert len(_built(out)) == base.num_images - len(refused)
    cli = [sys.executable, "-m", "imagenet_prep", "build", "--source", str(src), "--out", str(tmp_path / "x")]
    done = subprocess.run(cli + ["--max-member-size", "lots"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "max-member-size" in done.stderr
    for bad in ("0", "-5", "2TiB", 2 << 30, True):
        with pytest.raises(UsageError, match="max-member-size"):
            build_config({}, {"source": src, "out": tmp_path / "x", "max_member_size": bad})
    assert (
        build_config({}, {"source": src, "out": tmp_path / "y", "max_member_size": "16MiB"}).max_member_size
        == 16 << 20
    )


def test_the_worker_checks_the_cap_again_before_reading(base, tmp_path):
    """A unit made elsewhere (another planner, a library user) still cannot make a worker read a huge member."""
    path = tars.write(tmp_path / "huge.tar", tars.tar(tars.member("big.JPEG", [b"\xff\xd8", 2 * GIB])))
    location = ByteLocation(str(path), 512, 2 * GIB + 2)
    sample = Sample("val", "big", TENCH, 0, "big.JPEG", location)
    reader = LocationReader(WorkUnit("val", "val-0000", "ilsvrc", (sample,), max_member_size=64 << 20))
    with pytest.raises(ArchiveError, match="member-size cap"):
        list(reader)
    assert reader.bytes_read == 0


# ---------------------------------------------------------------------------------------- index cache
def _cache(archive: Path) -> Path:
    return archive.with_name(archive.name + ".index.json")


@pytest.fixture(scope="module")
def reference(base, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("harden-reference")
    src = _source(root / "src", base)
    _build(src, root / "out")
    return {p: (root / "out" / p).read_bytes() for p in _built(root / "out")}


def _tampered_build(base, tmp_path: Path, edit) -> tuple[Path, Path]:
    src = _source(tmp_path / "src", base)
    _build(src, tmp_path / "first")  # writes the index caches beside the archives
    for kind in ("train", "val"):
        cache = _cache(src / f"ILSVRC2012_img_{kind}.tar")
        doc = tar_index.read_cache_document(cache)
        edit(kind, doc)
        tar_index.write_cache_document(cache, doc)
    return src, tmp_path / "out"


def _members(kind: str, doc: dict) -> dict:
    """The columns of the val tar's one section, or of the tench class's section."""
    return doc["members"][""] if kind == "val" else doc["members"][TENCH]


def test_swapped_offsets_in_the_cache_never_mislabel_an_image(base, tmp_path):
    """Two val members' locations swapped in the cache: well-formed, in bounds, but each read's tar header
    names another file, so the unit fails with a clear error instead of writing a mislabelled image."""

    def swap(kind: str, doc: dict) -> None:
        if kind == "val":
            for column in ("offsets", "sizes", "header_offsets"):
                values = _members(kind, doc)[column]
                values[0], values[-1] = values[-1], values[0]

    src, out = _tampered_build(base, tmp_path, swap)
    with pytest.raises(BuildError, match="header") as error:
        _build(src, out)
    message = str(error.value)
    assert "index" in message and "\n" not in message
    assert not list(out.glob("val/*/*")), "no val image may be written from a lying index"


@pytest.mark.parametrize(
    "name",
    [
        "wrong-types",
        "huge-size",
        "negative-offset",
        "offset-past-the-end",
        "classes-garbled",
        "count-mismatch",
    ],
)
def test_a_malformed_cache_is_rebuilt_not_trusted(base, reference, tmp_path, name):
    def edit(kind: str, doc: dict) -> None:
        members = _members(kind, doc)
        if name == "wrong-types":  # the JSON header: a refusal that is not two strings
            doc["refused"] = [[1, 2]]
        elif name == "huge-size":
            members["sizes"][0] = 1 << 40
        elif name == "negative-offset":
            members["offsets"][0] = -512
        elif name == "offset-past-the-end":
            members["offsets"][-1] = doc["size"] + 512
        elif name == "classes-garbled" and kind == "train":
            doc["classes"][0][2] = "x"
        elif name == "count-mismatch":  # a section of one name fewer than its columns
            members["names"] = members["names"][:-1]

    src, out = _tampered_build(base, tmp_path, edit)
    result = _build(src, out)
    assert result.ok
    assert {p: (out / p).read_bytes() for p in _built(out)} == reference
    for kind in ("train", "val"):  # the rebuilt cache replaced the bad one
        doc = tar_index.read_cache_document(_cache(src / f"ILSVRC2012_img_{kind}.tar"))
        members = _members(kind, doc)
        assert all(isinstance(v, int) and 0 <= v < doc["size"] for v in members["offsets"])
        assert len(members["names"]) == len(members["offsets"]) and doc["refused"] != [[1, 2]]


# ------------------------------------------------------------------------------------------ sparse
@pytest.mark.parametrize("craft", [tars.gnu_sparse_member, tars.pax_sparse_member], ids=["gnu", "pax"])
def test_sparse_members_are_refused_with_their_own_reason_and_the_rest_is_read(base, inner, tmp_path, craft):
    a_jpeg = inner[TENCH][0][1]
    train = tars.train_tar(
        {
            TENCH: _class(inner, TENCH, craft(f"{TENCH}_777.JPEG", a_jpeg, 10 << 20)),
            SPRINGER: tars.tar(*(tars.member(n, d) for n, d in inner[SPRINGER])),
        }
    )
    # The outer archive holds a sparse member too (a sparse class tar): the archive is still valid.
    train = train[:-1] + craft("n03000684.tar", b"\0" * 1024, 1 << 20) + train[-1:]
    src = _source(tmp_path / "src", base, train)
    out = tmp_path / "out"
    _build(src, out)
    refused = _refused(out)
    assert "sparse" in refused[f"train/{TENCH}.tar/{TENCH}_777.JPEG"]
    assert "sparse" in refused["train/n03000684.tar"]
    assert not any("truncated" in reason for reason in refused.values())
    assert len(_built(out)) == base.num_images  # every image after the sparse one too


# --------------------------------------------------------------------------------- strays and foreign
def test_a_stray_file_in_the_val_tar_is_refused_and_the_val_images_are_built(base, tmp_path):
    val = tars.tar(
        tars.member("README.txt", b"Validation images of ILSVRC2012.\n"),
        *(tars.member(n, d) for n, d in tars.read_members(base.val_tar)),
    )
    src = _source(tmp_path / "src", base, val=val)
    out = tmp_path / "out"
    _build(src, out)
    assert "validation image" in _refused(out)["val/README.txt"]
    assert len(list(out.glob("val/*/*"))) == len(base.val_files)


def test_a_class_tar_outside_the_1k_is_recorded_not_silently_ignored(base, inner, tmp_path):
    foreign = "n00001740"  # 'entity': a wnid of the 21K, not an ImageNet-1K class
    train = tars.train_tar(
        {
            **{wnid: tars.tar(*(tars.member(n, d) for n, d in images)) for wnid, images in inner.items()},
            foreign: tars.tar(tars.member(f"{foreign}_1.JPEG", inner[TENCH][0][1])),
        }
    )
    src = _source(tmp_path / "src", base, train)
    out = tmp_path / "out"
    result = _build(src, out)
    assert any(foreign in warning for warning in result.warnings)
    assert any(foreign in warning for warning in _record(out)["warnings"])
    assert len(_built(out)) == base.num_images


def test_header_checks_pass_for_pax_and_gnu_long_names_and_catch_a_wrong_name(tmp_path):
    """The verification walks PAX and GNU long-name header chains (not only single 512-byte headers)."""
    long_name = f"{TENCH}_{'1' * 150}.JPEG"
    entries = []
    for name, fmt, pax in (
        (f"{TENCH}_1.JPEG", tarfile.GNU_FORMAT, None),
        (long_name, tarfile.GNU_FORMAT, None),
        (f"{TENCH}_2.JPEG", tarfile.PAX_FORMAT, {"comment": "a PAX header before the member's own"}),
    ):
        info = tarfile.TarInfo(name)
        info.size, info.mtime = 5, tars.MTIME
        if pax:
            info.pax_headers = pax
        entries.append(info.tobuf(fmt) + b"abcde" + b"\0" * 507)
    path = tmp_path / "c.tar"
    path.write_bytes(b"".join(entries) + b"\0" * 1024)
    with FileByteSource(path) as source:
        members, refused = scan_tar(source, 0, source.size, "c.tar", tolerate_cut_last=False)
        assert [m.name for m in members] == [f"{TENCH}_1.JPEG", long_name, f"{TENCH}_2.JPEG"] and not refused
        assert [m.offset - m.header_offset for m in members] == [512, 1536, 1536]  # chains of 1 and 3 blocks
        for m in members:
            assert member_header_problem(source, m.header_offset, m.offset, m.size, m.name) is None
            assert "names" in member_header_problem(source, m.header_offset, m.offset, m.size, "x.JPEG")
            assert "bytes" in member_header_problem(source, m.header_offset, m.offset, m.size + 1, m.name)
        first, second = members[0], members[1]
        assert member_header_problem(source, second.header_offset, first.offset, first.size, first.name)
