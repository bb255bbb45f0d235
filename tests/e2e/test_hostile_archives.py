"""Hostile and broken archives through a real `imagenet-prep build` (issue 6 item 3).

The archives are written here with tarfile in the exact ILSVRC2012 layout (a tar of <wnid>.tar class tars, a
flat val tar, the devkit), with real images from the miniature release and hand-made bad members mixed in.

What a user gets, per case:
- a member that could escape or alias (``../escape``, an absolute name, a symlink, a hardlink, a hidden
  ``._x`` file, a name clashing with another's output) is refused and never written; a bad image (0 bytes,
  truncated, text, a decompression bomb) is skipped; a class tar cut inside an image's data loses that image
  only. All are recorded in build.json ("skipped", and "refused_members" for the archive's own refusals); the
  build exits 1, or 0 with --allow-skips, and the good images are all built;
- an archive that is itself truncated (the outer train tar, the val tar) or a class tar cut inside a header is
  one clear error line (exit 2) naming the file and the fix, before anything is written.
Canary files beside OUT prove nothing lands outside OUT, the source folder and the documented caches.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest
from PIL import Image
from support import cli

from imagenet_prep.outputs.imagefolder_check import check_tree
from imagenet_prep.sample import SampleSpec, write_sample

GOOD, BROKEN = "n01440764", "n02102040"  # tench: the hostile class tar; English springer: cut short
CANARY = b"canary: must stay untouched\n"


# ------------------------------------------------------------------------------------------- tar writing
def _info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, kind, linkname
    info.mode, info.mtime = 0o644, 1336003200
    return info


def _tar(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, len(data)), data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, kind=kind, linkname=target), b""


def _read_tar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height, with a few bytes of pixel data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _jpeg_claiming(jpeg: bytes, side: int) -> bytes:
    """A real JPEG whose SOF0 header is patched to claim side x side pixels."""
    at = jpeg.index(b"\xff\xc0")
    return jpeg[: at + 5] + struct.pack(">HH", side, side) + jpeg[at + 9 :]


# -------------------------------------------------------------------------------------------- the release
REFUSED, SKIPPED = "refused", "skipped"  # refused by the archive reader / a bad image found when decoding


def _cases(root: Path) -> list[tuple[str, str, str]]:
    """(build.json "file", reason fragment, kind) of every problem the hostile release holds."""
    abs_target = str(root / "abs-target")
    return [
        # the outer train tar
        ("train/../escape", "path with '..'", REFUSED),
        (f"train/{abs_target}", "absolute path", REFUSED),
        ("train/n03417042.tar", "symbolic link", REFUSED),
        ("train/n03425413.tar", "hard link", REFUSED),
        # inside the tench class tar
        (f"train/{GOOD}.tar/../../../escape", "path with '..'", REFUSED),
        (f"train/{GOOD}.tar/{abs_target}", "absolute path", REFUSED),
        (f"train/{GOOD}.tar/{GOOD}_90.JPEG", "symbolic link", REFUSED),
        (f"train/{GOOD}.tar/{GOOD}_91.JPEG", "hard link", REFUSED),
        (f"train/{GOOD}.tar/._{GOOD}_1.JPEG", "hidden file", REFUSED),
        (f"train/{GOOD}.tar/{GOOD}_7.png", "clashes with", REFUSED),
        (f"train/{GOOD}.tar/{GOOD}_{'8' * 240}.JPEG", "longer than", REFUSED),
        (f"train/{GOOD}_92.JPEG", "empty file", SKIPPED),
        (f"train/{GOOD}_93.JPEG", "truncated", SKIPPED),
        (f"train/{GOOD}_94.JPEG", "not an image: text", SKIPPED),
        (f"train/{GOOD}_95.JPEG", "decompression bomb", SKIPPED),
        (f"train/{GOOD}_96.JPEG", "decompression bomb", SKIPPED),
        # the class tar cut inside its last image's data: the images before the cut are built
        (f"train/{BROKEN}.tar/{BROKEN}_99.JPEG", "truncated", REFUSED),
        # the val tar
        ("val/../escape", "path with '..'", REFUSED),
        (f"val/{abs_target}", "absolute path", REFUSED),
        ("val/ILSVRC2012_val_00049999.JPEG", "symbolic link", REFUSED),
    ]


def _write_hostile_release(root: Path) -> tuple[Path, dict]:
    """A release with every hostile case; returns the source folder and what the good part should give."""
    base = write_sample(
        root / "base", SampleSpec(classes=2, train_per_class=4, val_per_class=3, seed=9, wnids=(GOOD, BROKEN))
    )
    src = root / "src"
    src.mkdir()
    abs_target = str(root / "abs-target")
    with tarfile.open(base.train_tar) as outer:
        inner = {m.name[:-4]: _read_tar(outer.extractfile(m).read()) for m in outer}
    a_jpeg = next(iter(inner[GOOD].values()))

    first = base.train_files[GOOD][0]
    tench = [_file(name, data) for name, data in inner[GOOD].items()]
    tench += [
        _file(f"{GOOD}_5,5.JPEG", a_jpeg),  # a comma in a name: the manifests must still parse
        _file("../../../escape", b"pwned"),
        _file(abs_target, b"pwned"),
        _link(f"{GOOD}_90.JPEG", abs_target, tarfile.SYMTYPE),
        _link(f"{GOOD}_91.JPEG", first, tarfile.LNKTYPE),
        _file(f"._{GOOD}_1.JPEG", b"\0\5\26\7 AppleDouble resource fork"),
        _file(f"{GOOD}_7.JPEG", a_jpeg),
        _file(f"{GOOD}_7.png", a_jpeg),  # the same output file as the one above
        _file(f"{GOOD}_{'8' * 240}.JPEG", a_jpeg),  # too long for a file name once a temp prefix is added
        _file(f"{GOOD}_92.JPEG", b""),
        _file(f"{GOOD}_93.JPEG", a_jpeg[: len(a_jpeg) // 2]),
        _file(f"{GOOD}_94.JPEG", b"This is not an image, it is a text file.\n"),
        _file(f"{GOOD}_95.JPEG", _png_claiming(100_000, 100_000)),
        _file(f"{GOOD}_96.JPEG", _jpeg_claiming(a_jpeg, 65_500)),
    ]
    springer = _tar([_file(n, d) for n, d in inner[BROKEN].items()] + [_file(f"{BROKEN}_99.JPEG", a_jpeg)])
    with tarfile.open(fileobj=io.BytesIO(springer)) as tar:
        last = tar.getmembers()[-1]
    springer = springer[: last.offset_data + 512]  # one block of the last image's data, then the end
    outer_entries = [
        _file(f"{GOOD}.tar", _tar(tench)),
        _file(f"{BROKEN}.tar", springer),
        _file("../escape", b"pwned"),
        _file(abs_target, b"pwned"),
        _link("n03417042.tar", "/etc/passwd", tarfile.SYMTYPE),
        _link("n03425413.tar", f"{GOOD}.tar", tarfile.LNKTYPE),
    ]
    (src / "ILSVRC2012_img_train.tar").write_bytes(_tar(outer_entries))

    with tarfile.open(base.val_tar) as val:
        val_files = {m.name: val.extractfile(m).read() for m in val}
    zero_val = sorted(val_files)[0]
    val_files[zero_val] = b""
    val_entries = [_file(n, d) for n, d in val_files.items()] + [
        _file("../escape", b"pwned"),
        _file(abs_target, b"pwned"),
        _link("ILSVRC2012_val_00049999.JPEG", abs_target, tarfile.SYMTYPE),
    ]
    (src / "ILSVRC2012_img_val.tar").write_bytes(_tar(val_entries))
    (src / "ILSVRC2012_devkit_t12.tar.gz").write_bytes(base.devkit.read_bytes())

    good_names = [*inner[GOOD], f"{GOOD}_5,5.JPEG", f"{GOOD}_7.JPEG"]
    expected_train = {f"train/{GOOD}/{Path(n).stem}.JPEG" for n in good_names}
    expected_train |= {f"train/{BROKEN}/{Path(n).stem}.JPEG" for n in inner[BROKEN]}
    expected_val = {f"val/{w}/{Path(n).stem}.JPEG" for n, w in base.val_files.items() if n != zero_val}
    return src, {"train": expected_train, "val": expected_val, "zero_val": zero_val}


# ------------------------------------------------------------------------------------------------ running
def _files_outside(root: Path, allowed: tuple[Path, ...]) -> dict[str, str]:
    """md5 of every file under root that is not under an allowed folder."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not any(path == a or a in path.parents for a in allowed):
            found[str(path.relative_to(root))] = hashlib.md5(path.read_bytes()).hexdigest()
    return found


class Sandbox:
    """A folder holding canaries where a leaked '../escape' or '/abs' would land, a cwd, HOME, TMPDIR and the
    tool's cache: every build runs with these, and nothing but OUT and the source folder may change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in ("cwd", "home", "tmp", "cache"):
            (root / name).mkdir()
        for canary in ("escape", "abs-target"):
            (root / canary).write_bytes(CANARY)
        self.env = {
            **os.environ,
            "HOME": str(root / "home"),
            "TMPDIR": str(root / "tmp"),
            "IMAGENET_PREP_CACHE": str(
                root / "cache"
            ),  # the documented cache (unused: the source is writable)
            "XDG_CACHE_HOME": str(root / "home" / ".cache"),
        }

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        # cwd: a relative '../escape' would land on the canary in root
        return cli(*args, timeout=120, cwd=self.root / "cwd", env=self.env)

    def outside(self, *allowed: Path) -> dict[str, str]:
        return _files_outside(self.root, (*allowed, self.root / "cache"))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hostile")
    box = Sandbox(root)
    src, expected = _write_hostile_release(root)
    before = box.outside(src)
    strict = box.cli(
        "build", "--source", str(src), "--out", str(root / "strict"), "--size", "32", "--workers", "2"
    )
    lenient = box.cli(
        "build", "--source", str(src), "--out", str(root / "lenient"), "--resize", "none", "--workers", "2",
        "--allow-skips",
    )  # fmt: skip
    after = box.outside(src, root / "strict", root / "lenient")
    return {"root": root, "src": src, "expected": expected, "strict": strict, "lenient": lenient,
            "before": before, "after": after}  # fmt: skip


def _record(out: Path) -> dict:
    return json.loads((out / "build.json").read_text())


def _manifest_paths(out: Path, split: str) -> list[str]:
    with (out / f"{split}.csv").open(newline="") as handle:
        return [row["path"] for row in csv.DictReader(handle)]


# -------------------------------------------------------------------------------------------------- tests
def test_bad_members_make_the_build_exit_1_unless_allow_skips(hostile):
    strict, lenient = hostile["strict"], hostile["lenient"]
    assert strict.returncode == 1, strict.stderr
    assert "Traceback" not in strict.stderr
    assert (
        f"{len(_cases(hostile['root'])) + 1} images were skipped" in strict.stderr
    )  # + the zero-byte val image
    assert "build.json" in strict.stderr
    assert lenient.returncode == 0, lenient.stderr
    assert "Traceback" not in lenient.stderr


@pytest.mark.parametrize("build", ["strict", "lenient"])
def test_every_bad_member_is_recorded_with_its_reason(hostile, build):
    record = _record(hostile["root"] / build)
    skipped = {item["file"]: item["reason"] for item in record["skipped"]}
    refused = {item["member"]: item["reason"] for item in record["refused_members"]}
    wrong = []
    for file, reason, kind in _cases(hostile["root"]):
        if reason not in skipped.get(file, ""):
            wrong.append((file, reason, skipped.get(file)))
        if kind == REFUSED and reason not in refused.get(file, ""):
            wrong.append((file, reason, refused.get(file)))  # the reader's refusals are listed there too
        if kind == SKIPPED and file in refused:
            wrong.append((file, "listed as a refused member", refused[file]))
    assert wrong == []
    assert "empty file" in skipped[f"val/{hostile['expected']['zero_val']}"]
    assert len(skipped) == len(record["skipped"]) == len(_cases(hostile["root"])) + 1  # nothing else
    assert record["counts"]["train"]["per_class"] == {GOOD: 6, BROKEN: 4}


@pytest.mark.parametrize("build", ["strict", "lenient"])
def test_every_good_image_is_built_and_the_tree_checks(hostile, build):
    out = hostile["root"] / build
    expected = hostile["expected"]
    for split in ("train", "val"):
        written = {str(p.relative_to(out)) for p in (out / split).rglob("*") if p.is_file()}
        assert written == expected[split]
        # One row per file (no two members share an output), incl. the name holding a comma.
        assert sorted(_manifest_paths(out, split)) == sorted(expected[split])
    assert (out / "labels.txt").read_text().split() == [GOOD, BROKEN]
    assert check_tree(out, decode=True).ok
    for rel in expected["train"]:
        with Image.open(out / rel) as image:
            image.load()
            assert image.mode == "RGB"


def test_nothing_is_written_outside_out_and_the_source(hostile):
    root = hostile["root"]
    assert (root / "escape").read_bytes() == CANARY
    assert (root / "abs-target").read_bytes() == CANARY
    assert hostile["after"] == hostile["before"]
    for empty in ("cwd", "home", "tmp"):
        assert list((root / empty).iterdir()) == [], empty
    assert list(root.rglob("*escape*")) == [root / "escape"]
    # In the source folder only the documented caches appear beside the archives: the index caches and the
    # MD5 cache that `imagenet-prep verify` shares (build.json records the archives' MD5 from it).
    assert sorted(p.name for p in hostile["src"].iterdir()) == [
        ".imagenet-prep-verify.json",
        "ILSVRC2012_devkit_t12.tar.gz",
        "ILSVRC2012_img_train.tar",
        "ILSVRC2012_img_train.tar.index.json",
        "ILSVRC2012_img_val.tar",
        "ILSVRC2012_img_val.tar.index.json",
    ]


def test_a_subset_build_records_only_the_refusals_that_concern_it(hostile, tmp_path):
    """The index cache remembers every indexed class's refusals; a build of other classes does not inherit
    them (the outer archive's own refusals concern every train build)."""
    box_env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "imagenet_prep", "build", "--source", str(hostile["src"]), "--out", str(out),
         "--classes", BROKEN, "--splits", "train", "--workers", "1", "--quiet"],
        capture_output=True, text=True, timeout=120, env=box_env,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    refused = {item["member"] for item in _record(out)["refused_members"]}
    expected = {
        file for file, _, kind in _cases(hostile["root"]) if kind == REFUSED and file.startswith("train/")
    }
    expected = {file for file in expected if not file.startswith(f"train/{GOOD}.tar/")}
    assert refused == expected
    assert f"train/{BROKEN}.tar/{BROKEN}_99.JPEG" in refused


# ------------------------------------------------------------------------------------ broken archives: exit 2
def _cut_inside_last_class_tar(train: bytes) -> bytes:
    return train[: len(train) - 10240 - 1024 - 700]  # end blocks gone, and into the last class tar's data


def _cut_at_a_member_boundary(train: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(train)) as tar:
        last = tar.getmembers()[-1]
    return train[: last.offset]  # every class tar before the last one whole, no end-of-archive marker


def _cut_inside_a_class_tar_header(train: bytes) -> bytes:
    """The outer tar is whole, but the tench class tar in it ends 100 bytes into its second header."""
    with tarfile.open(fileobj=io.BytesIO(train)) as outer:
        classes = {m.name: outer.extractfile(m).read() for m in outer}
    with tarfile.open(fileobj=io.BytesIO(classes[f"{GOOD}.tar"])) as inner:
        second = inner.getmembers()[1]
    classes[f"{GOOD}.tar"] = classes[f"{GOOD}.tar"][: second.offset + 100]
    return _tar([_file(name, data) for name, data in classes.items()])


@pytest.mark.parametrize(
    ("archive", "damage", "message"),
    [
        ("ILSVRC2012_img_train.tar", _cut_inside_last_class_tar, "is truncated"),
        ("ILSVRC2012_img_train.tar", _cut_at_a_member_boundary, "is truncated"),
        ("ILSVRC2012_img_train.tar", _cut_inside_a_class_tar_header, f"{GOOD}.tar"),
        ("ILSVRC2012_img_val.tar", lambda data: data[: len(data) // 2 + 100], "is truncated"),
    ],
    ids=["train-cut-in-data", "train-cut-between-members", "class-tar-cut-in-header", "val-cut"],
)
def test_a_truncated_archive_is_one_clear_error_before_anything_is_written(
    tmp_path, archive, damage, message
):
    box = Sandbox(tmp_path)
    base = write_sample(tmp_path / "base", SampleSpec(classes=2, train_per_class=3, val_per_class=2, seed=4,
                                                      wnids=(GOOD, BROKEN)))  # fmt: skip
    src = tmp_path / "src"
    src.mkdir()
    for path in (base.train_tar, base.val_tar, base.devkit):
        (src / path.name).write_bytes(path.read_bytes())
    (src / archive).write_bytes(damage((src / archive).read_bytes()))
    before = box.outside(src)
    out = tmp_path / "out"
    done = box.cli("build", "--source", str(src), "--out", str(out), "--workers", "2")
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, done.stderr
    assert line.startswith("imagenet-prep: error: ")
    assert archive in line and message in line
    assert "imagenet-prep fetch" in line or "imagenet-prep verify" in line  # says how to fix it
    # Refused while planning: no tree, no manifests.
    assert not out.exists()  # a refused build leaves no OUT (nor lock) that it created
    assert box.outside(src, out) == before
    assert (tmp_path / "escape").read_bytes() == CANARY
