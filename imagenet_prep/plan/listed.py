"""``--images``: the images a list names, matched against the source's index by canonical key
(``SourceFile.key``, the same from every layout), each placed in the output split its list gives.

- A plain list sends each image to the split it comes from (a train name to train, a val name to val); the
  per-split form (``train=A,val=B``) sends every image of a list to its split, from whichever source split
  holds it (ImageNet-LT's val comes from ILSVRC train; its test is the ILSVRC val set).
- The image's class is always the source's (its folder, tar or devkit label), never the list's: a list that
  names a class (a folder) or a label (the 1K sorted-wnid index, or the built label outside the 1K) that
  disagrees is an error naming the file and line, unless ``--ignore-list-labels`` (lists numbered in another
  convention). The list never relabels an image: a wrong list would otherwise write a wrong tree silently.
- Images the source does not hold are counted (with the first few) and fail the build unless
  ``--allow-missing``; images of classes outside ``--classes`` / ``--subset`` / ``--under`` are left out (the
  selection is the intersection) and counted in build.json.
- ``--train-per-class`` / ``--val-per-class`` draw after the list (the usual seeded draw over the listed files).

Cost: each class's keys are scanned once against the set of keys the list names for it; what is kept is the
listed files only (memory in proportion to the list, beyond the index itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..columns import PackedFiles
from ..errors import InputError
from ..records import SourceFile
from ..taxonomy import classes
from ..taxonomy.image_lists import ImageList, ListedImage

SHOWN = 5  # how many missing images or label disagreements a message names


@dataclass
class Listed:
    """The listed files per output split and class, and what build.json records of the lists."""

    files: dict[str, dict[str, Any]]  # output split -> wnid -> dict[key, SourceFile] | PackedFiles
    record: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def source_splits(lists: Sequence[ImageList], out_splits: Sequence[str], offered: Sequence[str]) -> list[str]:
    """The source splits the lists draw from (in the source's order), for the output splits built."""
    wanted: set[str] = set()
    for listed in lists:
        if listed.split is not None and listed.split not in out_splits:
            continue
        for image in listed.images:
            if image.source_split is None:
                wanted.update(offered)
            elif listed.split is not None or image.source_split in out_splits:
                wanted.add(image.source_split)
    return [split for split in ("train", "val") if split in wanted]


def listed_keys(lists: Sequence[ImageList]) -> set[str]:
    """Every key the lists name: the plan keeps only the files with one of them, class by class, as it reads
    the index (a superset of what :func:`select` takes, which looks up listed keys only)."""
    return {image.key for listed in lists for image in listed.images}


def _label_of(wnid: str, built: dict[str, int]) -> int:
    return classes.by_wnid(wnid).index if classes.is_imagenet1k(wnid) else built[wnid]


def select(
    lists: Sequence[ImageList],
    out_splits: Sequence[str],
    files: dict[str, dict[str, Any]],
    wnids: Sequence[str],
    built_labels: dict[str, int],
    *,
    narrowed: bool,
    allow_missing: bool,
    check_labels: bool,
) -> Listed:
    """The listed files (``files``: source split -> wnid -> the class's kept files) for each output split.

    ``narrowed``: the classes were chosen (--classes / --subset / --under): a listed image of another class is
    left out; otherwise it is missing (the source does not hold its class)."""
    chosen = set(wnids)
    # source split -> wnid -> key -> [(output split, line, origin)]
    wanted: dict[str, dict[str, dict[str, Any]]] = {}  # ... -> key -> an _Entry, or a list of them
    missing: list[tuple[str, ListedImage]] = []
    outside = duplicates = 0
    seen: dict[str, set[str]] = {}  # output split -> keys taken (a set per split: no tuple per line)
    owners: dict[str, dict[str, str]] = {}  # source split -> key -> wnid (splits whose names carry no class)
    disagree: list[str] = []
    for listed in lists:
        if listed.split is not None and listed.split not in out_splits:
            continue
        for image in listed.images:
            out = listed.split or image.source_split
            if out is not None and out not in out_splits:
                continue
            candidates = [image.source_split] if image.source_split else list(files)
            home = None
            for split in candidates:
                if split not in files:
                    continue
                if split == "train" and image.wnid is not None and image.source_split == "train":
                    wnid: str | None = image.wnid  # a train key's prefix is its class
                else:
                    if split not in owners:
                        owners[split] = _owners(files[split])
                    wnid = owners[split].get(image.key)
                if wnid is not None:
                    home = (split, wnid)
                    break
            if home is None:
                missing.append((listed.origin, image))
                continue
            split, wnid = home
            if wnid not in chosen:
                if narrowed:
                    outside += 1
                else:
                    missing.append((listed.origin, image))
                continue
            if check_labels:  # every line, a repeated one too
                problem = _disagreement(image, wnid, built_labels)
                if problem:
                    disagree.append(f"{listed.origin} line {image.line}: {problem}")
            target = out or split
            taken = seen.setdefault(target, set())
            if image.key in taken:
                duplicates += 1
                continue
            taken.add(image.key)
            by_key = wanted.setdefault(split, {}).setdefault(wnid, {})
            entry = (target, image, listed.origin)
            held = by_key.get(image.key)
            # one entry as itself (most keys: one output split); a list only for a key in several
            by_key[image.key] = entry if held is None else [*_entries(held), entry]
    if disagree:
        raise InputError(
            f"{len(disagree)} line(s) of the image list disagree with the source's classes: "
            f"{'; '.join(disagree[:SHOWN])}{' ...' if len(disagree) > SHOWN else ''}. The class of an image is "
            "the source's; fix the list, or give --ignore-list-labels when its labels follow another numbering."
        )
    found, absent = _take(wanted, files, out_splits)
    missing += absent
    record: dict[str, Any] = {
        "lists": [listed.record() for listed in lists],
        "selected": {split: sum(len(f) for f in by_class.values()) for split, by_class in found.items()},
        "missing": len(missing),
        "outside_classes": outside,
        "duplicates": duplicates,
    }
    warnings: list[str] = []
    if missing:
        order = {listed.origin: position for position, listed in enumerate(lists)}
        missing.sort(key=lambda found: (order[found[0]], found[1].line))
        shown = _lines(missing[:SHOWN])
        message = (
            f"{len(missing):,} listed image(s) are not in the source: {shown}"
            f"{' ...' if len(missing) > SHOWN else ''}"
        )
        if not allow_missing:
            raise InputError(
                f"{message}. Check that the list and the source match, or give --allow-missing to build the others."
            )
        record["first_missing"] = [f"{origin}:{image.line}:{image.key}" for origin, image in missing[:SHOWN]]
        warnings.append(f"{message} (left out: --allow-missing).")
    if outside:
        warnings.append(
            f"{outside:,} listed image(s) belong to classes outside the chosen classes: left out."
        )
    if duplicates:
        warnings.append(f"{duplicates:,} listed image(s) are listed twice for the same split: built once.")
    return Listed(found, record, warnings)


def _lines(found: Sequence[tuple[str, ListedImage]]) -> str:
    """``LIST line 3 (key), line 9 (key); LIST2 line 1 (key)``: each list named once."""
    parts: list[str] = []
    last = None
    for origin, image in found:
        where = f"line {image.line} ({image.key})"
        parts.append(where if origin == last else f"{'; ' if parts else ''}{origin} {where}")
        last = origin
    return "".join(part if i == 0 or part.startswith("; ") else f", {part}" for i, part in enumerate(parts))


def _owners(by_class: dict[str, Any]) -> dict[str, str]:
    """key -> wnid over one source split (a val split: 50,000 keys)."""
    owners: dict[str, str] = {}
    for wnid, kept in by_class.items():
        for key in _keys(kept):
            owners[key] = wnid
    return owners


def _keys(kept: Any) -> list[str]:
    """A class's keys in row order (PackedFiles iterate as files, a dict as its keys)."""
    return kept.keys() if isinstance(kept, PackedFiles) else list(kept)


def _disagreement(image: ListedImage, wnid: str, built_labels: dict[str, int]) -> str:
    if image.wnid is not None and image.wnid != wnid:
        return f"{image.key} is listed in class {image.wnid} but the source has it in {wnid}"
    if image.label is not None:
        expected = _label_of(wnid, built_labels)
        if image.label != expected:
            return f"{image.key} is labelled {image.label} but is class {wnid} (label {expected})"
    return ""


def _take(
    wanted: dict[str, dict[str, dict[str, Any]]],
    files: dict[str, dict[str, Any]],
    out_splits: Sequence[str],
) -> tuple[dict[str, dict[str, Any]], list[tuple[str, ListedImage]]]:
    """Each class's listed files per output split (a class's keys scanned once), and the listed keys its
    class does not hold."""
    found: dict[str, dict[str, Any]] = {split: {} for split in out_splits}
    missing: list[tuple[str, ListedImage]] = []
    for split, by_class in wanted.items():
        for wnid, keys in by_class.items():
            kept = files[split].get(wnid, {})
            rows: dict[str, list[int]] = {}
            for row, key in enumerate(_keys(kept)):
                for target, _, _ in _entries(keys.pop(key, [])):
                    rows.setdefault(target, []).append(row)
            for held in keys.values():
                missing += [(origin, image) for _, image, origin in _entries(held)]
            for target, chosen in rows.items():
                part = kept.take(chosen) if isinstance(kept, PackedFiles) else _records(kept, chosen)
                _merge(found[target], wnid, part)
    for by_class in found.values():  # every built class appears (an empty one is warned about by the plan)
        for split_files in files.values():
            for wnid in split_files:
                by_class.setdefault(wnid, {})
    return found, missing


_Entry = tuple[str, ListedImage, str]  # (output split, the line, the list's origin)


def _entries(held: _Entry | list[_Entry]) -> list[_Entry]:
    """A listed key's entries: :func:`select` keeps a lone one as itself."""
    return held if isinstance(held, list) else [held]


def _records(kept: dict[str, SourceFile], rows: list[int]) -> dict[str, SourceFile]:
    keys = list(kept)
    return {keys[row]: kept[keys[row]] for row in rows}


def _merge(into: dict[str, Any], wnid: str, part: Any) -> None:
    """One output split's class drawing from two source splits: its files as records (PackedFiles hold one
    source split's columns)."""
    before = into.get(wnid)
    if not before:
        into[wnid] = part
        return
    merged = {file.key: file for file in before} if isinstance(before, PackedFiles) else dict(before)
    merged.update({file.key: file for file in part} if isinstance(part, PackedFiles) else part)
    into[wnid] = merged
