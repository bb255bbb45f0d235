"""Check a built tree against its manifests and label maps (`imagenet-prep check OUT`).

The tree is untrusted input: only regular files are opened (``O_NOFOLLOW | O_NONBLOCK`` and ``fstat``, so a
FIFO cannot hang the check and a symbolic link is not followed out of the tree; either is the problem "not a
regular file"), a manifest path must be ``<split>/<wnid>/<file>`` before it is opened, manifest values that are
not whole numbers are problems, and images are opened only as the formats a build writes (``IMAGE_FORMATS``),
so no other Pillow plugin (EPS and its Ghostscript helper) ever sees the bytes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..build_options import OUTPUT_SPLITS
from ..errors import InputError
from .base import CheckReport, Problems, recorded_file_sizes

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")  # what `imagenet-prep build` writes


class NotRegularFile(Exception):
    pass


@contextmanager
def open_regular(path: Path) -> Iterator[IO[bytes]]:
    """``path`` opened for reading if it is a regular file itself (no link followed, no FIFO waited on);
    NotRegularFile otherwise. FileNotFoundError when it is absent."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if os.path.islink(path):
            raise NotRegularFile() from None
        raise exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile()
        os.set_blocking(fd, True)
        yield handle


def _read_text(path: Path) -> str:
    with open_regular(path) as handle:
        return handle.read().decode("utf-8")


def _whole(row: dict[str, str], field: str) -> int | None:
    try:
        return int(row.get(field) or "")
    except ValueError:
        return None


def check_tree(out: Path, decode: bool = False, progress: Callable[[int], None] | None = None) -> CheckReport:
    """Every manifest row exists, is an RGB image of the recorded dims, in the right class folder with the right
    label; label maps agree; no stray files. ``decode`` also decodes every image fully. Raises InputError when
    ``out`` does not exist or holds no labels.txt."""
    out = Path(out)
    if not out.exists():
        raise InputError(f"{out} does not exist; pass the output folder of `imagenet-prep build`.")
    labels_file = out / "labels.txt"
    try:
        labels_text = _read_text(labels_file)
    except (OSError, NotRegularFile, UnicodeDecodeError):
        raise InputError(
            f"{out} is not a tree built by imagenet-prep (no readable labels.txt). Check the path."
        ) from None
    problems = Problems()
    wnids = labels_text.split()
    label_of = {wnid: i for i, wnid in enumerate(wnids)}
    built = _built_classes(out, wnids)
    if len(wnids) != len(set(wnids)) or (built == wnids and wnids != sorted(wnids)):
        # A named label space keeps its own order (build.json lists the classes built, a part of it).
        problems.add("labels.txt is not sorted and unique")
    check_label_map_files(out, wnids, problems)

    recorded = recorded_file_sizes(out)  # the sizes the done markers recorded (stat-cheap truncation check)
    checked = 0
    for split in OUTPUT_SPLITS:
        manifest = out / f"{split}.csv"
        split_dir = out / split
        if not os.path.lexists(manifest):
            if split_dir.exists():
                problems.add(f"{split}/ exists but {split}.csv is missing")
            continue
        listed: set[str] = set()
        try:
            manifest_text = _read_text(manifest)
        except (OSError, NotRegularFile, UnicodeDecodeError) as exc:
            problems.add(
                f"{split}.csv is unreadable ({'not a regular file' if isinstance(exc, NotRegularFile) else exc})"
            )
            continue
        for row in csv.DictReader(io.StringIO(manifest_text, newline="")):
            checked += 1
            rel = row.get("path") or ""
            wnid = row.get("wnid") or ""
            listed.add(rel)
            parts = Path(rel).parts
            if len(parts) != 3 or parts[0] != split or parts[1] != wnid or rel != "/".join(parts):
                problems.add(f"{rel}: not under {split}/{wnid}/")
                continue  # never open a path that could lead out of the tree
            numbers = {field: _whole(row, field) for field in ("label", "width", "height")}
            for field, number in numbers.items():
                if number is None:
                    problems.add(f"{rel}: {field} {row.get(field)!r} is not a whole number")
            if numbers["label"] is not None and label_of.get(wnid) != numbers["label"]:
                problems.add(f"{rel}: label {row['label']} does not match labels.txt for {wnid}")
            _check_image(
                out / rel, rel, numbers["width"], numbers["height"], decode, problems, recorded.get(rel)
            )
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


def _check_image(
    path: Path,
    rel: str,
    width: int | None,
    height: int | None,
    decode: bool,
    problems: Problems,
    recorded: int | None = None,
) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with open_regular(path) as handle:
            image = Image.open(handle, formats=IMAGE_FORMATS)  # what is not an image is reported once, below
            end_problem = _end_problem(handle, recorded)
            if end_problem:
                problems.add(f"{rel}: {end_problem}")
            if width is not None and height is not None and image.size != (width, height):
                problems.add(f"{rel}: size {image.size} but the manifest says {width}x{height}")
            if image.mode != "RGB":
                problems.add(f"{rel}: mode {image.mode}, expected RGB")
            if decode:
                image.load()
            image.close()
    except FileNotFoundError:
        problems.add(f"{rel}: missing")
    except NotRegularFile:
        problems.add(f"{rel}: not a regular file (a link, FIFO or device where an image should be)")
    except UnidentifiedImageError:
        problems.add(f"{rel}: not a JPEG, PNG or WEBP image")
    except Exception as exc:  # noqa: BLE001 - any decoder error is a finding, not a crash
        problems.add(f"{rel}: cannot be read as an image ({exc})")


_PNG_END = b"IEND\xaeB`\x82"


def _end_problem(handle: IO[bytes], recorded: int | None) -> str | None:
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


def check_label_map_files(out: Path, wnids: list[str], problems: Problems) -> None:
    for name in ("class_index.json", "classes.csv"):
        try:
            text = _read_text(out / name)
        except NotRegularFile:
            problems.add(f"{name}: not a regular file")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.add(f"{name} is missing or unreadable ({exc})")
            continue
        try:
            if name == "class_index.json":
                index = json.loads(text)
                if [index[str(i)][0] for i in range(len(index))] != wnids:
                    problems.add("class_index.json does not match labels.txt")
            else:
                rows = list(csv.DictReader(io.StringIO(text, newline="")))
                if [row["wnid"] for row in rows] != wnids or [int(row["index"]) for row in rows] != list(
                    range(len(wnids))
                ):
                    problems.add("classes.csv does not match labels.txt")
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            problems.add(f"{name} is missing or unreadable ({exc})")
