"""Issue 10, item 6: hostile inputs in the new layouts get the tar reader's treatment: a recorded refusal or a
one-line error, and nothing written outside OUT. The archives are real zips, gzip streams and Parquet files,
made from the session's sample layouts and then damaged or extended here."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import cli
from support.build import build_allowing_skips
from support.cli import one_line

from imagenet_prep.sample import SampleSpec
from imagenet_prep.sample.repack import write_layouts

SPEC = SampleSpec(classes=3, train_per_class=2, val_per_class=1, seed=5)
ZIP = "imagenet-object-localization-challenge.zip"


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory):
    return write_layouts(
        tmp_path_factory.mktemp("hostile-layouts"),
        SPEC,
        ("kaggle", "kaggle-zip", "hf-tar", "hf-parquet", "imagefolder"),
    )


def build(src: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return cli("build", "--source", str(src), "--out", str(out), "--workers", "1", "--quiet", *extra)


def files_outside(root: Path, out: Path) -> set[str]:
    """Files outside OUT, but the tool's documented caches beside the source (checksums, indexes)."""
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if out not in p.parents
        and p != out
        and not p.name.startswith(".imagenet-prep")
        and not p.name.endswith(".index.json")
    }


def _patch_central_size(path: Path, name: str, size: int) -> None:
    """Make the central directory (what readers trust) declare another inflated size for ``name``."""
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x01\x02", 0, data.rfind(name.encode()))
    data[at + 24 : at + 28] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def _patch_local_size(path: Path, name: str, size: int) -> None:
    """Make ``name``'s local header (what the worker checks against the directory) declare the same size."""
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x03\x04", 0, data.find(name.encode()))
    data[at + 22 : at + 26] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_zip_members_with_unsafe_names_links_and_absurd_sizes_are_refused(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["kaggle-zip"].root, src)
    wnid = layouts["kaggle-zip"].wnids[0]
    head = f"ILSVRC/Data/CLS-LOC/train/{wnid}"
    jpeg = next(iter((layouts["kaggle"].root / head).iterdir())).read_bytes()
    with zipfile.ZipFile(src / ZIP, "a") as archive:
        archive.writestr(f"{head}/../../../../../../escape.JPEG", jpeg)
        archive.writestr(f"/{head}/{wnid}_77.JPEG", jpeg)
        link = zipfile.ZipInfo(f"{head}/{wnid}_78.JPEG")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
        archive.writestr(zipfile.ZipInfo(f"{head}/{wnid}_79.JPEG"), b"\0" * 100_000, zipfile.ZIP_DEFLATED)
    _patch_central_size(src / ZIP, f"{wnid}_79.JPEG", 300 << 20)  # declares more than any image
    before = files_outside(tmp_path, tmp_path / "out")
    record = build_allowing_skips(src, tmp_path / "out")
    assert len(record["skipped"]) == 4  # refused members count as skipped (exit 1 without --allow-skips)
    reasons = {entry["member"]: entry["reason"] for entry in record["refused_members"]}
    assert reasons[f"{head}/../../../../../../escape.JPEG"] == "path with '..'"
    assert reasons[f"/{head}/{wnid}_77.JPEG"] == "absolute path"
    assert reasons[f"{head}/{wnid}_78.JPEG"] == "symbolic link"
    assert "zip bomb" in reasons[f"{head}/{wnid}_79.JPEG"]
    assert record["counts"]["train"]["images"] == 6  # the good images are all built
    assert files_outside(tmp_path, tmp_path / "out") == before
    assert not list(tmp_path.rglob("escape*"))


def test_a_member_inflating_past_its_declared_size_fails_its_unit_in_one_line(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["kaggle-zip"].root, src)
    name = sorted(n for n in zipfile.ZipFile(src / ZIP).namelist() if "/val/" in n)[
        0
    ]  # val members are deflated
    # Both headers declare 100 bytes (a consistent bomb): the inflate bound is what stops it.
    _patch_central_size(src / ZIP, name.rsplit("/", 1)[1], 100)
    _patch_local_size(src / ZIP, name.rsplit("/", 1)[1], 100)
    line = one_line(build(src, tmp_path / "out", "--splits", "val"), 1)
    assert "inflates to more than 100 bytes" in line and "zip bomb" in line


def test_a_member_whose_local_header_disagrees_with_the_directory_is_a_recorded_skip(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["kaggle-zip"].root, src)
    name = sorted(n for n in zipfile.ZipFile(src / ZIP).namelist() if "/val/" in n)[0].rsplit("/", 1)[1]
    _patch_central_size(
        src / ZIP, name, 100
    )  # the directory alone says 100: the worker's header check sees it
    record = build_allowing_skips(src, tmp_path / "out", splits="val")
    [skip] = [entry for entry in record["skipped"] if name in str(entry)]
    assert "local header gives another size" in str(skip)


def test_a_truncated_gzip_shard_is_a_one_line_error(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["hf-tar"].root, src)
    shard = src / "data" / "train_images_0.tar.gz"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    line = one_line(build(src, tmp_path / "out"), 2)
    assert "train_images_0.tar.gz is truncated" in line


def test_unsafe_members_of_a_gzip_shard_are_refused(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["hf-tar"].root, src)
    shard = src / "data" / "val_images.tar.gz"
    with gzip.open(shard) as handle:
        raw = handle.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as old, tarfile.open(fileobj=buf, mode="w") as new:
        for member in old:
            new.addfile(member, old.extractfile(member))
        for name in ("../ILSVRC2012_val_00000099_n01440764.JPEG", "/ILSVRC2012_val_00000098_n01440764.JPEG"):
            info = tarfile.TarInfo(name)
            info.size = 3
            new.addfile(info, io.BytesIO(b"abc"))
        link = tarfile.TarInfo("ILSVRC2012_val_00000097_n01440764.JPEG")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        new.addfile(link)
    shard.write_bytes(gzip.compress(buf.getvalue()))
    record = build_allowing_skips(src, tmp_path / "out", splits="val")
    reasons = sorted(entry["reason"] for entry in record["refused_members"])
    assert reasons == ["absolute path", "path with '..'", "symbolic link (to '/etc/passwd')"]
    assert record["counts"]["val"]["images"] == 3


def test_parquet_with_the_wrong_schema_is_a_one_line_error(layouts, tmp_path):
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    table = pa.table({"img": pa.array([b"x"], pa.binary()), "y": pa.array([0], pa.int64())})
    pq.write_table(table, src / "data" / "train-00000-of-00001.parquet")
    line = one_line(build(src, tmp_path / "out", "--splits", "train"), 2)
    assert "is not an imagenet-1k Parquet shard (its columns are img, y)" in line


def test_parquet_rows_whose_label_disagrees_with_the_name_are_refused(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["hf-parquet"].root, src)
    path = src / "data" / "validation-00000-of-00001.parquet"
    table = pq.read_table(path)
    labels = table.column("label").to_pylist()
    labels[0] = (labels[0] + 1) % 1000
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, pa.int64()))
    pq.write_table(table, path)
    record = build_allowing_skips(src, tmp_path / "out", splits="val")
    assert len(record["refused_members"]) == 1
    assert "is not the class" in record["refused_members"][0]["reason"]
    assert record["counts"]["val"]["images"] == 2


def test_a_missing_pyarrow_is_a_one_line_error_naming_the_extra(layouts, tmp_path):
    code = (
        "import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.parquet'] = None\n"
        "from imagenet_prep.cli import main\n"
        f"sys.argv = ['imagenet-prep', 'build', '--source', {str(layouts['hf-parquet'].root)!r}, '--out', "
        f"{str(tmp_path / 'out')!r}, '--workers', '1']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = one_line(done, 2)
    assert "pip install 'imagenet-prep[parquet]'" in line


def test_kaggle_synset_mapping_that_differs_names_the_first_differing_line(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["kaggle"].root, src)
    lines = (src / "LOC_synset_mapping.txt").read_text().splitlines(keepends=True)
    lines[4], lines[5] = lines[5], lines[4]
    (src / "LOC_synset_mapping.txt").write_text("".join(lines))
    line = one_line(build(src, tmp_path / "out"), 2)
    assert "LOC_synset_mapping.txt differs from the ILSVRC2012 classes at line 5" in line


def test_imagefolder_flat_val_labelled_by_the_kaggle_csv_and_odd_files(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["imagefolder"].root, src)
    flat = src / "val"
    for class_dir in list(flat.iterdir()):
        for image in class_dir.iterdir():
            image.rename(flat / image.name)
        class_dir.rmdir()
    shutil.copy(layouts["kaggle"].root / "LOC_val_solution.csv", src)
    wnid = layouts["imagefolder"].wnids[0]
    (src / "train" / wnid / ".DS_Store").write_bytes(b"x")
    (src / "train" / wnid / "notes.txt").write_text("x")
    os.mkfifo(src / "train" / wnid / f"{wnid}_5.JPEG")  # a FIFO would block a reader forever
    reference = tmp_path / "ref"
    build_allowing_skips(layouts["imagefolder"].root, reference)
    record = build_allowing_skips(src, tmp_path / "out")
    assert [e["reason"] for e in record["refused_members"]] == ["not a regular file"]
    assert any("2 hidden or non-image files were ignored" in w for w in record["warnings"])
    for manifest in ("train.csv", "val.csv", "labels.txt"):
        assert (tmp_path / "out" / manifest).read_bytes() == (reference / manifest).read_bytes()
