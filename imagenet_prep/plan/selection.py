"""Which classes a build holds: ``--subset`` / ``--classes`` / ``--under`` (or every class the source holds)
within the label space (``--label-space``, the source's own, or the 1K), with the warnings a choice deserves.

WordNet (for ``--under`` beyond the bundled 1K hierarchy) is the caller's: ``config.wordnet`` holds for these
lookups only (``synsets.using_wordnet``); nothing process-wide is set here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from ..config import BuildConfig
from ..errors import InputError, UsageError
from ..records import ClassSet
from ..sources import Source
from ..taxonomy import classes


def class_space(source: Source) -> str:
    """Which classes a source holds: ``imagenet-1k`` (the default) or ``imagenet-21k`` (``SourceBase.class_space``)."""
    return type(source).class_space


def _resolve_21k(tokens: Sequence[str]) -> tuple[str, ...]:
    """--classes over 21K: wnids as given; names through the 1K names, then the bundled 21K display names."""
    from ..taxonomy.imagenet21k import bundled_names

    by_name: dict[str, list[str]] = {}
    for wnid, name in bundled_names().items():
        by_name.setdefault(name.casefold(), []).append(wnid)
    wnids: set[str] = set()
    for raw in tokens:
        token = raw.strip()
        if not token:
            continue
        if classes.WNID_RE.match(token):
            wnids.add(token)
        elif token.casefold() in by_name and len(by_name[token.casefold()]) == 1:
            wnids.add(by_name[token.casefold()][0])
        else:
            wnids.update(classes.resolve([token]))  # the 1K rules, with their error messages
    return tuple(sorted(wnids))


def select_classes(
    config: BuildConfig, available: Iterable[str], space: str = "imagenet-1k"
) -> tuple[str, ...]:
    """The sorted wnids to build, from --subset / --classes / --under, or every class the archives hold (the
    1K classes of a 1K source; every class of a 21K source)."""
    available = set(available)
    wide = space != "imagenet-1k"
    if config.subset:
        wnids = classes.subset_wnids(config.subset)
    elif config.classes:
        if len(config.classes) == 1 and Path(config.classes[0]).is_file():
            listed = classes.read_class_file(Path(config.classes[0])) if not wide else None
            if listed is None:
                text = Path(config.classes[0]).read_text(encoding="utf-8")
                listed = _resolve_21k([line.split("#")[0] for line in text.splitlines()])
            wnids = listed
        elif len(config.classes) == 1 and _looks_like_a_path(config.classes[0]):
            raise InputError(
                f"The classes file {config.classes[0]} does not exist. Give an existing file of wnids or names "
                "(one per line), or the classes themselves: --classes n01440764,n02102040."
            )
        else:
            wnids = _resolve_21k(config.classes) if wide else classes.resolve(config.classes)
    elif config.under:
        with wordnet_of(config):
            wnids = _classes_under(config.under, available, wide)
    else:
        return tuple(sorted(w for w in available if wide or classes.is_imagenet1k(w)))
    missing = sorted(set(wnids) - available)
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise UsageError(
            f"{len(missing)} of the {len(wnids)} requested classes are not in the source archives ({shown}); "
            f"the archives hold {len(available)} classes."
        )
    return tuple(sorted(wnids))


def _classes_under(under: str, available: set[str], wide: bool) -> tuple[str, ...]:
    """--under: the classes at or below a synset that the source holds (1K: through the bundled hierarchy or
    WordNet; 21K: WordNet)."""
    from ..taxonomy import synsets

    if wide:
        from ..taxonomy.imagenet21k import leaves_under_21k

        wnids = leaves_under_21k(under, sorted(available))
        if not wnids:
            raise UsageError(f"None of the classes the source holds is under '{under}'.")
        return tuple(sorted(wnids))
    leaves = tuple(synsets.imagenet_leaves(under))
    if not leaves:
        raise UsageError(
            f"No ImageNet-1K class lies under '{under}': it is not an ancestor of any of the 1000 "
            "classes. Choose a synset that is (see `imagenet-prep synsets tree entity.n.01 --depth 3`)."
        )
    # A synset names a family, not a list: build the members the archives hold (warned by make_plan).
    wnids = tuple(wnid for wnid in leaves if wnid in available)
    if not wnids:
        raise UsageError(
            f"None of the {len(leaves)} ImageNet-1K classes under '{under}' is in the source archives."
        )
    return wnids


def named_class_set(name: str) -> ClassSet:
    """The class set of ``--label-space NAME``: ``imagenet-1k`` (the 1000 sorted wnids) or a 21K label space."""
    if name.strip().lower() in ("imagenet-1k", "imagenet1k", "1k"):
        wnids = tuple(sorted(info.wnid for info in classes.all_classes()))
        return ClassSet("imagenet-1k", wnids, tuple(classes.by_wnid(w).name for w in wnids))
    from ..taxonomy.imagenet21k import label_space_class_set

    return label_space_class_set(name)


def _looks_like_a_path(entry: str) -> bool:
    """A single --classes entry meant as a file (``./x.txt``, ``lists/dogs``), not a wnid or a class name."""
    return (
        "/" in entry
        or "\\" in entry
        or Path(entry).suffix.lower() in (".txt", ".csv", ".lst", ".list", ".tsv")
    )


def choose_classes(
    config: BuildConfig, source: Source, available: Iterable[str], first: str
) -> tuple[tuple[str, ...], ClassSet | None, list[str]]:
    """The classes to build out of ``available`` (those the source holds in its ``first`` split), the label
    space they are labelled in when one is named (``--label-space`` or the source's; None: the built classes
    themselves), and the warnings: classes of the space left unbuilt, classes of the source outside the 1K,
    classes under ``--under`` the source lacks."""
    available = set(available)
    space = class_space(source)
    warnings: list[str] = []
    # A source may name its own label space (an evaluation set of the 1K: labels stay 1K indices).
    space_name = config.label_space or type(source).label_space
    full_set = named_class_set(space_name) if space_name else None
    wnids = select_classes(config, available, space)
    if full_set is not None:
        in_space = set(full_set.wnids)
        if not (config.subset or config.classes or config.under):
            wnids = tuple(w for w in wnids if w in in_space)
        outside = [w for w in wnids if w not in in_space]
        if outside:
            raise UsageError(
                f"{len(outside)} chosen classes are not in the label space {full_set.name} "
                f"({', '.join(outside[:5])}): choose classes inside it, or another --label-space."
            )
        unused = len(full_set) - len(wnids)
        if unused:
            warnings.append(
                f"{unused} of the {len(full_set)} classes of the label space {full_set.name} are not built; "
                "their labels stay unused."
            )
    else:
        outside = (
            sorted(w for w in available if not classes.is_imagenet1k(w)) if space == "imagenet-1k" else []
        )
        if outside:  # not built (the label space is the 1K), but never ignored without a word
            shown = ", ".join(outside[:10]) + (" ..." if len(outside) > 10 else "")
            warnings.append(
                f"{first}: {len(outside)} class(es) in the source are not ImageNet-1K classes and are not built "
                f"({shown})."
            )
    if config.under and space == "imagenet-1k":
        from ..taxonomy import synsets

        with wordnet_of(config):
            absent = len(synsets.imagenet_leaves(config.under)) - len(wnids)
        if absent:
            warnings.append(
                f"{absent} of the ImageNet-1K classes under '{config.under}' are not in the source archives; "
                f"building the {len(wnids)} that are."
            )
    return wnids, full_set, warnings


def wordnet_of(config: BuildConfig) -> AbstractContextManager[None]:
    """The build's WordNet for the lookups inside the block: ``--wordnet`` serves ``--under`` (and the names of
    the classes it finds); without ``--under`` the process's choice stands. Nothing outlives the block."""
    if not (config.under and config.wordnet):
        return nullcontext()  # and no taxonomy module imported (a build's fixed cost)
    from ..taxonomy import synsets

    return synsets.using_wordnet(config.wordnet)


def label_space_of(
    full_set: ClassSet | None, wnids: tuple[str, ...], space: str
) -> tuple[ClassSet, tuple[str, ...] | None]:
    """The class set labels are positions in, and the classes built when fewer than it (None: all of it)."""
    if full_set is not None:
        return full_set, (wnids if wnids != full_set.wnids else None)
    if space == "imagenet-1k":
        return ClassSet("imagenet-1k", wnids, tuple(classes.by_wnid(w).name for w in wnids)), None
    from ..taxonomy.imagenet21k import class_set_21k

    return class_set_21k(wnids, name=space), None
