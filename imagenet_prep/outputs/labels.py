"""Label-map writers for any list of ImageNet-1K wnids (a subset or all 1000), per the README's output contract,
and for any :class:`~imagenet_prep.records.ClassSet` (a 21K label space, an archive's classes).

Class index i = position of the wnid in the sorted list: the order torchvision's ImageFolder gives to sorted
class folders, so a built tree and its label maps always agree. A class set keeps its own order (a named label
space's file order) and names; its rows outside ImageNet-1K have empty 1K columns, and their lemmas and gloss
come from WordNet 3.0 when it is installed (empty otherwise: names need no WordNet, they are bundled).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import ImagenetPrepError
from ..io.atomic import write_text_atomic
from ..records import ClassSet
from ..taxonomy import classes

LABEL_FILES = ("labels.txt", "class_index.json", "classes.csv")
CLASSES_CSV_FIELDS = (
    "index",
    "wnid",
    "imagenet1k_index",
    "ilsvrc2012_id",
    "tf_index",
    "name",
    "lemmas",
    "gloss",
)


def ordered_wnids(wnids: Iterable[str]) -> tuple[str, ...]:
    """Sorted unique wnids, each checked against ImageNet-1K (unknown ones raise with close matches)."""
    return tuple(sorted({classes.by_wnid(wnid).wnid for wnid in wnids}))


def labels_txt(wnids: Iterable[str]) -> str:
    return "".join(f"{wnid}\n" for wnid in ordered_wnids(wnids))


def class_index_json(wnids: Iterable[str]) -> str:
    """Keras style: {"0": ["n01440764", "tench"], ...} over the given classes."""
    table = {str(i): [wnid, classes.by_wnid(wnid).name] for i, wnid in enumerate(ordered_wnids(wnids))}
    return json.dumps(table, ensure_ascii=False) + "\n"


def classes_csv(wnids: Iterable[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CLASSES_CSV_FIELDS)
    for i, wnid in enumerate(ordered_wnids(wnids)):
        info = classes.by_wnid(wnid)
        lemmas = ", ".join(lemma.replace("_", " ") for lemma in info.lemmas)
        writer.writerow(
            [i, wnid, info.index, info.ilsvrc2012_id, info.tf_index, info.name, lemmas, info.gloss]
        )
    return buffer.getvalue()


def write_label_maps(out_dir: Path, wnids: Iterable[str]) -> tuple[Path, ...]:
    """Write labels.txt, class_index.json and classes.csv into out_dir (atomically); return their paths."""
    ordered = ordered_wnids(wnids)
    out_dir = Path(out_dir)
    contents = (labels_txt(ordered), class_index_json(ordered), classes_csv(ordered))
    paths = tuple(out_dir / name for name in LABEL_FILES)
    for path, text in zip(paths, contents, strict=True):
        write_text_atomic(path, text)
    return paths


# ------------------------------------------------------------------------------------------ class sets
def is_sorted_1k(class_set: ClassSet) -> bool:
    """Whether a class set is what the 1K writers above describe (sorted 1K wnids with their 1K names)."""
    return (
        all(classes.is_imagenet1k(w) for w in class_set.wnids)
        and list(class_set.wnids) == sorted(set(class_set.wnids))
        and all(classes.by_wnid(w).name == n for w, n in zip(class_set.wnids, class_set.names, strict=True))
    )


def _wordnet_details(wnids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """wnid -> (lemmas, gloss) from WordNet 3.0 for classes outside the 1K; {} when WordNet is not installed.

    Read straight from ``data.noun`` (a wnid's digits are its synset's byte offset there): one seek per class,
    no WordNet load. The gloss is nltk's ``definition()`` (examples in quotes removed)."""
    wanted = [w for w in wnids if not classes.is_imagenet1k(w)]
    if not wanted:
        return {}
    from ..taxonomy import wordnet

    try:
        location = wordnet.locate()
    except ImagenetPrepError:
        return {}
    details = {}
    try:
        with open(location.nltk_root / "corpora" / "wordnet" / "data.noun", "rb") as handle:
            for wnid in wanted:
                handle.seek(int(wnid[1:]))
                line = handle.readline().decode("utf-8", "replace")
                fields, _, gloss = line.partition("|")
                parts = fields.split()
                if not parts or parts[0] != wnid[1:]:
                    continue  # no WordNet 3.0 noun at that offset: empty columns
                count = int(parts[3], 16)
                lemmas = ", ".join(parts[4 + 2 * i].replace("_", " ") for i in range(count))
                definition = re.sub(r"[\"].*?[\"]", "", gloss).strip().strip("; ")
                details[wnid] = (lemmas, definition)
    except OSError:
        return {}
    return details


def class_set_texts(class_set: ClassSet) -> tuple[str, str, str]:
    """(labels.txt, class_index.json, classes.csv) of a class set, in its order with its names. A sorted 1K
    class set gives exactly the bytes of the 1K writers."""
    if is_sorted_1k(class_set):
        wnids = class_set.wnids
        return labels_txt(wnids), class_index_json(wnids), classes_csv(wnids)
    details = _wordnet_details(class_set.wnids)
    text = "".join(f"{wnid}\n" for wnid in class_set.wnids)
    table = {str(i): [w, n] for i, (w, n) in enumerate(zip(class_set.wnids, class_set.names, strict=True))}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CLASSES_CSV_FIELDS)
    for i, (wnid, name) in enumerate(zip(class_set.wnids, class_set.names, strict=True)):
        if classes.is_imagenet1k(wnid):
            info = classes.by_wnid(wnid)
            lemmas = ", ".join(lemma.replace("_", " ") for lemma in info.lemmas)
            writer.writerow(
                [i, wnid, info.index, info.ilsvrc2012_id, info.tf_index, name, lemmas, info.gloss]
            )
        else:
            lemmas, gloss = details.get(wnid, ("", ""))
            writer.writerow([i, wnid, "", "", "", name, lemmas, gloss])
    return text, json.dumps(table, ensure_ascii=False) + "\n", buffer.getvalue()


def write_class_set_maps(out_dir: Path, class_set: ClassSet) -> tuple[Path, ...]:
    """Write labels.txt, class_index.json and classes.csv of ``class_set`` into out_dir (atomically)."""
    out_dir = Path(out_dir)
    paths = tuple(out_dir / name for name in LABEL_FILES)
    for path, text in zip(paths, class_set_texts(class_set), strict=True):
        write_text_atomic(path, text)
    return paths
