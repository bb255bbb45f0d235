"""WordNet 3.0 noun synsets for ImageNet: look up, search, walk the is-a tree, list the 1K classes below.

    >>> from imagenet_prep import synsets
    >>> synsets.get("n01440764").name                     # answered from bundled data, no WordNet load
    'tench.n.01'
    >>> synsets.imagenet_leaves("dog.n.01")[:2]           # loads WordNet once (a few seconds)
    ('n02085620', 'n02085782')
    >>> synsets.lowest_common_ancestor("tabby", "tiger").name
    'feline.n.01'

A query is a wnid ("n02084071"), a WordNet sense name ("dog.n.01"), a :class:`Synset`, or a plain name
("dog"). A plain name resolves like this, and anything still open is an :class:`AmbiguousQueryError` listing
every noun sense with its wnid and gloss:

1. the ImageNet-1K classes' display names, devkit words and lemmas (bundled, no WordNet load): one class ->
   that class; several ("crane", "maillot", "cardigan") -> ambiguous;
2. otherwise WordNet's noun senses of the word: one sense -> it; several -> the one sense that is, or has
   below it, an ImageNet-1K class ("dog" -> dog.n.01, "tiger" -> tiger.n.02), if exactly one does.

Is-a follows both hypernyms and instance hypernyms, as nltk's ``hypernym_paths`` does (so "Einstein" is a
person). For ImageNet-1K it makes no difference: no 1K class is an instance, and the class counts under any
synset are the same either way (dog.n.01: 118, bird.n.01: 59, animal.n.01: 398). ``is_a(x, x)`` is true, and
a 1K class is among its own ``imagenet_leaves``. Only nouns exist here: wnids are WordNet 3.0 noun offsets.

Which WordNet is used: see :mod:`imagenet_prep.wordnet` (``use_wordnet(DIR)`` or ``IMAGENET_PREP_WORDNET``).
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from . import classes, wordnet
from .errors import AmbiguousSynsetError, UnknownClassError, UsageError, WordNetError

if TYPE_CHECKING:  # pragma: no cover
    from nltk.corpus.reader.wordnet import Synset as NltkSynset
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    from .classes import ClassInfo

_WNID_RE = re.compile(r"^[nN]\d{8}$")
_NEAR_WNID_RE = re.compile(r"^[nN]\d+$")
_SENSE_RE = re.compile(r"^(.+)\.([nvasr])\.(\d+)$")


@dataclass(frozen=True)
class Synset:
    """One WordNet 3.0 noun synset. ``lemmas`` are WordNet's lemma names (underscores, e.g. "Tinca_tinca")."""

    wnid: str
    name: str  # WordNet sense name, e.g. "dog.n.01"
    lemmas: tuple[str, ...]
    definition: str
    imagenet1k_index: int | None  # sorted class index 0..999 when this synset is an ImageNet-1K class

    @property
    def is_imagenet1k(self) -> bool:
        return self.imagenet1k_index is not None

    @property
    def class_info(self) -> ClassInfo | None:
        """The bundled ImageNet-1K record (ILSVRC2012_ID, unique display name ...), None otherwise."""
        return None if self.imagenet1k_index is None else classes.by_index(self.imagenet1k_index)

    @property
    def display_name(self) -> str:
        """The unique 1K display name ("crane (wading bird)"), else the first lemma with spaces."""
        info = self.class_info
        return info.name if info else self.lemmas[0].replace("_", " ")

    def __str__(self) -> str:
        return f"{self.wnid} {self.name}"


Query = str | Synset  # a wnid, a sense name like dog.n.01, a plain name, or a Synset


@dataclass(frozen=True)
class SynsetTree:
    """The ImageNet-1K part of the hierarchy below a synset: only branches that lead to 1K classes."""

    synset: Synset
    imagenet_leaves: int  # number of ImageNet-1K classes at or below this synset
    children: tuple[SynsetTree, ...]  # empty for a 1K class, or where the depth limit cut the tree

    def walk(self, depth: int = 0) -> Iterator[tuple[int, SynsetTree]]:
        """Pre-order (depth, node) pairs, handy for printing."""
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


class AmbiguousQueryError(AmbiguousSynsetError):
    """A plain name with several candidate senses; ``senses`` holds them (the message lists them too)."""

    def __init__(self, query: str, senses: tuple[Synset, ...], note: str = "") -> None:
        self.query = query
        self.senses = senses
        self._note = note
        listed = "; ".join(
            f"{s.wnid} {s.name}{' [ImageNet-1K]' if s.is_imagenet1k else ''} ({s.definition})" for s in senses
        )
        example = next((s.name for s in senses if s.is_imagenet1k), senses[0].name)
        super().__init__(
            f"'{query}' is ambiguous{note}: {len(senses)} noun senses: {listed}. "
            f"Give a wnid or a sense name such as {example}."
        )

    def __reduce__(self):  # picklable across processes despite the extra __init__ arguments
        return (type(self), (self.query, self.senses, self._note))


class UnknownSynsetError(UnknownClassError):
    """No WordNet 3.0 noun synset or ImageNet-1K class matches; the message lists close matches."""


# --- which WordNet --------------------------------------------------------------------------------

_wordnet_dir: Path | None = None


def use_wordnet(dict_dir: str | Path | None) -> None:
    """Use this WordNet 3.0 dict folder for later queries (None: back to discovery, see :mod:`wordnet`)."""
    global _wordnet_dir
    _wordnet_dir = Path(dict_dir).expanduser() if dict_dir else None


def _wordnet_key() -> str:
    chosen = _wordnet_dir or os.environ.get(wordnet.ENV_WORDNET_DIR) or ""
    return str(chosen)


def _wn() -> WordNetCorpusReader:
    return wordnet.load(_wordnet_key() or None)


# --- bundled data (no WordNet) --------------------------------------------------------------------


@functools.cache
def _bundled_names() -> dict[str, str]:
    """wnid -> WordNet sense name for the 1000 classes (made by scripts/make_metadata.py)."""
    text = resources.files("imagenet_prep").joinpath("data", "imagenet1k_synset_names.txt").read_text("utf-8")
    pairs = (line.split("\t") for line in text.splitlines() if line and not line.startswith("#"))
    return dict(pairs)


def _from_class(info: ClassInfo) -> Synset:
    return Synset(info.wnid, _bundled_names()[info.wnid], info.lemmas, info.gloss, info.index)


def _imagenet1k(wnid: str) -> ClassInfo | None:
    return classes.by_wnid(wnid) if classes.is_imagenet1k(wnid) else None


# --- WordNet-derived tables (built once per WordNet) ---------------------------------------------


def _wnid_of(synset: NltkSynset) -> str:
    return f"n{synset.offset():08d}"


def _parents(synset: NltkSynset) -> list[NltkSynset]:
    return synset.hypernyms() + synset.instance_hypernyms()


def _kids(synset: NltkSynset) -> list[NltkSynset]:
    return synset.hyponyms() + synset.instance_hyponyms()


def _record(synset: NltkSynset) -> Synset:
    wnid = _wnid_of(synset)
    info = _imagenet1k(wnid)
    if info is not None:
        return _from_class(info)
    return Synset(wnid, synset.name(), tuple(synset.lemma_names()), synset.definition(), None)


@functools.cache
def _leaves_below(key: str) -> dict[str, tuple[str, ...]]:
    """Every synset at or above an ImageNet-1K class -> the sorted 1K wnids at or below it (~1860 entries)."""
    wn = _wn()
    below: dict[str, list[str]] = {}
    for info in classes.all_classes():  # sorted, so every list comes out sorted
        synset = wn.synset_from_pos_and_offset("n", int(info.wnid[1:]))
        for wnid in {info.wnid} | {_wnid_of(s) for s in synset.closure(_parents)}:
            below.setdefault(wnid, []).append(info.wnid)
    return {wnid: tuple(found) for wnid, found in below.items()}


def _below() -> dict[str, tuple[str, ...]]:
    return _leaves_below(_wordnet_key())


# --- resolving queries ----------------------------------------------------------------------------


def _nltk(query: Query) -> NltkSynset:
    return _wn().synset_from_pos_and_offset("n", int(get(query).wnid[1:]))


def _by_wnid(wnid: str) -> Synset:
    wnid = wnid.lower()
    info = _imagenet1k(wnid)
    if info is not None:
        return _from_class(info)
    reader = _wn()
    try:
        with warnings.catch_warnings():  # nltk warns before it raises; the error below says it better
            warnings.simplefilter("ignore", UserWarning)
            return _record(reader.synset_from_pos_and_offset("n", int(wnid[1:])))
    except Exception:  # nltk raises its own WordNetError (or ValueError) for an offset that is no synset
        close = difflib.get_close_matches(
            wnid, [info.wnid for info in classes.all_classes()], n=5, cutoff=0.7
        )
        hint = f" Close ImageNet-1K wnids: {', '.join(close)}." if close else ""
        raise UnknownSynsetError(f"{wnid} is not a WordNet 3.0 noun synset.{hint}") from None


def _by_sense_name(text: str, lemma: str, pos: str) -> Synset:
    if pos != "n":
        raise UsageError(f"'{text}' is not a noun: only noun synsets (like dog.n.01) have ImageNet wnids.")
    try:
        return _record(_wn().synset(text.replace(" ", "_")))
    except WordNetError:
        raise
    except Exception:  # nltk's own WordNetError: no such lemma, or not that many senses
        known = _senses(lemma)
        if known:
            names = ", ".join(s.name for s in known)
            raise UnknownSynsetError(
                f"'{text}' does not exist; '{lemma}' has these noun senses: {names}."
            ) from None
        raise UnknownSynsetError(_unknown_message(lemma)) from None


def _senses(word: str) -> tuple[Synset, ...]:
    """WordNet's noun senses of a word (nltk's morphy finds "dogs" -> dog), in WordNet's order."""
    return tuple(_record(s) for s in _wn().synsets(word.strip().replace(" ", "_"), pos="n"))


def _unknown_message(word: str) -> str:
    wanted = word.strip().lower().replace(" ", "_")
    # difflib over all 118k noun lemmas is slow; names starting with the same letter are a fair candidate set.
    candidates = {name for name in _wn().all_lemma_names(pos="n") if name[:1] == wanted[:1]}
    candidates |= {key.replace(" ", "_") for key in _class_keys()}
    close = [
        name.replace("_", " ") for name in difflib.get_close_matches(wanted, candidates, n=6, cutoff=0.7)
    ]
    hint = f" Close matches: {', '.join(close)}." if close else ""
    return (
        f"'{word}' is neither an ImageNet-1K class nor a WordNet 3.0 noun.{hint} "
        "`imagenet-prep synsets search TEXT --all-wordnet` searches by substring."
    )


def _resolve_name(word: str) -> Synset:
    try:
        matches = classes.by_name(word)
    except UnknownClassError:
        matches = ()
    if len(matches) == 1:
        return _from_class(matches[0])
    if matches:
        one_k = tuple(_from_class(info) for info in matches)
        try:
            found = _senses(word)
        except WordNetError:  # no WordNet: the 1K candidates are still worth listing
            found = ()
        extra = tuple(s for s in one_k if s not in found)
        raise AmbiguousQueryError(word, found + extra, f" ({len(matches)} ImageNet-1K classes)")
    found = _senses(word)
    if not found:
        raise UnknownSynsetError(_unknown_message(word))
    if len(found) == 1:
        return found[0]
    relevant = [s for s in found if s.wnid in _below()]
    if len(relevant) == 1:
        return relevant[0]
    raise AmbiguousQueryError(word, found)


@functools.lru_cache(maxsize=4096)
def _get(text: str, key: str) -> Synset:
    if _WNID_RE.match(text):
        return _by_wnid(text)
    if _NEAR_WNID_RE.match(text):
        close = difflib.get_close_matches(text.lower(), [info.wnid for info in classes.all_classes()], n=5)
        hint = f" Close ImageNet-1K wnids: {', '.join(close)}." if close else ""
        raise UnknownSynsetError(f"'{text}' is not a wnid: wnids are 'n' and 8 digits.{hint}")
    sense = _SENSE_RE.match(text)
    if sense:
        return _by_sense_name(text, sense.group(1), sense.group(2))
    return _resolve_name(text)


# --- public API -----------------------------------------------------------------------------------


def get(query: Query) -> Synset:
    """Resolve a wnid, "dog.n.01", a plain name (see the module doc) or a Synset to a :class:`Synset`.

    1K wnids and unambiguous 1K names are answered from bundled data; anything else loads WordNet (once).
    Raises AmbiguousQueryError (an errors.AmbiguousSynsetError) or UnknownSynsetError (with close matches).
    """
    if isinstance(query, Synset):
        return query
    text = str(query).strip()
    if not text:
        raise UsageError(
            "An empty synset query: give a wnid (n02084071), a sense (dog.n.01) or a name (dog)."
        )
    key = _wordnet_key() if not (_WNID_RE.match(text) and classes.is_imagenet1k(text.lower())) else ""
    return _get(text, key)


def senses(word: str) -> tuple[Synset, ...]:
    """Every WordNet noun sense of a word, in WordNet's order (loads WordNet)."""
    return _senses(word)


def lemmas(query: Query) -> tuple[str, ...]:
    return get(query).lemmas


def definition(query: Query) -> str:
    return get(query).definition


def hypernyms(query: Query) -> tuple[Synset, ...]:
    """The direct parents (hypernyms and instance hypernyms)."""
    return tuple(_record(s) for s in _parents(_nltk(query)))


def children(query: Query, *, imagenet_only: bool = False) -> tuple[Synset, ...]:
    """Direct hyponyms (and instance hyponyms) by name; ``imagenet_only``: those with 1K classes below."""
    found = sorted(_kids(_nltk(query)), key=lambda s: s.name())
    if imagenet_only:
        found = [s for s in found if _wnid_of(s) in _below()]
    return tuple(_record(s) for s in found)


def hypernym_paths(query: Query) -> tuple[tuple[Synset, ...], ...]:
    """Every is-a path from the root (entity.n.01) down to the synset, itself included last."""
    return tuple(tuple(_record(s) for s in path) for path in _nltk(query).hypernym_paths())


def _ancestors_or_self(synset: NltkSynset) -> set[NltkSynset]:
    return {synset, *synset.closure(_parents)}


def is_a(a: Query, b: Query) -> bool:
    """True when ``a`` is ``b`` or a kind (or instance) of it: is_a("tabby", "cat.n.01")."""
    child, target = get(a).wnid, get(b).wnid
    if classes.is_imagenet1k(child):  # every ancestor of a 1K class is in the table
        return child in _below().get(target, ())
    return any(_wnid_of(s) == target for s in _ancestors_or_self(_nltk(a)))


def lowest_common_ancestor(a: Query, b: Query) -> Synset:
    """The deepest synset that both are (longest path from the root; ties go to the smaller wnid)."""
    common = _ancestors_or_self(_nltk(a)) & _ancestors_or_self(_nltk(b))
    # Nouns all share entity.n.01, so common is never empty.
    best = max(common, key=lambda s: (s.max_depth(), -s.offset()))
    return _record(best)


def imagenet_leaves(query: Query) -> tuple[str, ...]:
    """Sorted wnids of the ImageNet-1K classes at or below a synset (sorted class indices, same order)."""
    synset = get(query)
    if synset.is_imagenet1k:  # no 1K class lies below another one, so a class is its only leaf
        return (synset.wnid,)
    return _below().get(synset.wnid, ())


def tree(query: Query, depth: int | None = None) -> SynsetTree:
    """The ImageNet-1K part of the hierarchy below ``query``, ``depth`` levels deep (None: all)."""
    below = _below()

    def build(synset: NltkSynset, level: int) -> SynsetTree:
        wnid = _wnid_of(synset)
        kids: tuple[SynsetTree, ...] = ()
        if depth is None or level < depth:
            chosen = sorted((s for s in _kids(synset) if _wnid_of(s) in below), key=lambda s: s.name())
            kids = tuple(build(s, level + 1) for s in chosen)
        return SynsetTree(_record(synset), len(below.get(wnid, ())), kids)

    return build(_nltk(query), 0)


@functools.cache
def _class_keys() -> dict[str, list[ClassInfo]]:
    keys: dict[str, list[ClassInfo]] = {}
    for info in classes.all_classes():
        names = {info.name, *info.words.split(", "), *info.lemmas, _bundled_names()[info.wnid]}
        for name in names:
            keys.setdefault(name.replace("_", " ").lower(), []).append(info)
    return keys


def _score(text: str, key: str) -> int | None:
    """0 exact, 1 a word of the key starts with the text, 2 substring, None no match."""
    if key == text:
        return 0
    if key.startswith(text) or f" {text}" in key:
        return 1
    return 2 if text in key else None


def search(text: str, *, all_wordnet: bool = False, limit: int | None = None) -> tuple[Synset, ...]:
    """Synsets whose names contain ``text`` (case-insensitive), best matches first.

    The 1000 ImageNet-1K classes come first (display names, devkit words, lemmas, wnids; no WordNet
    load); with ``all_wordnet`` the other WordNet nouns follow (this loads WordNet).
    """
    wanted = text.strip().replace("_", " ").lower()
    if not wanted:
        raise UsageError(
            "An empty search: give part of a class name, e.g. `imagenet-prep synsets search terrier`."
        )
    ranked: dict[str, tuple[int, int]] = {}  # wnid -> (best score, class index)
    if classes.is_imagenet1k(wanted):
        ranked[wanted] = (0, classes.by_wnid(wanted).index)
    for key, infos in _class_keys().items():
        score = _score(wanted, key)
        for info in infos:
            if score is not None and score < ranked.get(info.wnid, (9, 0))[0]:
                ranked[info.wnid] = (score, info.index)
    found = [_from_class(classes.by_wnid(wnid)) for wnid in sorted(ranked, key=ranked.__getitem__)]
    if all_wordnet and (limit is None or len(found) < limit):
        found += _search_wordnet(
            wanted, {s.wnid for s in found}, None if limit is None else limit - len(found)
        )
    return tuple(found[:limit] if limit is not None else found)


def _search_wordnet(wanted: str, seen: set[str], limit: int | None) -> list[Synset]:
    wn = _wn()
    scored = []
    for lemma in wn.all_lemma_names(pos="n"):
        score = _score(wanted, lemma.replace("_", " ").lower())
        if score is not None:
            scored.append((score, lemma))
    found: list[Synset] = []
    for _rank, lemma in sorted(scored):
        for synset in wn.synsets(lemma, pos="n"):
            # synsets() applies morphy; keep only synsets that really carry the matched lemma.
            carried = {name.lower() for name in synset.lemma_names()}  # index lemmas are lower case
            if lemma not in carried or _wnid_of(synset) in seen:
                continue
            seen.add(_wnid_of(synset))
            found.append(_record(synset))
            if limit is not None and len(found) >= limit:
                return found
    return found
