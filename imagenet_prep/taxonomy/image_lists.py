"""Image-level lists (``--images``): which images a build holds and which output split each goes to.

A spec is a bundled name (:data:`BUNDLED`), a file, or the per-split form ``train=FILE,val=FILE2`` whose values
are files or bundled single lists. A list line is one image in any of the common spellings, optionally
followed by an integer label (the Caffe / PaddleClas / ImageNet-LT convention)::

    n01440764_10026.JPEG                          # a file name (train or val: the name says which)
    ILSVRC2012_val_00000001.JPEG
    train/n01440764/n01440764_10026.JPEG 0         # a path, with a label
    n01440764/n01440764_10026.JPEG
    val/n01440764/ILSVRC2012_val_00029930.JPEG 0

Blank lines and ``#`` comments are ignored. Each image is named by its canonical key (the stem of its ILSVRC2012
name: ``records.SourceFile.key``), so a list applies to every source layout. The plan (``plan/listed.py``)
matches the keys against the source's index; this module only reads lists.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import InputError, UsageError

#: A bundled list: the output split -> the bundled single list it reads.
BUNDLED: dict[str, dict[str, str]] = {
    "simclr-1pct": {"train": "simclr-1pct"},
    "simclr-10pct": {"train": "simclr-10pct"},
    "imagenet-lt": {"val": "imagenet-lt-val", "test": "imagenet-lt-test"},
    "imagenet-lt-val": {"val": "imagenet-lt-val"},
    "imagenet-lt-test": {"test": "imagenet-lt-test"},
}
#: The SHA-256 of the published file each bundled list was made from (data/image-lists/SOURCE.md).
PUBLISHED_SHA256 = {
    "simclr-1pct": "71e82a48ba78252683ae334c4d019ebd5c6e855b9599c1389fbe83eb9549cf17",
    "simclr-10pct": "6d09de11e7bdaf5b1f3b1f249b6183695f97310cdd20f0c03e7235b6b9392091",
    "imagenet-lt-val": "9af7ba688acf9532ff5845a8fb14a1e97fdc4c51ac48bc72c08ea9c3f7ff142e",
    "imagenet-lt-test": "d1590191cf8a71fada7b1aaedaa2d139a2aea93ff2f1b755319d0bd8dbaa55d5",
}
OUTPUT_SPLITS = ("train", "val", "test")
MAX_LIST_BYTES = 256 << 20  # the largest published list (ImageNet-LT test, 2.3 MB) is far below it
SOURCE_SPLITS = ("train", "val")
_WNID_RE = re.compile(r"n\d{8}")
_TRAIN_NAME_RE = re.compile(r"(n\d{8})_\d+")
_VAL_NAME_RE = re.compile(r"ILSVRC2012_val_\d{8}")
# A line that is a bare train file name (most lines of the SimCLR lists: n01440764_10026.JPEG); parse_line
# gives it key = the name without .JPEG, source split train, the class of its prefix, no label.
_PLAIN_TRAIN_LINE_RE = re.compile(r"(n\d{8})_\d+\.JPEG")


@dataclass(frozen=True, slots=True)  # slots: a 10% list holds 128,116 of these
class ListedImage:
    """One line of a list: the image's canonical key, the source split it lives in (None: the name does not
    say; looked up in every split the source holds), the class the line names (a folder, or a train name's
    prefix; None: not said), the label it gives (None: none), and its line number."""

    key: str
    source_split: str | None
    wnid: str | None
    label: int | None
    line: int


@dataclass(frozen=True)
class ImageList:
    """A parsed list: ``split`` is the output split its images go to (None: each to its own source split);
    ``origin`` the bundled name or the file's absolute path."""

    split: str | None
    origin: str
    bundled: bool
    sha256: str
    images: tuple[ListedImage, ...]

    def record(self) -> dict[str, object]:
        """How build.json records the list."""
        found: dict[str, object] = {"split": self.split or "by name", "list": self.origin}
        found["sha256"] = self.sha256
        if self.bundled:
            found["published_sha256"] = PUBLISHED_SHA256[self.origin]
        found["lines"] = len(self.images)
        return found


def parse_spec(spec: str) -> tuple[tuple[str | None, str], ...]:
    """``(output split or None, bundled name or absolute path)`` pairs of a spec; a bundled name of several
    splits becomes one pair per split. A UsageError for an unknown split, a repeated split, a missing file."""
    spec = spec.strip()
    if not spec:
        raise UsageError("--images is empty: give a list file, a bundled list (" + ", ".join(BUNDLED) + ").")
    parts = [part.strip() for part in spec.split(",")] if "=" in spec else [spec]
    pairs: list[tuple[str | None, str]] = []
    for part in parts:
        split: str | None = None
        value = part
        if "=" in spec:
            split, _, value = (item.strip() for item in part.partition("="))
            if split not in OUTPUT_SPLITS or not value:
                raise UsageError(
                    f"--images: '{part}' is not SPLIT=LIST with SPLIT one of {', '.join(OUTPUT_SPLITS)} "
                    "(e.g. --images train=train_list.txt,val=imagenet-lt-val)."
                )
        if value in BUNDLED:
            named = BUNDLED[value]
            if split is not None and len(named) != 1:
                raise UsageError(
                    f"--images {split}={value}: {value} holds several splits ({', '.join(named)}); name one "
                    f"of {', '.join(n for n, s in BUNDLED.items() if len(s) == 1)}."
                )
            pairs += [(split or out, name) for out, name in named.items()]
            continue
        path = Path(value).expanduser()
        if not path.is_file():
            raise UsageError(
                f"--images: {value} is neither a file nor a bundled list (bundled: {', '.join(BUNDLED)})."
            )
        pairs.append((split, str(path.resolve())))
    splits = [split for split, _ in pairs if split is not None]
    if len(splits) != len(set(splits)):
        raise UsageError(f"--images names a split twice ({spec}): give one list per output split.")
    return tuple(pairs)


def normalise_spec(spec: str) -> str:
    """The spec as recorded: file paths made absolute (a repair command run elsewhere finds them)."""
    if "=" not in spec:
        return spec.strip() if spec.strip() in BUNDLED else parse_spec(spec)[0][1]
    parsed = dict(parse_spec(spec))
    words = []
    for part in spec.split(","):
        split, _, value = (item.strip() for item in part.partition("="))
        words.append(f"{split}={value if value in BUNDLED else parsed[split]}")
    return ",".join(words)


def spec_splits(spec: str) -> tuple[str, ...] | None:
    """The output splits a spec names, in OUTPUT_SPLITS order; None for a plain file (its lines decide)."""
    pairs = parse_spec(spec)
    if any(split is None for split, _ in pairs):
        return None
    named = {split for split, _ in pairs}
    return tuple(split for split in OUTPUT_SPLITS if split in named)


@functools.lru_cache(maxsize=4)
def _bundled_text(name: str) -> bytes:
    import lzma  # only for a bundled list

    data = resources.files("imagenet_prep").joinpath(f"data/image-lists/{name}.txt.xz").read_bytes()
    return lzma.decompress(data)


def _file_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_LIST_BYTES + 1)
    except OSError as exc:
        raise InputError(f"Cannot read the image list {path}: {exc.strerror}.") from None
    if len(data) > MAX_LIST_BYTES:
        raise InputError(
            f"The image list {path} is larger than {MAX_LIST_BYTES >> 20} MiB: not an image list."
        )
    return data


def load(split: str | None, origin: str) -> ImageList:
    """Read and parse one list (bundled name or absolute path)."""
    bundled = origin in PUBLISHED_SHA256
    data = _bundled_text(origin) if bundled else _file_bytes(origin)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"The image list {origin} is not UTF-8 text.") from None
    images = tuple(parse_lines(text, origin))
    if not images:
        raise InputError(f"The image list {origin} names no image (only blank lines and # comments).")
    return ImageList(split, origin, bundled, hashlib.sha256(data).hexdigest(), images)


def load_spec(spec: str) -> tuple[ImageList, ...]:
    return tuple(load(split, origin) for split, origin in parse_spec(spec))


def parse_lines(text: str, origin: str) -> list[ListedImage]:
    """Every image line of a list (see the module docstring); an InputError naming the file and line of the
    first line that is not one."""
    found: list[ListedImage] = []
    plain = _PLAIN_TRAIN_LINE_RE.fullmatch
    intern = sys.intern
    for number, raw in enumerate(text.splitlines(), 1):
        train = plain(raw)
        if train is not None:  # what parse_line makes of a bare train file name, in one regex
            found.append(ListedImage(raw[:-5], "train", intern(train.group(1)), None, number))
            continue
        line = raw.split("#", 1)[0].strip() if "#" in raw else raw.strip()
        if line:
            found.append(parse_line(line, number, origin))
    return found


def parse_line(line: str, number: int, origin: str = "the list") -> ListedImage:
    words = line.split()
    label: int | None = None
    if len(words) == 2 and re.fullmatch(r"[+-]?\d{1,9}", words[1]):
        label = int(words[1])
    elif len(words) != 1:
        raise InputError(
            f"{origin} line {number}: '{line[:80]}' is not an image (a name or path, optionally followed by "
            "an integer label)."
        )
    parts = [part for part in words[0].replace("\\", "/").split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise InputError(f"{origin} line {number}: '{words[0][:80]}' is not a file name or a relative path.")
    name = parts[-1]
    key = name.rsplit(".", 1)[0] if "." in name[1:] else name
    folders = parts[:-1]
    named_split = next((part for part in reversed(folders) if part in SOURCE_SPLITS), None)
    folder_wnid = next((part for part in reversed(folders) if _WNID_RE.fullmatch(part)), None)
    train = _TRAIN_NAME_RE.fullmatch(key)
    if train is not None:
        split: str | None = "train"
        wnid: str | None = sys.intern(
            train.group(1)
        )  # one string per class, not per line (a 10% list: 128,116 lines)
        if folder_wnid is not None and folder_wnid != wnid:
            raise InputError(
                f"{origin} line {number}: {words[0]} lies in folder {folder_wnid} but its name is of class "
                f"{wnid}; fix the line."
            )
    elif _VAL_NAME_RE.fullmatch(key):
        split, wnid = "val", folder_wnid
    else:  # another source's own names (an evaluation set): its folder says, else every split is searched
        split, wnid = named_split, folder_wnid
    if named_split is not None and split is not None and named_split != split:
        raise InputError(
            f"{origin} line {number}: {words[0]} lies under {named_split}/ but is an ILSVRC2012 {split} "
            "image; fix the line."
        )
    return ListedImage(key, split, wnid, label, number)


def list_counts(spec: str) -> dict[str, dict[str, int]]:
    """Images per output split and class that a spec names, from the lists alone (no source): a class is the
    line's folder or train-name prefix, an ILSVRC2012 val name's class its ground-truth label; ``?`` when the
    line does not say."""
    from . import classes

    truth = classes.val_labels()
    counts: dict[str, dict[str, int]] = {}
    for listed in load_spec(spec):
        for image in listed.images:
            split = listed.split or image.source_split or "?"
            wnid = image.wnid
            if wnid is None and image.source_split == "val" and _VAL_NAME_RE.fullmatch(image.key):
                wnid = truth[int(image.key[-8:]) - 1]
            per_class = counts.setdefault(split, {})
            per_class[wnid or "?"] = per_class.get(wnid or "?", 0) + 1
    return {split: dict(sorted(per_class.items())) for split, per_class in counts.items()}
