"""Label-map writers for any list of ImageNet-1K wnids (a subset or all 1000), per the README's output contract.

Class index i = position of the wnid in the sorted list: the order torchvision's ImageFolder gives to sorted
class folders, so a built tree and its label maps always agree.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path

from ..io.atomic import write_text_atomic
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
