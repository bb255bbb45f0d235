"""Issue 26 (source and reader side): links out of a folder source, files swapped for FIFOs, Parquet names
and null rows, zip CRC-32 and damaged deflate streams, and the Kaggle label files. Every bad input is a
recorded skip (file, reason) or a one-line error, exit 2; never a traceback, never bytes of a file quoted.
Real archives (zip, Parquet) made from the session's sample layouts, then damaged here."""

from __future__ import annotations

import os
import shutil
import subprocess
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
from imagenet_prep.taxonomy import classes

SPEC = SampleSpec(classes=3, train_per_class=2, val_per_class=1, seed=7)
ZIP = "imagenet-object-localization-challenge.zip"
SECRET = b"alice:ghp_0123456789abcdefSECRET@example.org\n"


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory):
    return write_layouts(
        tmp_path_factory.mktemp("hostile-sources"),
        SPEC,
        ("kaggle", "kaggle-zip", "hf-parquet", "imagefolder"),
    )


def build(src: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return cli("build", "--source", str(src), "--out", str(out), "--workers", "1", "--quiet", *extra)


def reasons(record: dict) -> dict[str, str]:
    out = {entry["member"]: entry["reason"] for entry in record.get("refused_members", [])}
    out.update({entry["file"]: entry["reason"] for entry in record["skipped"]})
    return out


# ------------------------------------------------------------------------------------------------- links
@pytest.mark.parametrize("layout", ["imagefolder", "kaggle"])
def test_a_link_out_of_the_source_tree_is_a_recorded_skip_and_never_read(layouts, tmp_path, layout):
    src = tmp_path / "src"
    shutil.copytree(layouts[layout].root, src, symlinks=True)
    secret = tmp_path / "git-credentials"
    secret.write_bytes(SECRET)
    train = src / "train" if layout == "imagefolder" else src / "ILSVRC/Data/CLS-LOC/train"
    wnid = sorted(p.name for p in train.iterdir())[0]
    first = sorted((train / wnid).iterdir())[0]
    (train / wnid / f"{wnid}_900.JPEG").symlink_to(secret)  # out of the tree: refused
    (train / wnid / f"{wnid}_901.JPEG").symlink_to(first)  # inside the tree: a subset made of links, read
    record = build_allowing_skips(src, tmp_path / "out", splits="train")
    text = (tmp_path / "out" / "build.json").read_text()
    assert "ghp_" not in text and "alice" not in text
    why = [r for f, r in reasons(record).items() if f.endswith(f"{wnid}_900.JPEG")]
    assert why and "outside the source folder" in why[0]
    assert record["counts"]["train"]["images"] == 3 * 2 + 1


def test_a_class_folder_linked_out_of_the_tree_is_refused_file_by_file(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["imagefolder"].root, src, symlinks=True)
    elsewhere = tmp_path / "elsewhere"
    wnid = sorted(p.name for p in (src / "train").iterdir())[0]
    shutil.move(src / "train" / wnid, elsewhere)
    (src / "train" / wnid).symlink_to(elsewhere, target_is_directory=True)
    record = build_allowing_skips(src, tmp_path / "out", splits="train")
    refused = [f for f, r in reasons(record).items() if "outside the source folder" in r]
    assert len(refused) == 2 and record["counts"]["train"]["images"] == 4


@pytest.mark.parametrize("layout", ["imagefolder", "kaggle"])
def test_a_file_swapped_for_a_link_after_planning_is_a_recorded_skip_never_followed(
    layouts, tmp_path, monkeypatch, layout
):
    """Planned as a regular file, swapped for a link to a real image outside the tree before the worker opens
    it: following it would build another file's bytes under this name (rc 0). A planned link inside the tree
    (a subset made of links) is still read."""
    from imagenet_prep.build import orchestrator

    src = tmp_path / "src"
    shutil.copytree(layouts[layout].root, src, symlinks=True)
    train = src / "train" if layout == "imagefolder" else src / "ILSVRC/Data/CLS-LOC/train"
    wnid = sorted(p.name for p in train.iterdir())[0]
    first, second = sorted((train / wnid).iterdir())[:2]
    (train / wnid / f"{wnid}_901.JPEG").symlink_to(second)  # planned link inside the tree: read
    outside = tmp_path / "elsewhere.JPEG"
    outside.write_bytes(second.read_bytes())  # a real image: followed, it would be built as `first`
    planned = orchestrator.make_plan

    def plan_then_swap(*args, **kwargs):
        plan = planned(*args, **kwargs)
        first.unlink()
        first.symlink_to(outside)
        return plan

    monkeypatch.setattr(orchestrator, "make_plan", plan_then_swap)
    record = build_allowing_skips(src, tmp_path / "out", splits="train")
    why = [r for f, r in reasons(record).items() if f.endswith(first.name)]
    assert why and "link" in why[0], reasons(record)
    assert record["counts"]["train"]["images"] == 3 * 2 + 1 - 1


# ----------------------------------------------------------------------------------------------- parquet
def _rewrite_paths(path: Path, change: dict[int, str], null_image: int | None = None) -> None:
    """Rename rows (``{w}`` in a new name is the row's own wnid, so its label still agrees)."""
    table = pq.read_table(path)
    images = table.column("image").combine_chunks()
    paths = images.field("path").to_pylist()
    data = images.field("bytes").to_pylist()
    for row, name in change.items():
        paths[row] = name.format(w=paths[row].rsplit("_", 1)[1].split(".")[0])
    if null_image is not None:
        data[null_image] = None
    image = pa.StructArray.from_arrays(
        [pa.array(data, pa.binary()), pa.array(paths, pa.string())], names=["bytes", "path"]
    )
    table = table.set_column(table.schema.get_field_index("image"), "image", image)
    pq.write_table(table, path, row_group_size=2)


def test_parquet_paths_go_through_the_one_name_policy(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["hf-parquet"].root, src)
    shards = sorted((src / "data").glob("train-*.parquet"))
    total = sum(pq.read_metadata(p).num_rows for p in shards)
    bad = [".tmp-x_{w}.JPEG", "a\rb_{w}.JPEG", "a\0b_{w}.JPEG", "x" * 300 + "_{w}.JPEG", "a/b_{w}.JPEG"]
    _rewrite_paths(shards[0], dict(enumerate(bad[:3])))
    _rewrite_paths(shards[1], dict(enumerate(bad[3:])))
    record = build_allowing_skips(src, tmp_path / "out", splits="train")
    refused = [e for e in record["refused_members"] if e["member"].startswith("train/")]
    # A path with folders is named by its base name (re-uploads store local paths; our outputs plain names):
    # "a/b_<wnid>.JPEG" is the image b of class <wnid> (train/<wnid>/b.JPEG), never a folder. Four are refused.
    assert len(refused) == 4, refused
    assert not [e for e in refused if "is not the class" in e["reason"]]
    assert record["counts"]["train"]["images"] == total - 4
    assert [p.name for p in (tmp_path / "out" / "train").glob("n*/b.JPEG")] == ["b.JPEG"]
    assert not list((tmp_path / "out").rglob("a"))
    manifest = tmp_path / "out" / "train.csv"
    csv_text = manifest.read_text() if manifest.exists() else ""
    assert "\r" not in csv_text and ".tmp-" not in csv_text
    assert not list((tmp_path / "out").rglob(".tmp-*"))


def test_a_null_image_parquet_row_is_a_recorded_skip_not_a_failed_build(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["hf-parquet"].root, src)
    shards = sorted((src / "data").glob("train-*.parquet"))
    total = sum(pq.read_metadata(p).num_rows for p in shards)
    _rewrite_paths(shards[0], {}, null_image=1)
    record = build_allowing_skips(src, tmp_path / "out", splits="train")
    assert any("no image bytes" in r for r in reasons(record).values())
    assert record["counts"]["train"]["images"] == total - 1


def test_a_parquet_cell_over_the_cap_is_a_recorded_skip(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["hf-parquet"].root, src)
    shards = sorted((src / "data").glob("train-*.parquet"))
    total = sum(pq.read_metadata(p).num_rows for p in shards)
    table = pq.read_table(shards[0])
    sizes = sorted(len(b) for b in table.column("image").combine_chunks().field("bytes").to_pylist())
    record = build_allowing_skips(src, tmp_path / "out", splits="train", max_member_size=sizes[-1] - 1)
    why = [r for r in reasons(record).values() if "member-size cap" in r]
    assert len(why) >= 1 and record["counts"]["train"]["images"] == total - len(why)


# --------------------------------------------------------------------------------------------------- zip
def _flip_member_byte(path: Path, name: str) -> None:
    """Flip one byte in the middle of a member's stored data (its CRC-32 in the headers stays)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    data = bytearray(path.read_bytes())
    start = (
        info.header_offset
        + 30
        + len(info.filename.encode())
        + int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    )
    data[start + info.compress_size // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _members(path: Path, part: str) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(path) as archive:
        return sorted((i for i in archive.infolist() if part in i.filename), key=lambda i: i.filename)


def test_a_zip_member_whose_crc_differs_is_a_recorded_skip(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["kaggle-zip"].root, src)
    stored = [i for i in _members(src / ZIP, "/train/") if i.compress_type == zipfile.ZIP_STORED]
    _flip_member_byte(src / ZIP, stored[0].filename)
    record = build_allowing_skips(src, tmp_path / "out", splits="train")
    why = [r for f, r in reasons(record).items() if f.endswith(stored[0].filename.rsplit("/", 1)[1])]
    assert why and "CRC-32" in why[0]
    assert record["counts"]["train"]["images"] == 5


def test_a_damaged_deflate_stream_is_a_recorded_skip_not_a_failed_build(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["kaggle-zip"].root, src)
    deflated = [i for i in _members(src / ZIP, "/val/") if i.compress_type == zipfile.ZIP_DEFLATED]
    info = deflated[0]
    data = bytearray((src / ZIP).read_bytes())
    start = (
        info.header_offset
        + 30
        + len(info.filename.encode())
        + int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    )
    data[start : start + 16] = b"\xff" * 16  # not a valid deflate block
    (src / ZIP).write_bytes(bytes(data))
    record = build_allowing_skips(src, tmp_path / "out", splits="val")
    assert len(record["skipped"]) == 1 and record["counts"]["val"]["images"] == 2


@pytest.mark.parametrize(
    "field, value",
    [
        pytest.param(0, b"PK\x00\x00", id="signature"),
        pytest.param(-6, b"X", id="name"),  # in the base name (from its end)
        pytest.param(14, b"\x00\x00\x00\x00", id="crc"),
    ],
)
def test_a_local_header_damaged_after_planning_is_a_recorded_skip_naming_the_member(
    layouts, tmp_path, field, value
):
    # Planning reads no local header: the worker checks it when it reads the member. The zip is damaged in
    # place with its mtime kept, after a dry run cached its central directory (the cache stays valid).
    src = tmp_path / "src"
    shutil.copytree(layouts["kaggle-zip"].root, src)
    planned = build(src, tmp_path / "dry", "--splits", "train", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    victim = _members(src / ZIP, "/train/")[0]
    base = victim.filename.rsplit("/", 1)[1]
    st = os.stat(src / ZIP)
    with open(src / ZIP, "r+b") as file:
        file.seek(victim.header_offset + (field if field >= 0 else 30 + len(victim.filename) + field))
        file.write(value)
    os.utime(src / ZIP, ns=(st.st_atime_ns, st.st_mtime_ns))
    record = build_allowing_skips(src, tmp_path / "out", splits="train")
    why = {f: r for f, r in reasons(record).items() if f.endswith(base)}
    assert list(why) == [f"train/{base}"], reasons(record)
    assert "local header" in next(iter(why.values())) and base in next(iter(why.values()))
    assert len(record["skipped"]) == 1 and record["counts"]["train"]["images"] == 5
    refused = build(src, tmp_path / "strict", "--splits", "train")  # without --allow-skips: no traceback
    assert refused.returncode != 0 and "Traceback" not in refused.stderr and base in refused.stderr


def test_zip_members_over_the_cap_by_declared_size_are_refused_at_planning(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["kaggle-zip"].root, src)
    deflated = [i for i in _members(src / ZIP, "/val/") if i.compress_type == zipfile.ZIP_DEFLATED]
    # The cap just under the first val image's inflated size and above its compressed size.
    cap = deflated[0].file_size - 1
    assert deflated[0].compress_size <= cap
    record = build_allowing_skips(src, tmp_path / "out", splits="val", max_member_size=cap)
    refused = {e["member"]: e["reason"] for e in record["refused_members"]}
    assert any("member-size cap" in r for r in refused.values()), record


def test_a_train_member_over_the_cap_by_declared_size_is_refused_at_planning(layouts, tmp_path):
    # Train members are planned as columns: the cap still sees the declared (inflated) size.
    src = tmp_path / "src"
    shutil.copytree(layouts["kaggle-zip"].root, src)
    victim = _members(src / ZIP, "/train/")[0]
    with zipfile.ZipFile(src / ZIP) as old, zipfile.ZipFile(tmp_path / ZIP, "w") as new:
        for info in old.infolist():
            method = zipfile.ZIP_DEFLATED if info.filename == victim.filename else info.compress_type
            new.writestr(info.filename, old.read(info), compress_type=method, compresslevel=9)
    shutil.move(tmp_path / ZIP, src / ZIP)
    deflated = _members(src / ZIP, victim.filename)[0]
    cap = deflated.file_size - 1
    assert deflated.compress_type == zipfile.ZIP_DEFLATED and deflated.compress_size <= cap
    record = build_allowing_skips(src, tmp_path / "out", splits="train", max_member_size=cap)
    refused = {e["member"]: e["reason"] for e in record["refused_members"]}
    base = victim.filename.rsplit("/", 1)[1]
    assert any(m.endswith(base) and "member-size cap" in r for m, r in refused.items()), record
    assert record["counts"]["train"]["images"] == 6 - sum(
        1 for i in _members(src / ZIP, "/train/") if "/Data/" in i.filename and i.file_size > cap
    )


def test_overlapping_zip_entries_are_refused(layouts, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(layouts["kaggle-zip"].root, src)
    stored = [i for i in _members(src / ZIP, "/train/") if i.compress_type == zipfile.ZIP_STORED]
    a, b = stored[0], stored[1]
    data = bytearray((src / ZIP).read_bytes())
    # Point b's central-directory entry at a's local header: two entries sharing bytes.
    at = data.rfind(b"PK\x01\x02", 0, data.rfind(b.filename.encode()))
    data[at + 42 : at + 46] = a.header_offset.to_bytes(4, "little")
    (src / ZIP).write_bytes(bytes(data))
    record = build_allowing_skips(src, tmp_path / "out", splits="train")
    refused = {e["member"]: e["reason"] for e in record["refused_members"]}
    assert any("overlaps" in r for r in refused.values()), refused


# ------------------------------------------------------------------------------------------ kaggle labels
def _kaggle(layouts, tmp_path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(layouts["kaggle"].root, src)
    return src


def test_a_kaggle_val_image_labelled_outside_the_label_space_is_recorded(layouts, tmp_path):
    src = _kaggle(layouts, tmp_path)
    csv = src / "LOC_val_solution.csv"
    lines = csv.read_text().splitlines()
    image_id = lines[1].split(",")[0]
    lines[1] = f"{image_id},n99999999 1 2 3 4"
    csv.write_text("\n".join(lines) + "\n")
    record = build_allowing_skips(src, tmp_path / "out", splits="val")
    why = [r for f, r in reasons(record).items() if image_id in f]
    assert why and "n99999999" in why[0]
    assert record["counts"]["val"]["images"] == 2


def test_a_bom_in_the_kaggle_val_solution_is_accepted(layouts, tmp_path):
    src = _kaggle(layouts, tmp_path)
    csv = src / "LOC_val_solution.csv"
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())
    record = build_allowing_skips(src, tmp_path / "out", splits="val")
    assert record["counts"]["val"]["images"] == 3


def test_a_duplicate_image_id_is_a_one_line_error_naming_both_rows(layouts, tmp_path):
    src = _kaggle(layouts, tmp_path)
    csv = src / "LOC_val_solution.csv"
    lines = csv.read_text().splitlines()
    lines.append(lines[1])
    csv.write_text("\n".join(lines) + "\n")
    line = one_line(build(src, tmp_path / "out", "--splits", "val"), 2)
    assert "line 2" in line and f"line {len(lines)}" in line


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b.replace(b"n0", b"\xffn0", 1), id="non-utf8"),
        pytest.param(
            lambda b: b + b'ILSVRC2012_val_00000999,"' + b"x" * (200 << 10) + b'"\n', id="huge-field"
        ),
    ],
)
def test_bad_kaggle_label_files_are_one_line_errors(layouts, tmp_path, damage):
    src = _kaggle(layouts, tmp_path)
    csv = src / "LOC_val_solution.csv"
    csv.write_bytes(damage(csv.read_bytes()))
    line = one_line(build(src, tmp_path / "out", "--splits", "val"), 2)
    assert "LOC_val_solution.csv" in line


def test_a_huge_kaggle_label_file_is_refused_before_it_is_read(layouts, tmp_path):
    src = _kaggle(layouts, tmp_path)
    csv = src / "LOC_val_solution.csv"
    with open(csv, "r+b") as handle:
        handle.truncate(1 << 30)  # a hole: 1 GiB claimed, a few KB on disk
    line = one_line(build(src, tmp_path / "out", "--splits", "val"), 2)
    assert "LOC_val_solution.csv" in line and "bytes" in line


def test_a_fifo_in_place_of_a_kaggle_label_file_does_not_hang(layouts, tmp_path):
    src = _kaggle(layouts, tmp_path)
    (src / "LOC_synset_mapping.txt").unlink()
    os.mkfifo(src / "LOC_synset_mapping.txt")
    line = one_line(build(src, tmp_path / "out", "--splits", "val"), 2)
    assert "LOC_synset_mapping.txt" in line and "regular file" in line


def test_a_huge_parquet_image_alone_in_its_row_group_is_refused_at_planning_and_never_read(layouts, tmp_path):
    """300 MiB of zeros compress to a few hundred KB: the file's metadata gives the size before any read."""
    src = tmp_path / "src"
    shutil.copytree(layouts["hf-parquet"].root, src)
    shards = sorted((src / "data").glob("train-*.parquet"))
    total = sum(pq.read_metadata(p).num_rows for p in shards)
    wnid = layouts["hf-parquet"].wnids[0]
    index = [c.wnid for c in sorted(classes.all_classes(), key=lambda c: c.wnid)].index(wnid)
    image = pa.StructArray.from_arrays(
        [
            pa.array([b"\xff\xd8" + bytes(300 << 20)], pa.binary()),
            pa.array([f"n1_666_{wnid}.JPEG"], pa.string()),
        ],
        names=["bytes", "path"],
    )
    huge = tmp_path / "huge.parquet"
    pq.write_table(
        pa.table({"image": image, "label": pa.array([index], pa.int64())}), huge, compression="zstd"
    )
    del image
    # The huge row alone in the first row group, the shard's own rows after it.
    with pq.ParquetWriter(
        shards[1].with_suffix(".new"), pq.read_schema(shards[1]), compression="zstd"
    ) as writer:
        writer.write_table(pq.read_table(huge).cast(pq.read_schema(shards[1])))
        writer.write_table(pq.read_table(shards[1]))
    shards[1].with_suffix(".new").replace(shards[1])
    assert shards[1].stat().st_size < 2 << 20
    record = build_allowing_skips(src, tmp_path / "out", splits="train")
    why = [e["reason"] for e in record["refused_members"] if "n1_666" in e["member"]]
    assert why and "member-size cap" in why[0]
    assert record["counts"]["train"]["images"] == total
