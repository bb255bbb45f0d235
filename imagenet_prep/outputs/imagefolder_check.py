"""Check a built tree against its manifests and label maps (`imagenet-prep check OUT`)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError
from .base import CheckReport

MAX_LISTED = 20


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.count = 0

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.items) < MAX_LISTED:
            self.items.append(text)


def check_tree(out: Path, decode: bool = False, progress: Callable[[int], None] | None = None) -> CheckReport:
    """Every manifest row exists, is an RGB image of the recorded dims, in the right class folder with the right
    label; label maps agree; no stray files. ``decode`` also decodes every image fully."""
    from PIL import Image

    out = Path(out)
    labels_file = out / "labels.txt"
    if not labels_file.is_file():
        raise InputError(f"{out} is not a tree built by imagenet-prep (no labels.txt). Check the path.")
    problems = _Problems()
    wnids = labels_file.read_text().split()
    label_of = {wnid: i for i, wnid in enumerate(wnids)}
    built = _built_classes(out, wnids)
    if len(wnids) != len(set(wnids)) or (built == wnids and wnids != sorted(wnids)):
        # A named label space keeps its own order (build.json lists the classes built, a part of it).
        problems.add("labels.txt is not sorted and unique")
    _check_label_maps(out, wnids, problems)

    checked = 0
    for split in ("train", "val"):
        manifest = out / f"{split}.csv"
        split_dir = out / split
        if not manifest.is_file():
            if split_dir.exists():
                problems.add(f"{split}/ exists but {split}.csv is missing")
            continue
        listed: set[str] = set()
        with manifest.open(newline="") as handle:
            for row in csv.DictReader(handle):
                checked += 1
                rel = row["path"]
                listed.add(rel)
                parts = Path(rel).parts
                if len(parts) != 3 or parts[0] != split or parts[1] != row["wnid"]:
                    problems.add(f"{rel}: not under {split}/{row['wnid']}/")
                if label_of.get(row["wnid"]) != int(row["label"]):
                    problems.add(f"{rel}: label {row['label']} does not match labels.txt for {row['wnid']}")
                try:
                    with Image.open(out / rel) as image:
                        if image.size != (int(row["width"]), int(row["height"])):
                            problems.add(
                                f"{rel}: size {image.size} but the manifest says "
                                f"{row['width']}x{row['height']}"
                            )
                        if image.mode != "RGB":
                            problems.add(f"{rel}: mode {image.mode}, expected RGB")
                        if decode:
                            image.load()
                except FileNotFoundError:
                    problems.add(f"{rel}: missing")
                except Exception as exc:  # noqa: BLE001 - any decoder error is a finding, not a crash
                    problems.add(f"{rel}: cannot be read as an image ({exc})")
                if progress is not None:
                    progress(1)
        if split_dir.is_dir():
            class_dirs = sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir())
            if class_dirs != sorted(built):
                problems.add(f"{split}/ class folders do not match labels.txt")
            for wnid in class_dirs:
                for entry in os.scandir(split_dir / wnid):
                    rel = f"{split}/{wnid}/{entry.name}"
                    if rel not in listed:
                        problems.add(f"{rel}: not in {split}.csv")
    return CheckReport(checked, tuple(problems.items), problems.count)


def _built_classes(out: Path, wnids: list[str]) -> list[str]:
    """The classes built: build.json's list (a part of labels.txt when the build used a wider label space)."""
    try:
        record = json.loads((out / "build.json").read_text(encoding="utf-8"))
        built = [str(w) for w in record["classes"]]
    except (OSError, ValueError, KeyError, TypeError):
        return wnids
    return built if set(built) <= set(wnids) else wnids


def _check_label_maps(out: Path, wnids: list[str], problems: _Problems) -> None:
    try:
        index = json.loads((out / "class_index.json").read_text())
        if [index[str(i)][0] for i in range(len(index))] != wnids:
            problems.add("class_index.json does not match labels.txt")
    except (OSError, ValueError, KeyError) as exc:
        problems.add(f"class_index.json is missing or unreadable ({exc})")
    try:
        with (out / "classes.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if [row["wnid"] for row in rows] != wnids or [int(row["index"]) for row in rows] != list(
            range(len(wnids))
        ):
            problems.add("classes.csv does not match labels.txt")
    except (OSError, KeyError, ValueError) as exc:
        problems.add(f"classes.csv is missing or unreadable ({exc})")
