#!/usr/bin/env python3
"""Regenerate the bundled ImageNet-21K data in imagenet_prep/data/imagenet21k/ from the shared facts and WordNet 3.0.

    python scripts/make_21k_data.py [--facts ../shared/data/imagenet21k] [--wordnet /usr/share/wordnet] [--out DIR]

Outputs (deterministic: running it twice gives the same bytes):
- <timm list>.txt.gz for the six label spaces (taxonomy.imagenet21k.LABEL_SPACE_FILES): the lines unchanged;
- names.tsv.gz: wnid, unique display name (taxonomy_21k.unique_names) for the union of the six, sorted by wnid;
- SOURCE.md: where the lists come from (copied, with a note on what is bundled).
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "imagenet_prep" / "data" / "imagenet21k"


def write_gz(path: Path, text: str) -> None:
    with (
        path.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9, filename="") as gz,
    ):
        gz.write(text.encode("utf-8"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=Path, default=REPO.parent / "shared" / "data" / "imagenet21k")
    parser.add_argument(
        "--wordnet", type=Path, default=None, help="WordNet 3.0 dict folder (default: discover)"
    )
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from imagenet_prep import wordnet
    from imagenet_prep.taxonomy.imagenet21k import LABEL_SPACE_FILES, unique_names

    union: set[str] = set()
    for bundled in LABEL_SPACE_FILES.values():
        text = (args.facts / bundled.removesuffix(".gz")).read_text(encoding="utf-8")
        wnids = text.split()
        assert len(set(wnids)) == len(wnids), bundled
        union.update(wnids)
        write_gz(args.out / bundled, text)
    note = (
        "\n## In this package\n\nThe six label-space lists are stored gzip-compressed (`<file>.txt.gz`, lines "
        "unchanged); the two\nindices files are not bundled (`imagenet_prep.taxonomy.evalsets` uses the 1K subsets). "
        "`names.tsv.gz` (wnid, unique\ndisplay name) is generated from WordNet 3.0 by `scripts/make_21k_data.py`.\n"
    )
    source = (args.facts / "SOURCE.md").read_text(encoding="utf-8")
    (args.out / "SOURCE.md").write_text(source.rstrip("\n") + "\n" + note, encoding="utf-8")
    names = unique_names(sorted(union), wordnet.load(args.wordnet))
    lines = [f"# {len(names)} unique display names (scripts/make_21k_data.py, WordNet 3.0): wnid\tname"]
    lines += [f"{wnid}\t{names[wnid]}" for wnid in sorted(names)]
    assert not any("\t" in n or "\n" in n for n in names.values())
    write_gz(args.out / "names.tsv.gz", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
