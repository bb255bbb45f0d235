#!/usr/bin/env python3
"""Regenerate the bundled ImageNet-1K metadata in imagenet_prep/data/ from the shared facts and WordNet 3.0.

    python scripts/make_metadata.py [--facts ../shared/data/ilsvrc2012] [--wordnet /usr/share/wordnet]
                                    [--out DIR]

Inputs: ilsvrc2012_id_order.txt (ILSVRC2012_ID, wnid, sorted index, devkit words), val_labels.txt (the 50,000
validation labels), subsets/*.txt. WordNet 3.0 gives each class's lemmas and gloss. Outputs:
- imagenet1k_classes.tsv: index, ilsvrc2012_id, wnid, name (unique), words, lemmas ('|'-joined), gloss
- imagenet1k_hierarchy.tsv: the 1000 classes and every synset above them (hypernyms and instance hypernyms):
  wnid, sense name, lemmas, definition, parent wnids; hierarchy queries about them need no WordNet load
- val_labels.txt.gz: line k = sorted class index of ILSVRC2012_val_{k:08d}.JPEG (50,000 lines)
- subsets/<name>.txt: one wnid per line, with the source file named in a comment
The output (into imagenet_prep/data/, or --out DIR) is deterministic: running it twice gives the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "imagenet_prep" / "data"
WNID_RE = re.compile(r"\bn\d{8}\b")
# Subset name -> source file in the shared facts folder.
SUBSETS = {
    "imagenette": "imagenette.txt",
    "imagewoof": "imagewoof.txt",
    "imagenet-100": "imagenet100_cmc.txt",
    "tiny-imagenet-200": "tiny_imagenet_200.txt",
    "imagenet-a": "imagenet_a.txt",
    "imagenet-r": "imagenet_r.txt",
    "mini-imagenet": "mini_imagenet_timm.txt",
}


def unique_names(rows: list[dict], wn) -> dict[str, str]:
    """First devkit word per class; a repeated word gets its hypernym in brackets ("crane (wading bird)")."""
    first = {row["wnid"]: row["words"].split(", ")[0] for row in rows}
    counts: dict[str, int] = {}
    for word in first.values():
        counts[word] = counts.get(word, 0) + 1
    names = {}
    for wnid, word in first.items():
        if counts[word] > 1:
            synset = wn.synset_from_pos_and_offset("n", int(wnid[1:]))
            first = min(synset.hypernyms(), key=lambda s: s.name())  # nltk's order is not stable
            hypernym = first.lemma_names()[0].replace("_", " ")
            word = f"{word} ({hypernym})"
        names[wnid] = word
    if len(set(names.values())) != len(names):
        raise SystemExit("display names are still not unique")
    return names


HIERARCHY_HEADER = """\
# The ImageNet-1K part of the WordNet noun hierarchy: the 1000 classes and every synset above them.
# WordNet version: {version}
# Written by scripts/make_metadata.py. parents: wnids of the hypernyms, then of the instance hypernyms, each
# sorted by sense name (imagenet_prep.synsets walks them in this order). lemmas ('|'-joined) and definition are
# left empty for the 1000 classes: imagenet1k_classes.tsv holds them.
# wnid\tname\tlemmas\tdefinition\tparents
"""


def hierarchy_text(rows: list[dict], wn) -> str:
    """imagenet1k_hierarchy.tsv: rows sorted by wnid, so the bytes depend only on WordNet and the 1000 wnids."""

    def parents(synset):  # the same is-a links, in the same order, as imagenet_prep.synsets
        # nltk's hypernyms() order changes with the hash seed: sort, or the bytes would change run to run.
        return sorted(synset.hypernyms(), key=name) + sorted(synset.instance_hypernyms(), key=name)

    def name(synset) -> str:
        return synset.name()

    def wnid_of(synset) -> str:
        return f"n{synset.offset():08d}"

    one_k = {row["wnid"] for row in rows}
    found = {}
    for row in rows:
        synset = wn.synset_from_pos_and_offset("n", int(row["wnid"][1:]))
        for node in (synset, *synset.closure(parents)):
            found[wnid_of(node)] = node
    lines = []
    for wnid in sorted(found):
        synset = found[wnid]
        lemmas, definition = (
            ("", "") if wnid in one_k else ("|".join(synset.lemma_names()), synset.definition())
        )
        fields = [wnid, synset.name(), lemmas, definition, ",".join(wnid_of(p) for p in parents(synset))]
        assert not any(ch in field for field in fields for ch in "\t\n"), wnid
        assert "|" not in "".join(synset.lemma_names()) and (lemmas or wnid in one_k), wnid
        lines.append("\t".join(fields))
    return HIERARCHY_HEADER.format(version=wn.get_version()) + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=Path, default=REPO.parent / "shared" / "data" / "ilsvrc2012")
    parser.add_argument(
        "--wordnet", type=Path, default=None, help="WordNet 3.0 dict folder (default: discover)"
    )
    parser.add_argument("--out", type=Path, default=DATA, help="output folder (default: imagenet_prep/data)")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    from imagenet_prep import wordnet

    wn = wordnet.load(args.wordnet)
    rows = []
    for line in (args.facts / "ilsvrc2012_id_order.txt").read_text().splitlines():
        ilsvrc_id, wnid, index, words = line.split("\t")
        rows.append({"ilsvrc2012_id": int(ilsvrc_id), "wnid": wnid, "index": int(index), "words": words})
    rows.sort(key=lambda row: row["index"])
    assert [row["index"] for row in rows] == list(range(1000))
    assert [row["wnid"] for row in rows] == sorted(row["wnid"] for row in rows)
    names = unique_names(rows, wn)

    lines = ["# index\tilsvrc2012_id\twnid\tname\twords\tlemmas\tgloss"]
    for row in rows:
        synset = wn.synset_from_pos_and_offset("n", int(row["wnid"][1:]))
        lemmas = "|".join(synset.lemma_names())
        fields = [row["index"], row["ilsvrc2012_id"], row["wnid"], names[row["wnid"]], row["words"], lemmas]
        lines.append("\t".join(str(field) for field in fields) + "\t" + synset.definition())
    (out / "imagenet1k_classes.tsv").write_text("\n".join(lines) + "\n")

    (out / "imagenet1k_hierarchy.tsv").write_text(hierarchy_text(rows, wn), encoding="utf-8")

    index_of = {row["wnid"]: row["index"] for row in rows}
    val_lines = (args.facts / "val_labels.txt").read_text().splitlines()
    labels = []
    for number, line in enumerate(val_lines, start=1):
        name, wnid, _ilsvrc_id, index = line.split("\t")
        assert name == f"ILSVRC2012_val_{number:08d}.JPEG" and index_of[wnid] == int(index)
        labels.append(index)
    assert len(labels) == 50_000
    with gzip.GzipFile(out / "val_labels.txt.gz", "wb", mtime=0) as handle:
        handle.write(("\n".join(labels) + "\n").encode())

    (out / "subsets").mkdir(exist_ok=True)
    for name, source in SUBSETS.items():
        wnids = WNID_RE.findall((args.facts / "subsets" / source).read_text())
        unknown = [wnid for wnid in wnids if wnid not in index_of]
        assert not unknown and len(set(wnids)) == len(wnids), (name, unknown)
        text = f"# {name}: {len(wnids)} classes (from shared/data/ilsvrc2012/subsets/{source})\n"
        (out / "subsets" / f"{name}.txt").write_text(text + "\n".join(wnids) + "\n")


if __name__ == "__main__":
    main()
