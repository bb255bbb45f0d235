"""The temp cleaner (``build.state.remove_temp_files``) and the one listing of done markers: what a killed run
left under a temporary name goes, in OUT, the state folders and every work folder; nothing else does; a work
folder that is missing, a file, a link or under a link is left alone (its target is not ours)."""

from __future__ import annotations

from pathlib import Path

from imagenet_prep.build.state import STATE_DIR, marker_names, marker_path, remove_temp_files
from imagenet_prep.io.atomic import TMP_MARK


def _tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_temp_files_go_everywhere_a_build_writes_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    for rel in (".", STATE_DIR, f"{STATE_DIR}/done", *(f"train/n{i:08d}" for i in range(300))):
        (out / rel).mkdir(parents=True, exist_ok=True)
        (out / rel / f"{TMP_MARK}123.4-a.JPEG").write_bytes(b"half")
        (out / rel / "kept.JPEG").write_bytes(b"whole")
    (out / "train" / "n00000000" / f"{TMP_MARK}folder").mkdir()  # a folder: never removed
    work = [f"train/n{i:08d}" for i in range(300)] + ["train/missing", "./train/n00000001/"]
    assert remove_temp_files(out, work) == 303
    left = _tree(out)
    assert not any(TMP_MARK in name for name in left)
    assert sum(name.endswith("kept.JPEG") for name in left) == 303
    assert (out / "train" / "n00000000" / f"{TMP_MARK}folder").is_dir()


def test_a_link_at_the_split_or_class_level_is_never_entered(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (elsewhere / "n00000000").mkdir(parents=True)
    (elsewhere / f"{TMP_MARK}theirs").write_bytes(b"x")
    (elsewhere / "n00000000" / f"{TMP_MARK}theirs").write_bytes(b"x")
    (out / "train").mkdir(parents=True)
    (out / "val").symlink_to(elsewhere, target_is_directory=True)  # split level: all its classes skipped
    (out / "train" / "n00000001").symlink_to(elsewhere, target_is_directory=True)
    (out / "train" / "file").write_bytes(b"not a folder")
    (out / "train" / f"{TMP_MARK}ours").write_bytes(b"x")
    before = _tree(elsewhere)
    removed = remove_temp_files(out, ["val", "val/n00000000", "train", "train/n00000001", "train/file"])
    assert removed == 1
    assert not (out / "train" / f"{TMP_MARK}ours").exists()
    assert _tree(elsewhere) == before


def test_marker_names_lists_the_done_folder_once(tmp_path):
    out = tmp_path / "out"
    assert marker_names(out) == set()  # no state folder yet
    marker = marker_path(out, "train-n01440764")
    assert marker == out / STATE_DIR / "done" / "train-n01440764.json"
    marker.parent.mkdir(parents=True)
    marker.write_text("{}")
    assert marker_names(out) == {"train-n01440764.json"}
    assert marker_path(str(out), "x") == out / STATE_DIR / "done" / "x.json"
