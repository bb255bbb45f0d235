"""ImageNet-21K label spaces and class names, from bundled data (no WordNet load for names).

Label spaces (timm's ``timm/data/_info`` lists, Apache-2.0; see ``data/imagenet21k/SOURCE.md``), in file order:

=====================  ======  ==========================================================
name                   classes  what it is
=====================  ======  ==========================================================
imagenet22k            21,841  fall11, sorted wnids (the usual "21K"/"22K" order)
imagenet12k            11,821  timm's ImageNet-12K
imagenet21k-p          11,221  ImageNet-21K-P (MIIL, fall11)
imagenet21k-p-w21      10,450  ImageNet-21K-P (MIIL, winter21)
imagenet22k-ms         21,842  Microsoft's order: the first 1,000 are the 1K classes
goog                   21,843  Google's 21K label space
=====================  ======  ==========================================================

Display names (:func:`class_set_21k`) are unique over the union of all six spaces (21,844 wnids), so a class
has the same name in every label space. They come from ``data/imagenet21k/names.tsv.gz``, made by
``scripts/make_21k_data.py`` with :func:`unique_names` from WordNet 3.0:

1. an ImageNet-1K class keeps its bundled 1K name (``classes.py``: "crane (wading bird)"; so the 1K pair
   "Cardigan" (corgi) / "cardigan" (sweater) differs only in case);
2. any other class: the first lemma of its WordNet 3.0 synset, underscores as spaces;
3. a name shared by several classes (compared case-insensitively, as file systems may) gets, for each non-1K
   class, its hypernym in brackets, as the 1K names do ("rhea (ratite)");
4. still shared (same hypernym): another lemma of the synset that tells it apart ("rhea (Rhea americana)"),
   else the wnid ("calf (young mammal, n01887896)").

A wnid outside the bundled table (any other WordNet noun) is named the same way, loading WordNet once.
"""

from __future__ import annotations

import difflib
import functools
import gzip
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import TYPE_CHECKING

from ..errors import UnknownClassError, UsageError
from ..records import ClassSet
from . import classes

if TYPE_CHECKING:  # pragma: no cover
    from nltk.corpus.reader.wordnet import Synset as NltkSynset
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    from .synsets import Query

__all__ = [
    "LABEL_SPACES",
    "LABEL_SPACE_FILES",
    "ClassSet",
    "bundled_names",
    "class_set_21k",
    "label_space",
    "label_space_class_set",
    "leaves_under_21k",
    "unique_names",
]

# Label-space name -> bundled file (gzip of timm's list, same lines).
LABEL_SPACE_FILES = {
    "imagenet22k": "imagenet22k_synsets.txt.gz",
    "imagenet12k": "imagenet12k_synsets.txt.gz",
    "imagenet21k-p": "imagenet21k_miil_synsets.txt.gz",
    "imagenet21k-p-w21": "imagenet21k_miil_w21_synsets.txt.gz",
    "imagenet22k-ms": "imagenet22k_ms_synsets.txt.gz",
    "goog": "imagenet21k_goog_synsets.txt.gz",
}
LABEL_SPACES = tuple(LABEL_SPACE_FILES)
NAMES_FILE = "names.tsv.gz"
_FOLDER = ("data", "imagenet21k")


def _read_gz(name: str) -> str:
    raw = resources.files("imagenet_prep").joinpath("/".join((*_FOLDER, name))).read_bytes()
    return gzip.decompress(raw).decode("utf-8")


@functools.cache
def label_space(name: str) -> tuple[str, ...]:
    """The wnids of a label space, in the file's order (class index = position)."""
    key = name.strip().lower()
    if key not in LABEL_SPACE_FILES:
        close = difflib.get_close_matches(key, LABEL_SPACES, n=2)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownClassError(
            f"Unknown label space '{name}'.{hint} Known label spaces: {', '.join(LABEL_SPACES)}."
        )
    return tuple(_read_gz(LABEL_SPACE_FILES[key]).split())


@functools.cache
def bundled_names() -> dict[str, str]:
    """wnid -> unique display name for the union of the bundled label spaces (21,844 wnids)."""
    table: dict[str, str] = {}
    for line in _read_gz(NAMES_FILE).splitlines():
        if line and not line.startswith("#"):
            wnid, name = line.split("\t")
            table[wnid] = name
    return table


def _check_wnids(wnids: Iterable[str]) -> tuple[str, ...]:
    ordered = tuple(w.strip() for w in wnids)
    bad = [w for w in ordered if not classes.WNID_RE.match(w)]
    if bad:
        raise UnknownClassError(f"Not wnids (n + 8 digits): {', '.join(bad[:5])}.")
    repeated = sorted(w for w, n in Counter(ordered).items() if n > 1)
    if repeated:
        raise UsageError(f"A class list names some wnids twice: {', '.join(repeated[:5])}.")
    return ordered


def class_set_21k(wnids: Iterable[str], name: str = "custom") -> ClassSet:
    """A :class:`ClassSet` over ``wnids`` (order kept: index = position) with unique display names: bundled for
    every wnid of the label spaces; others from WordNet (loaded once), made unique against the rest."""
    ordered = _check_wnids(wnids)
    table = bundled_names()
    missing = [w for w in ordered if w not in table]
    names = dict(table)
    if missing:
        from . import synsets

        extra = unique_names(
            missing, synsets.wordnet_reader(), taken=[table[w] for w in ordered if w in table]
        )
        names.update(extra)
    return ClassSet(name, ordered, tuple(names[w] for w in ordered))


def label_space_class_set(space: str) -> ClassSet:
    """The :class:`ClassSet` of a named label space (no WordNet load)."""
    return class_set_21k(label_space(space), name=space.strip().lower())


# ------------------------------------------------------------------------------------------------ naming


def _lemma(text: str) -> str:
    return text.replace("_", " ")


def _hypernym_word(synset: NltkSynset) -> str:
    """The first lemma of the first hypernym by sense name (nltk's own order is not stable), as classes.py."""
    parents = synset.hypernyms() or synset.instance_hypernyms()
    if not parents:
        return ""
    return _lemma(min(parents, key=lambda s: s.name()).lemma_names()[0])


def unique_names(wnids: Sequence[str], wn: WordNetCorpusReader, taken: Iterable[str] = ()) -> dict[str, str]:
    """wnid -> display name, unique case-insensitively among themselves and against ``taken`` (see the
    module doc for the rules). Deterministic: depends only on the wnids and WordNet 3.0."""
    ordered = sorted(set(wnids))
    synset_of: dict[str, NltkSynset] = {w: wn.synset_from_pos_and_offset("n", int(w[1:])) for w in ordered}
    fixed = {w for w in ordered if classes.is_imagenet1k(w)}
    base = {
        w: classes.by_wnid(w).name if w in fixed else _lemma(synset_of[w].lemma_names()[0]) for w in ordered
    }
    taken_keys = Counter(t.casefold() for t in taken)
    names = dict(base)

    def clashing() -> list[str]:
        counts = Counter(n.casefold() for n in names.values()) + taken_keys
        return [w for w in ordered if w not in fixed and counts[names[w].casefold()] > 1]

    def rename(step: Callable[[str], str]) -> None:
        for w in clashing():
            names[w] = step(w)

    rename(lambda w: f"{base[w]} ({_hypernym_word(synset_of[w])})")

    def other_lemma(w: str) -> str:
        group = [v for v in ordered if names[v].casefold() == names[w].casefold()]
        elsewhere = {_lemma(n).casefold() for v in group if v != w for n in synset_of[v].lemma_names()}
        for lemma in synset_of[w].lemma_names()[1:]:
            word = _lemma(lemma)
            if word.casefold() not in elsewhere and word.casefold() != base[w].casefold():
                return f"{base[w]} ({word})"
        return f"{base[w]} ({_hypernym_word(synset_of[w])}, {w})"

    pending = clashing()
    replacements = {w: other_lemma(w) for w in pending}  # decided on the same state for the whole group
    names.update(replacements)
    rename(lambda w: f"{base[w]} ({w})")
    if clashing():  # pragma: no cover - a wnid is unique
        raise AssertionError("display names are still not unique")
    return names


# ------------------------------------------------------------------------------------------------ hierarchy


def leaves_under_21k(synset: Query, wnids: Iterable[str]) -> tuple[str, ...]:
    """The wnids (in the given order) that are ``synset`` or lie below it in WordNet 3.0 (hyponyms and
    instance hyponyms, transitively): e.g. every dog breed of a 21K label space under "dog.n.01". ``synset``
    is anything :func:`imagenet_prep.synsets.get` takes. Loads WordNet."""
    from . import synsets

    top = synsets.nltk_synset(synsets.get(synset))

    def below(node: NltkSynset) -> list[NltkSynset]:
        return node.hyponyms() + node.instance_hyponyms()

    found = {f"n{node.offset():08d}" for node in (top, *top.closure(below))}
    return tuple(w for w in wnids if w in found)
