"""Issue 26 (source and reader side): links out of a folder source, files swapped for FIFOs, Parquet names
and null rows, zip CRC-32 and damaged deflate streams, and the Kaggle label files. Every bad input is a
recorded skip (file, reason) or a one-line error, exit 2; never a traceback, never bytes of a file quoted.
Real archives (zip, Parquet) made from the session's sample layouts, then damaged here."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support import cli

from imagenet_prep.sample import SampleSpec
from imagenet_prep.sample.repack import write_layouts

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


def build_here(src: Path, out: Path, **options) -> dict:
    from imagenet_prep.build import build as run
    from imagenet_prep.config import build_config

    values = {"source": str(src), "out": str(out), "workers": 1, "allow_skips": True, **options}
    result = run(build_config({}, values))
    record = json.loads((out / "build.json").read_text())
    assert len(result.skipped) == len(record["skipped"])
    return record


def build(src: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return cli("build", "--source", str(src), "--out", str(out), "--workers", "1", "--quiet", *extra)


def one_line(done: subprocess.CompletedProcess, code: int) -> str:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


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
    record = build_here(src, tmp_path / "out", splits="train")
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
    record = build_here(src, tmp_path / "out", splits="train")
    refused = [f for f, r in reasons(record).items() if "outside the source folder" in r]
    assert len(refused) == 2 and record["counts"]["train"]["images"] == 4
