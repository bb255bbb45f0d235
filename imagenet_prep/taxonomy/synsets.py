"""WordNet 3.0 noun synsets for ImageNet: look up, search, walk the is-a tree, list the 1K classes below.

    >>> from imagenet_prep import synsets
    >>> synsets.get("n01440764").name                     # answered from bundled data, no WordNet load
    'tench.n.01'
    >>> synsets.imagenet_leaves("dog.n.01")[:2]           # bundled hierarchy, no WordNet load
    ('n02085620', 'n02085782')
    >>> synsets.lowest_common_ancestor("tabby", "tiger").name
    'feline.n.01'
    >>> len(synsets.imagenet_leaves("canine"))            # a plain word, no 1K name: WordNet picks the sense
    130

What the bundled data answers (no WordNet load): the "ImageNet-1K hierarchy" is the 1000 classes and every
synset above them (1860 synsets, data/imagenet1k_hierarchy.tsv, made from WordNet 3.0 by
scripts/make_metadata.py). Wnids and canonical sense names ("dog.n.01", the name :attr:`Synset.name` shows) of
those synsets resolve from it, and so do their ``imagenet_leaves``, ``hypernyms``, ``hypernym_paths``,
``is_a`` (from such a synset), ``lowest_common_ancestor`` (of two such synsets), ``tree`` and
``children(imagenet_only=True)``. Everything else loads WordNet: other synsets, other sense names of the same
synset ("domestic_dog.n.01"), plain words that are no 1K class name ("dog": WordNet's senses decide), all
``children``, ``senses`` and ``search(all_wordnet=True)``. Both ways give identical answers (a test checks every
bundled synset against WordNet).

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

import contextlib
import difflib
import functools
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import AmbiguousSynsetError, UnknownClassError, UsageError, WordNetError
from . import classes, wordnet

if TYPE_CHECKING:  # pragma: no cover
    from nltk.corpus.reader.wordnet import Synset as NltkSynset
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    from .classes import ClassInfo

_WNID_RE = re.compile(r"^[nN]\d{8}$")
_NEAR_WNID_RE = re.compile(r"^[nN]\d+$")
_SENSE_RE = re.compile(r"^(.+)\.([nvasr])\.(\d+)$")
_T = TypeVar("_T")


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

    def to_dict(self, query: str = "") -> dict[str, Any]:
        """The record ``synsets show|search --json`` prints for this synset, found by ``query``."""
        info = self.class_info
        return {
            "query": query,
            "wnid": self.wnid,
            "name": self.name,
            "lemmas": list(self.lemmas),
            "definition": self.definition,
            "is_imagenet1k": self.is_imagenet1k,
            "imagenet1k_index": self.imagenet1k_index,
            "ilsvrc2012_id": info.ilsvrc2012_id if info else None,
            "display_name": self.display_name,
            "imagenet1k_leaves": len(imagenet_leaves(self)),
        }


Query = str | Synset  # a wnid, a sense name like dog.n.01, a plain name, or a Synset


@dataclass(frozen=True)
class SynsetTree:
    """The ImageNet-1K part of the hierarchy below a synset: only branches that lead to 1K classes."""

    synset: Synset
    imagenet_leaves: int  # number of ImageNet-1K classes at or below this synset
    children: tuple[SynsetTree, ...]  # empty for a 1K class, or where the depth limit cut the tree

    def to_dict(self) -> dict[str, Any]:
        """The tree ``synsets tree --json`` prints: each node's wnid, name, 1K index and leaves, its children."""
        return {
            "wnid": self.synset.wnid,
            "name": self.synset.name,
            "imagenet1k_index": self.synset.imagenet1k_index,
            "imagenet1k_leaves": self.imagenet_leaves,
            "children": [child.to_dict() for child in self.children],
        }

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
#: A WordNet chosen for a stretch of code (``using_wordnet``): a library caller (the plan, with a build's
#: ``--wordnet``) picks one without changing the process's choice.
_scoped_dir: ContextVar[Path | None] = ContextVar("imagenet_prep_wordnet_dir", default=None)


def use_wordnet(dict_dir: str | Path | None) -> None:
    """Use this WordNet 3.0 dict folder for later queries (None: back to discovery, see :mod:`wordnet`): the
    application's choice (the ``synsets`` command, a notebook). A library caller uses :func:`using_wordnet`."""
    global _wordnet_dir
    _wordnet_dir = Path(dict_dir).expanduser() if dict_dir else None


@contextlib.contextmanager
def using_wordnet(dict_dir: str | Path | None) -> Iterator[None]:
    """Queries inside the block use this WordNet 3.0 dict folder (None: whichever was chosen before); the
    choice ends with the block."""
    if not dict_dir:
        yield
        return
    token = _scoped_dir.set(Path(dict_dir).expanduser())
    try:
        yield
    finally:
        _scoped_dir.reset(token)


def _wordnet_key() -> str:
    chosen = _scoped_dir.get() or _wordnet_dir or os.environ.get(wordnet.ENV_WORDNET_DIR) or ""
    return str(chosen)


def wordnet_reader() -> WordNetCorpusReader:
    return wordnet.load(_wordnet_key() or None)


# --- bundled data (no WordNet) --------------------------------------------------------------------


@functools.cache
def _bundled_names() -> dict[str, str]:
    """wnid -> WordNet sense name for the 1000 classes: the first two columns of the bundled hierarchy."""
    text = resources.files("imagenet_prep").joinpath(f"data/{HIERARCHY_FILE}").read_text("utf-8")
    pairs = (line.split("\t", 2)[:2] for line in text.splitlines() if line and not line.startswith("#"))
    return {wnid: name for wnid, name in pairs if classes.is_imagenet1k(wnid)}


def _from_class(info: ClassInfo) -> Synset:
    return Synset(info.wnid, _bundled_names()[info.wnid], info.lemmas, info.gloss, info.index)


def _imagenet1k(wnid: str) -> ClassInfo | None:
    return classes.by_wnid(wnid) if classes.is_imagenet1k(wnid) else None


HIERARCHY_FILE = "imagenet1k_hierarchy.tsv"
_VERSION_PREFIX = "# WordNet version: "


@dataclass(frozen=True, eq=False)
class _Hierarchy:
    """The bundled ImageNet-1K hierarchy: every synset at or above a 1K class, with its is-a links."""

    version: str  # the WordNet it was made from
    nodes: dict[str, Synset]  # wnid -> record (a 1K class's record comes from classes, as everywhere)
    by_name: dict[str, str]  # canonical sense name ("dog.n.01") -> wnid
    parents: dict[str, tuple[str, ...]]  # hypernyms, then instance hypernyms, each by sense name
    children: dict[str, tuple[str, ...]]  # the bundled hyponyms, sorted by sense name (as the WordNet path)
    ancestors: dict[str, frozenset[str]]  # ancestors and the synset itself
    leaves: dict[str, tuple[str, ...]]  # the sorted 1K wnids at or below; every node has at least one
    depth: dict[str, int]  # longest path from the root, as nltk's Synset.max_depth()


def _parse_hierarchy(text: str, source: str = HIERARCHY_FILE) -> _Hierarchy:
    version = ""
    nodes: dict[str, Synset] = {}
    parents: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if line.startswith(_VERSION_PREFIX):
            version = line[len(_VERSION_PREFIX) :].strip()
        if not line or line.startswith("#"):
            continue
        wnid, name, lemmas, definition, ups = line.split("\t")
        info = _imagenet1k(wnid)
        if info is not None:  # lemmas and gloss live in imagenet1k_classes.tsv
            nodes[wnid] = _from_class(info)
        else:
            nodes[wnid] = Synset(wnid, name, tuple(lemmas.split("|")), definition, None)
        parents[wnid] = tuple(ups.split(",")) if ups else ()
    # The answers are only right for the WordNet that wnids are offsets of: refuse anything else.
    if version != wordnet.REQUIRED_VERSION:
        raise WordNetError(
            f"The bundled {source} was made from WordNet {version or '(unstated)'}, but wnids are WordNet "
            f"{wordnet.REQUIRED_VERSION} offsets: regenerate it with scripts/make_metadata.py and WordNet "
            f"{wordnet.REQUIRED_VERSION}, or reinstall imagenet-prep."
        )

    kids: dict[str, list[str]] = {wnid: [] for wnid in nodes}
    for wnid, up_wnids in parents.items():
        for up in up_wnids:
            kids[up].append(wnid)
    children = {wnid: tuple(sorted(found, key=lambda kid: nodes[kid].name)) for wnid, found in kids.items()}

    ancestors: dict[str, frozenset[str]] = {}
    depth: dict[str, int] = {}

    def visit(wnid: str) -> None:  # parents before children; the hierarchy is ~18 levels deep at most
        if wnid not in ancestors:
            for up in parents[wnid]:
                visit(up)
            ancestors[wnid] = frozenset({wnid}.union(*(ancestors[up] for up in parents[wnid])))
            depth[wnid] = 1 + max((depth[up] for up in parents[wnid]), default=-1)

    leaves: dict[str, list[str]] = {}
    for info in classes.all_classes():  # sorted, so every list comes out sorted
        visit(info.wnid)
        for wnid in ancestors[info.wnid]:
            leaves.setdefault(wnid, []).append(info.wnid)
    return _Hierarchy(
        version=version,
        nodes=nodes,
        by_name={synset.name: wnid for wnid, synset in nodes.items()},
        parents=parents,
        children=children,
        ancestors=ancestors,
        leaves={wnid: tuple(found) for wnid, found in leaves.items()},
        depth=depth,
    )


@functools.cache
def _hierarchy() -> _Hierarchy:
    """The bundled hierarchy, parsed once (a few milliseconds; no WordNet)."""
    text = resources.files("imagenet_prep").joinpath(f"data/{HIERARCHY_FILE}").read_text("utf-8")
    return _parse_hierarchy(text)


def _bundled(synset: Synset) -> bool:
    return synset.wnid in _hierarchy().nodes


def _bundled_query(text: str) -> Synset | None:
    """The synset a wnid or sense-name query means, when the bundled hierarchy decides it exactly as WordNet
    would; None when only WordNet can tell (other synsets, other sense names, plain words)."""
    hierarchy = _hierarchy()
    if _WNID_RE.match(text):
        return hierarchy.nodes.get(text.lower())
    sense = _SENSE_RE.match(text)
    # nltk's synset() lower-cases the name and reads the number as an int ("Dog.n.1" is dog.n.01); a
    # synset's canonical name always resolves to itself. Number 0 means the last sense to nltk: left to it.
    if sense and sense.group(2) == "n" and int(sense.group(3)) > 0:
        name = f"{sense.group(1).lower().replace(' ', '_')}.n.{int(sense.group(3)):02d}"
        wnid = hierarchy.by_name.get(name)
        return hierarchy.nodes[wnid] if wnid else None
    return None


# --- WordNet through nltk (for what the bundled hierarchy does not answer) ---------------------


def _wnid_of(synset: NltkSynset) -> str:
    return f"n{synset.offset():08d}"


def _sorted_by_name(found: list[NltkSynset]) -> list[NltkSynset]:
    return sorted(found, key=lambda s: s.name())


def _parents(synset: NltkSynset) -> list[NltkSynset]:
    # nltk (3.9+) keeps pointers in a set, so hypernyms() comes out in an order that changes with the hash
    # seed from run to run; sorting by sense name makes paths and the bundled file deterministic.
    return _sorted_by_name(synset.hypernyms()) + _sorted_by_name(synset.instance_hypernyms())


def _kids(synset: NltkSynset) -> list[NltkSynset]:
    return synset.hyponyms() + synset.instance_hyponyms()


def _record(synset: NltkSynset) -> Synset:
    wnid = _wnid_of(synset)
    info = _imagenet1k(wnid)
    if info is not None:
        return _from_class(info)
    return Synset(wnid, synset.name(), tuple(synset.lemma_names()), synset.definition(), None)


def _below() -> dict[str, tuple[str, ...]]:
    """Every synset at or above an ImageNet-1K class -> the sorted 1K wnids at or below it (1860 entries)."""
    return _hierarchy().leaves


# --- resolving queries ----------------------------------------------------------------------------


def nltk_synset(synset: Synset) -> NltkSynset:
    return wordnet_reader().synset_from_pos_and_offset("n", int(synset.wnid[1:]))


def _by_wnid(wnid: str) -> Synset:
    wnid = wnid.lower()
    info = _imagenet1k(wnid)
    if info is not None:
        return _from_class(info)
    reader = wordnet_reader()
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
        return _record(wordnet_reader().synset(text.replace(" ", "_")))
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
    return tuple(_record(s) for s in wordnet_reader().synsets(word.strip().replace(" ", "_"), pos="n"))


def _unknown_message(word: str) -> str:
    wanted = word.strip().lower().replace(" ", "_")
    # difflib over all 118k noun lemmas is slow; names starting with the same letter are a fair candidate set.
    candidates = {name for name in wordnet_reader().all_lemma_names(pos="n") if name[:1] == wanted[:1]}
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

    Wnids and sense names of the bundled hierarchy's synsets and unambiguous 1K names are answered from
    bundled data; anything else loads WordNet (once).
    Raises AmbiguousQueryError (an errors.AmbiguousSynsetError) or UnknownSynsetError (with close matches).
    """
    if isinstance(query, Synset):
        return query
    text = str(query).strip()
    if not text:
        raise UsageError(
            "An empty synset query: give a wnid (n02084071), a sense (dog.n.01) or a name (dog)."
        )
    found = _bundled_query(text)
    return found if found is not None else _get(text, _wordnet_key())


def senses(word: str) -> tuple[Synset, ...]:
    """Every WordNet noun sense of a word, in WordNet's order (loads WordNet)."""
    return _senses(word)


def lemmas(query: Query) -> tuple[str, ...]:
    return get(query).lemmas


def definition(query: Query) -> str:
    return get(query).definition


def hypernyms(query: Query) -> tuple[Synset, ...]:
    """The direct parents: hypernyms, then instance hypernyms, each by sense name."""
    synset = get(query)
    if _bundled(synset):
        hierarchy = _hierarchy()
        return tuple(hierarchy.nodes[up] for up in hierarchy.parents[synset.wnid])
    return tuple(_record(s) for s in _parents(nltk_synset(synset)))


def children(query: Query, *, imagenet_only: bool = False) -> tuple[Synset, ...]:
    """Direct hyponyms (and instance hyponyms) by name; ``imagenet_only``: those with 1K classes below."""
    synset = get(query)
    if imagenet_only:  # exactly the bundled children; a synset outside the hierarchy has none
        hierarchy = _hierarchy()
        return tuple(hierarchy.nodes[kid] for kid in hierarchy.children.get(synset.wnid, ()))
    return tuple(_record(s) for s in _sorted_by_name(_kids(nltk_synset(synset))))


def hypernym_paths(query: Query) -> tuple[tuple[Synset, ...], ...]:
    """Every is-a path from the root (entity.n.01) down to the synset, itself included last.

    Ordered by the sense names from the synset upward (its parents by name, then theirs ...), the same order
    on every run (nltk's own ``hypernym_paths`` order changes with the hash seed).
    """
    synset = get(query)
    if _bundled(synset):
        hierarchy = _hierarchy()
        return tuple(
            tuple(hierarchy.nodes[w] for w in path)
            for path in _paths(synset.wnid, hierarchy.parents.__getitem__)
        )
    return tuple(tuple(_record(s) for s in path) for path in _paths(nltk_synset(synset), _parents))


def _paths(node: _T, parents_of: Callable[[_T], Sequence[_T]]) -> list[tuple[_T, ...]]:
    """Root-to-node paths, walked as nltk's hypernym_paths() does: parent by parent (in ``parents_of``'s
    order, by name), then each parent's paths."""
    ups = parents_of(node)
    return [path + (node,) for up in ups for path in _paths(up, parents_of)] if ups else [(node,)]


def _ancestors_or_self(synset: NltkSynset) -> set[NltkSynset]:
    return {synset, *synset.closure(_parents)}


def is_a(a: Query, b: Query) -> bool:
    """True when ``a`` is ``b`` or a kind (or instance) of it: is_a("tabby", "cat.n.01")."""
    child, target = get(a), get(b)
    if _bundled(child):  # every ancestor of a bundled synset is bundled
        return target.wnid in _hierarchy().ancestors[child.wnid]
    return any(_wnid_of(s) == target.wnid for s in _ancestors_or_self(nltk_synset(child)))


def lowest_common_ancestor(a: Query, b: Query) -> Synset:
    """The deepest synset that both are (longest path from the root; ties go to the smaller wnid)."""
    first, second = get(a), get(b)
    if _bundled(first) and _bundled(second):
        hierarchy = _hierarchy()
        common = hierarchy.ancestors[first.wnid] & hierarchy.ancestors[second.wnid]
        best = max(common, key=lambda wnid: (hierarchy.depth[wnid], -int(wnid[1:])))
        return hierarchy.nodes[best]
    shared = _ancestors_or_self(nltk_synset(first)) & _ancestors_or_self(nltk_synset(second))
    # Nouns all share entity.n.01, so common is never empty.
    return _record(max(shared, key=lambda s: (s.max_depth(), -s.offset())))


def imagenet_leaves(query: Query) -> tuple[str, ...]:
    """Sorted wnids of the ImageNet-1K classes at or below a synset (sorted class indices, same order)."""
    synset = get(query)
    if synset.is_imagenet1k:  # no 1K class lies below another one, so a class is its only leaf
        return (synset.wnid,)
    return _below().get(synset.wnid, ())


def tree(query: Query, depth: int | None = None) -> SynsetTree:
    """The ImageNet-1K part of the hierarchy below ``query``, ``depth`` levels deep (None: all)."""
    hierarchy = _hierarchy()

    def build(wnid: str, level: int) -> SynsetTree:
        kids: tuple[SynsetTree, ...] = ()
        if depth is None or level < depth:
            kids = tuple(build(kid, level + 1) for kid in hierarchy.children[wnid])
        return SynsetTree(hierarchy.nodes[wnid], len(hierarchy.leaves[wnid]), kids)

    synset = get(query)
    # Outside the hierarchy no branch leads to a 1K class (else the synset would be in it).
    return build(synset.wnid, 0) if _bundled(synset) else SynsetTree(synset, 0, ())


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
    wn = wordnet_reader()
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
