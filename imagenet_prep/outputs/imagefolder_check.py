"""Check a built tree against its manifests and label maps (`imagenet-prep check OUT`)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..build.state import recorded_file_sizes
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
    if wnids != sorted(set(wnids)):
        problems.add("labels.txt is not sorted and unique")
    _check_label_maps(out, wnids, problems)

    recorded = recorded_file_sizes(out)  # the sizes the done markers recorded (stat-cheap truncation check)
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
                    with open(out / rel, "rb") as image_file, Image.open(image_file) as image:
                        end_problem = _end_problem(image_file, recorded.get(rel))
                        if end_problem:
                            problems.add(f"{rel}: {end_problem}")
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
            if class_dirs != wnids:
                problems.add(f"{split}/ class folders do not match labels.txt")
            for wnid in class_dirs:
                for entry in os.scandir(split_dir / wnid):
                    rel = f"{split}/{wnid}/{entry.name}"
                    if rel not in listed:
                        problems.add(f"{rel}: not in {split}.csv")
    return CheckReport(checked, tuple(problems.items), problems.count)


_PNG_END = b"IEND\xaeB`\x82"


def _end_problem(handle: BinaryIO, recorded: int | None) -> str | None:
    """A cut-off file, found without decoding: its size differs from the one its unit recorded, or it does not
    end the way its format must (a JPEG with its EOI marker FF D9, a PNG with IEND, a WebP at its RIFF size)."""
    size = os.fstat(handle.fileno()).st_size
    if recorded is not None and size != recorded:
        return f"{size} bytes but {recorded} were written (truncated or changed)"
    handle.seek(0)
    head = handle.read(12)
    handle.seek(max(0, size - 12))
    tail = handle.read(12)
    handle.seek(0)
    if head.startswith(b"\xff\xd8") and not tail.endswith(b"\xff\xd9"):
        return "truncated: the JPEG does not end with its EOI marker (FF D9)"
    if head.startswith(b"\x89PNG") and not tail.endswith(_PNG_END):
        return "truncated: the PNG does not end with its IEND chunk"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and int.from_bytes(head[4:8], "little") + 8 > size:
        return "truncated: the WebP is shorter than its RIFF header says"
    return None


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
