"""Find, prepare and load WordNet 3.0 for nltk, online or offline.

ImageNet wnids are WordNet **3.0** noun offsets, so any other version would silently give wrong answers: it is
refused. Where WordNet comes from, first match wins:

1. an explicit dict folder (``--wordnet DIR`` or ``IMAGENET_PREP_WORDNET``): used alone, no fallback;
2. a copy prepared earlier in the cache (``<cache>/nltk_data/corpora/wordnet``);
3. nltk's own data folders (``nltk.download('wordnet')`` puts WordNet 3.0 there);
4. a system WordNet 3.0 dict folder (Debian's ``wordnet-base`` + ``wordnet-sense-index``: /usr/share/wordnet).

A plain dict folder is prepared once into the cache, because nltk (3.9+) only reads corpora under its data roots
and needs a ``lexnames`` file that Debian does not ship (its 45 lines are fixed by lexnames(5WN)).
Loading takes seconds, so callers load lazily and once (:func:`load`).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import WordNetError
from ..io.paths import cache_dir

if TYPE_CHECKING:  # pragma: no cover
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

REQUIRED_VERSION = "3.0"
ENV_WORDNET_DIR = "IMAGENET_PREP_WORDNET"
SYSTEM_DICT_DIRS = (
    Path("/usr/share/wordnet"),
    Path("/usr/local/share/wordnet"),
    Path("/usr/share/wordnet/dict"),
)

# The files nltk's WordNetCorpusReader opens (index.sense for sense keys; lexnames is written by us if absent).
_DICT_FILES = (
    "adj.exc",
    "adv.exc",
    "noun.exc",
    "verb.exc",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "index.sense",
)
_REQUIRED_FILES = ("data.noun", "index.noun", "data.adj", "index.sense")

# lexnames(5WN): file number, lexicographer file name, syntactic category.
_LEXNAMES = [
    "adj.all 3",
    "adj.pert 3",
    "adv.all 4",
    "noun.Tops 1",
    "noun.act 1",
    "noun.animal 1",
    "noun.artifact 1",
    "noun.attribute 1",
    "noun.body 1",
    "noun.cognition 1",
    "noun.communication 1",
    "noun.event 1",
    "noun.feeling 1",
    "noun.food 1",
    "noun.group 1",
    "noun.location 1",
    "noun.motive 1",
    "noun.object 1",
    "noun.person 1",
    "noun.phenomenon 1",
    "noun.plant 1",
    "noun.possession 1",
    "noun.process 1",
    "noun.quantity 1",
    "noun.relation 1",
    "noun.shape 1",
    "noun.state 1",
    "noun.substance 1",
    "noun.time 1",
    "verb.body 2",
    "verb.change 2",
    "verb.cognition 2",
    "verb.communication 2",
    "verb.competition 2",
    "verb.consumption 2",
    "verb.contact 2",
    "verb.creation 2",
    "verb.emotion 2",
    "verb.motion 2",
    "verb.perception 2",
    "verb.possession 2",
    "verb.social 2",
    "verb.stative 2",
    "verb.weather 2",
    "adj.ppl 3",
]

_INSTALL_HINT = (
    "Install WordNet 3.0: `python -m nltk.downloader wordnet` where the internet is reachable, or offline "
    "`apt-get install wordnet-base wordnet-sense-index` then `imagenet-prep wordnet install --from /usr/share/wordnet`"
    f" (or set {ENV_WORDNET_DIR}=DIR to a WordNet 3.0 dict folder)."
)
_VERSION_RE = re.compile(rb"WordNet (\d+(?:\.\d+)?) Copyright")


@dataclass(frozen=True)
class WordNetLocation:
    """Where a usable WordNet 3.0 was found: the nltk data root that holds ``corpora/wordnet``."""

    nltk_root: Path
    source: str  # "explicit", "cache", "nltk", "system"
    origin: Path  # the folder it came from (dict dir, or the nltk corpus folder)
    version: str

    def to_dict(self) -> dict[str, str]:
        """The JSON document of ``wordnet install --json`` (also ``status``'s ``location``)."""
        return {
            "version": self.version,
            "source": self.source,
            "origin": str(self.origin),
            "nltk_root": str(self.nltk_root),
        }


def _prepared_root() -> Path:
    return cache_dir() / "nltk_data"


def dict_version(dict_dir: Path) -> str | None:
    """Read the WordNet version from a dict folder's data file header (cheap: first few KB), None if unknown."""
    for name in ("data.adj", "data.noun"):
        path = dict_dir / name
        if path.is_file():
            with path.open("rb") as handle:
                match = _VERSION_RE.search(handle.read(8192))
            if match:
                return match.group(1).decode()
    return None


def _check_dict_dir(dict_dir: Path) -> str:
    if not dict_dir.is_dir():
        raise WordNetError(f"WordNet folder {dict_dir} does not exist. {_INSTALL_HINT}")
    missing = [name for name in _REQUIRED_FILES if not (dict_dir / name).is_file()]
    if missing:
        raise WordNetError(
            f"{dict_dir} is not a complete WordNet dict folder (missing {', '.join(missing)}). {_INSTALL_HINT}"
        )
    version = dict_version(dict_dir)
    if version != REQUIRED_VERSION:
        raise WordNetError(
            f"{dict_dir} holds WordNet {version or 'of unknown version'}, but ImageNet wnids are WordNet "
            f"{REQUIRED_VERSION} offsets. {_INSTALL_HINT}"
        )
    return version


def prepare(dict_dir: Path) -> WordNetLocation:
    """Copy a WordNet 3.0 dict folder into the cache in the layout nltk reads (atomic; done once)."""
    dict_dir = Path(dict_dir).expanduser().resolve()
    version = _check_dict_dir(dict_dir)
    root = _prepared_root()
    target = root / "corpora" / "wordnet"
    if _check_prepared(target):
        return WordNetLocation(root, "cache", dict_dir, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        for name in _DICT_FILES:
            if (dict_dir / name).is_file():
                shutil.copyfile(dict_dir / name, staging / name)
        lexnames = dict_dir / "lexnames"
        if lexnames.is_file():
            shutil.copyfile(lexnames, staging / "lexnames")
        else:
            (staging / "lexnames").write_text(
                "".join(f"{i:02d}\t{entry.replace(' ', chr(9))}\n" for i, entry in enumerate(_LEXNAMES))
            )
        (staging / "SOURCE").write_text(f"{dict_dir}\n")
        # Another process may have finished first: keep its copy (it may be reading it); only a broken
        # leftover is replaced.
        if target.exists() and not _check_prepared(target):
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:
            if not _check_prepared(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return WordNetLocation(root, "cache", dict_dir, version)


def _check_prepared(corpus_dir: Path) -> bool:
    return (
        corpus_dir.is_dir() and (corpus_dir / "lexnames").is_file() and dict_version(corpus_dir) is not None
    )


def _nltk_corpus_dir() -> Path | None:
    """WordNet in nltk's own data folders (a plain folder; nltk.download's zip is unpacked by nltk on use)."""
    import nltk.data

    for root in [str(_prepared_root()), *nltk.data.path]:
        for candidate in (Path(root) / "corpora" / "wordnet",):
            if candidate.is_dir() and (candidate / "data.noun").is_file():
                return candidate
        if (Path(root) / "corpora" / "wordnet.zip").is_file():
            return Path(root) / "corpora" / "wordnet.zip"
    return None


def _found(dict_dir: Path, source: str, prepare_it: bool) -> WordNetLocation:
    """A dict folder: prepared into the cache (``prepare_it``), or only checked (a report changes nothing)."""
    if prepare_it:
        return prepare(dict_dir)
    dict_dir = Path(dict_dir).expanduser().resolve()
    version = _check_dict_dir(dict_dir)
    if _check_prepared(_prepared_root() / "corpora" / "wordnet"):
        return WordNetLocation(_prepared_root(), "cache", dict_dir, version)
    return WordNetLocation(_prepared_root(), source, dict_dir, version)


def locate(explicit: Path | str | None = None, prepare_missing: bool = True) -> WordNetLocation:
    """Find a WordNet 3.0 usable by nltk, preparing a dict folder into the cache when needed (unless
    ``prepare_missing`` is False: then a dict folder is only checked, and nothing is written).

    Raises WordNetError (one line, with how to install) when none is found or the version is wrong.
    """
    explicit = explicit or os.environ.get(ENV_WORDNET_DIR) or None
    if explicit:
        return _found(Path(explicit), "explicit", prepare_missing)
    prepared = _prepared_root() / "corpora" / "wordnet"
    if _check_prepared(prepared):
        version = dict_version(prepared) or ""
        if version != REQUIRED_VERSION:
            raise WordNetError(f"The prepared WordNet in {prepared} is {version}, not 3.0. {_INSTALL_HINT}")
        return WordNetLocation(_prepared_root(), "cache", prepared, version)
    nltk_dir = _nltk_corpus_dir()
    if nltk_dir is not None:
        # nltk's download is WordNet 3.0; the loaded reader's get_version() is checked again in load().
        return WordNetLocation(nltk_dir.parent.parent, "nltk", nltk_dir, dict_version(nltk_dir) or "3.0")
    for system_dir in SYSTEM_DICT_DIRS:
        if (system_dir / "data.noun").is_file():
            return _found(system_dir, "system", prepare_missing)
    raise WordNetError(f"WordNet 3.0 was not found. {_INSTALL_HINT}")


@functools.cache
def _load(explicit: str | None) -> WordNetCorpusReader:
    location = locate(explicit)
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root = str(location.nltk_root)
    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)
    try:
        pointer = (
            nltk.data.find("corpora/wordnet.zip/wordnet/")
            if location.origin.suffix == ".zip"
            else nltk.data.find("corpora/wordnet")
        )
        with warnings.catch_warnings():
            # Without Open Multilingual WordNet nltk warns once; English lookups are all this tool needs.
            warnings.simplefilter("ignore", UserWarning)
            reader = WordNetCorpusReader(pointer, None)
    except (LookupError, OSError) as exc:
        raise WordNetError(f"nltk could not load WordNet from {root}: {exc}. {_INSTALL_HINT}") from exc
    version = reader.get_version()
    if version != REQUIRED_VERSION:
        raise WordNetError(
            f"The WordNet in {location.origin} is version {version}, not {REQUIRED_VERSION}. {_INSTALL_HINT}"
        )
    return reader


def load(explicit: Path | str | None = None) -> WordNetCorpusReader:
    """The WordNet 3.0 reader, loaded once per process (a few seconds the first time)."""
    chosen = explicit or os.environ.get(ENV_WORDNET_DIR) or None
    return _load(str(chosen) if chosen else None)


@dataclass(frozen=True)
class WordNetStatus:
    ok: bool
    message: str
    location: WordNetLocation | None

    def to_dict(self) -> dict[str, object]:
        """The JSON document of ``wordnet status --json``."""
        return {
            "ok": self.ok,
            "message": self.message,
            "location": None if self.location is None else self.location.to_dict(),
        }


def status(explicit: Path | str | None = None) -> WordNetStatus:
    """Report where WordNet would be loaded from, without loading it and without writing anything (preparing
    a dict folder into the cache is :func:`install`'s job, or happens on first use)."""
    try:
        location = locate(explicit, prepare_missing=False)
    except WordNetError as exc:
        return WordNetStatus(False, str(exc), None)
    if location.source in ("explicit", "system"):
        return WordNetStatus(
            True,
            f"WordNet {location.version} ({location.source}) in the dict folder {location.origin}; not prepared "
            f"for nltk yet: `imagenet-prep wordnet install --from {location.origin}` does it (else the first "
            "query does)",
            location,
        )
    return WordNetStatus(
        True,
        f"WordNet {location.version} ({location.source}) at {location.nltk_root} from {location.origin}",
        location,
    )


def install(from_dir: Path | str | None = None) -> WordNetLocation:
    """Prepare WordNet 3.0 into the cache from a dict folder, or download it with nltk when none is given."""
    if from_dir is not None:
        return prepare(Path(from_dir))
    for system_dir in SYSTEM_DICT_DIRS:
        if (system_dir / "data.noun").is_file():
            return prepare(system_dir)
    import nltk

    root = _prepared_root()
    root.mkdir(parents=True, exist_ok=True)
    if not nltk.download("wordnet", download_dir=str(root), quiet=True, raise_on_error=False):
        raise WordNetError(f"Downloading WordNet with nltk failed (no network?). {_INSTALL_HINT}")
    return locate()
