"""The 1000 ImageNet-1K (ILSVRC2012) classes, from bundled data: instant, no WordNet load.

Index conventions, all available on :class:`ClassInfo`:
- ``index``: 0..999 in sorted-wnid order (torchvision ImageFolder, Keras, timm);
- ``ilsvrc2012_id``: 1..1000 in the devkit's meta.mat order (the validation ground truth uses it);
- ``tf_index``: 1..1000 = index + 1, 0 being TF-slim's background class.

The data files are made by ``scripts/make_metadata.py`` from the shared facts and WordNet 3.0.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import UnknownClassError, UsageError

WNID_RE = re.compile(r"^n\d{8}$")
NUM_CLASSES = 1000
NUM_VAL_IMAGES = 50_000


@dataclass(frozen=True)
class ClassInfo:
    """One ImageNet-1K class."""

    index: int
    ilsvrc2012_id: int
    wnid: str
    name: str
    words: str
    lemmas: tuple[str, ...]
    gloss: str

    @property
    def tf_index(self) -> int:
        return self.index + 1


def _data_text(name: str) -> str:
    return resources.files("imagenet_prep").joinpath(f"data/{name}").read_text(encoding="utf-8")


@functools.cache
def all_classes() -> tuple[ClassInfo, ...]:
    """The 1000 classes in sorted-wnid order (``all_classes()[i].index == i``)."""
    rows = []
    for line in _data_text("imagenet1k_classes.tsv").splitlines():
        if not line or line.startswith("#"):
            continue
        index, ilsvrc_id, wnid, name, words, lemmas, gloss = line.split("\t")
        rows.append(ClassInfo(int(index), int(ilsvrc_id), wnid, name, words, tuple(lemmas.split("|")), gloss))
    return tuple(rows)


@functools.cache
def _by_wnid() -> dict[str, ClassInfo]:
    return {info.wnid: info for info in all_classes()}


@functools.cache
def _by_ilsvrc_id() -> dict[int, ClassInfo]:
    return {info.ilsvrc2012_id: info for info in all_classes()}


@functools.cache
def _by_lower_name() -> dict[str, list[ClassInfo]]:
    """Every display name, devkit word and lemma (lower case, spaces) -> the classes it names."""
    table: dict[str, list[ClassInfo]] = {}
    for info in all_classes():
        keys = {info.name.lower(), *(w.lower() for w in info.words.split(", "))}
        keys |= {lemma.replace("_", " ").lower() for lemma in info.lemmas}
        for key in keys:
            table.setdefault(key, []).append(info)
    return table


def is_imagenet1k(wnid: str) -> bool:
    return wnid in _by_wnid()


def by_wnid(wnid: str) -> ClassInfo:
    try:
        return _by_wnid()[wnid]
    except KeyError:
        raise UnknownClassError(_unknown_message(wnid)) from None


def by_index(index: int) -> ClassInfo:
    if not 0 <= index < NUM_CLASSES:
        raise UnknownClassError(f"Class index {index} is out of range: ImageNet-1K indices are 0..999.")
    return all_classes()[index]


def by_ilsvrc_id(ilsvrc2012_id: int) -> ClassInfo:
    try:
        return _by_ilsvrc_id()[ilsvrc2012_id]
    except KeyError:
        raise UnknownClassError(f"ILSVRC2012_ID {ilsvrc2012_id} is out of range: IDs are 1..1000.") from None


def by_name(name: str) -> tuple[ClassInfo, ...]:
    """Classes whose display name, devkit word or lemma is ``name`` (case-insensitive); may be several."""
    found = _by_lower_name().get(name.strip().replace("_", " ").lower())
    if not found:
        raise UnknownClassError(_unknown_message(name))
    return tuple(found)


def _looks_like_wnid(token: str) -> bool:
    return len(token) > 1 and token[0] == "n" and token[1:].isdigit()


def _unknown_message(token: str) -> str:
    keys = list(_by_wnid()) if _looks_like_wnid(token) else list(_by_lower_name())
    close = difflib.get_close_matches(
        token if _looks_like_wnid(token) else token.lower(), keys, n=5, cutoff=0.6
    )
    hint = ""
    if close:
        described = [f"{key} ({_by_wnid()[key].name})" if key in _by_wnid() else key for key in close]
        hint = f" Close matches: {', '.join(described)}."
    return f"'{token}' is not an ImageNet-1K class.{hint} `imagenet-prep synsets search TEXT` finds classes by name."


def resolve(tokens: Iterable[str]) -> tuple[str, ...]:
    """Turn wnids and unambiguous class names into sorted unique wnids; unknown or ambiguous ones are errors."""
    wnids: set[str] = set()
    for raw in tokens:
        token = raw.strip()
        if not token:
            continue
        if _looks_like_wnid(token):
            wnids.add(by_wnid(token).wnid)
            continue
        matches = by_name(token)
        if len(matches) > 1:
            listed = "; ".join(f"{info.wnid} ({info.name})" for info in matches)
            raise UsageError(f"'{token}' names {len(matches)} classes: {listed}. Give the wnid instead.")
        wnids.add(matches[0].wnid)
    return tuple(sorted(wnids))


def read_class_file(path: Path) -> tuple[str, ...]:
    """Class list file: one wnid or name per line (first column; '#' comments and blank lines ignored)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"Cannot read the class list {path}: {exc.strerror}.") from None
    tokens = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            tokens.append(re.split(r"[\t,]", line)[0].strip())
    if not tokens:
        raise UsageError(f"The class list {path} names no classes.")
    return resolve(tokens)


@functools.cache
def val_labels() -> tuple[str, ...]:
    """The 50,000 validation labels as wnids: entry k is ILSVRC2012_val_{k+1:08d}.JPEG."""
    raw = resources.files("imagenet_prep").joinpath("data/val_labels.txt.gz").read_bytes()
    wnids = [info.wnid for info in all_classes()]
    return tuple(
        map(wnids.__getitem__, map(int, gzip.decompress(raw).split()))
    )  # C loops: every build reads it


def val_file_name(number: int) -> str:
    """ILSVRC2012_val_00000001.JPEG for number 1."""
    return f"ILSVRC2012_val_{number:08d}.JPEG"


@functools.cache
def subset_names() -> tuple[str, ...]:
    """Named subsets bundled with the tool (imagenette, imagewoof, imagenet-100, ...)."""
    folder = resources.files("imagenet_prep").joinpath("data/subsets")
    return tuple(
        sorted(entry.name[: -len(".txt")] for entry in folder.iterdir() if entry.name.endswith(".txt"))
    )


@functools.cache
def subset_wnids(name: str) -> tuple[str, ...]:
    """The sorted wnids of a named subset; an unknown name lists the valid ones."""
    key = name.strip().lower()
    if key not in subset_names():
        close = difflib.get_close_matches(key, subset_names(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownClassError(f"Unknown subset '{name}'.{hint} Known subsets: {', '.join(subset_names())}.")
    text = _data_text(f"subsets/{key}.txt")
    return tuple(sorted(line for line in text.split() if WNID_RE.match(line)))
