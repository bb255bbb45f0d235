"""Plan a build: which classes, which images, grouped into work units. Source-agnostic: the source (see
sources/) answers which classes and files it holds and how its samples group into units; the writer (see
outputs/) may regroup them (a shard writer shuffles); the plan chooses.

Work units are small frozen picklable records (records.WorkUnit) identified by a unit id unique across splits.
Each sample carries where its bytes are, so a worker reads its own bytes: pixels never travel through the pool.

Per-class sampling (``--train-per-class`` / ``--val-per-class``): the class's files are sorted by their canonical
key (numerically), and N of them are drawn with ``random.Random(f"{seed}:{split}:{wnid}").sample``, then sorted again.
Each class's choice depends only on the seed, split, class and its file list: the same seed gives the same files,
and adding classes to a build does not change the files chosen for the others.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import BuildConfig
from .errors import InputError, UsageError
from .outputs.base import Writer
from .records import ClassSet, PackedFiles, Sample, SampleBlock, SampleTable, SourceFile, WorkUnit
from .sources import Source, open_source
from .sources.base import Runner
from .taxonomy import classes

_NUMBER_RE = re.compile(r"(\d+)")


_TWO_NUMBERS_RE = re.compile(r"(\D*)(\d+)(\D+)(\d+)(\D*)")  # every ILSVRC2012 name: n01440764_10026.JPEG


def natural_key(name: str) -> tuple:
    """n01440764_2.JPEG before n01440764_10.JPEG."""
    two = _TWO_NUMBERS_RE.fullmatch(name)  # the common shape, 30% faster than the general split
    if two is not None:
        text1, number1, text2, number2, text3 = two.groups()
        return (text1, int(number1), text2, int(number2), text3)
    # split() with a capturing group alternates text and digit runs: the odd items are the numbers.
    parts: list = _NUMBER_RE.split(name)
    parts[1::2] = map(int, parts[1::2])
    return tuple(parts)


# Every name one fixed text, a number, one fixed text (n01440764_10026.JPEG): the natural order is the number's.
_SHAPE_RE = re.compile(r"(.*\D|)([0-9]+)(\D*)", re.DOTALL)


def _shared_shape_numbers(names: Sequence[str]) -> list[int] | None:
    """Each name's number when all are ``head + digits + tail`` with the head and tail of the first (the head
    is empty or ends in a non-digit, the tail holds no digit, the digits are ASCII): natural_key then
    orders them by that number alone. None otherwise."""
    shape = _SHAPE_RE.fullmatch(names[0])
    if shape is None:
        return None
    head, _, tail = shape.groups()
    count = len(names)
    lines = "\n" + "\n".join(names) + "\n"
    if lines.count("\n") != count + 1:  # a name holding "\n"
        return None
    if (head and lines.count("\n" + head) != count) or (tail and lines.count(tail + "\n") != count):
        return None
    # Every line starts with the head and ends with the tail: what is left of each must be ASCII digits.
    digits = lines.replace("\n" + head, "\n") if head else lines
    digits = (digits.replace(tail + "\n", "\n") if tail else digits)[1:-1]
    if not digits.isascii() or not digits.replace("\n", "").isdigit():
        return None
    if "\n\n" in digits or digits.startswith("\n") or digits.endswith("\n"):
        return None  # an empty number
    return list(map(int, digits.split("\n")))


def natural_order(names: Sequence[str]) -> list[int]:
    """The positions of ``names`` in ``sorted(names, key=natural_key)`` order (stable: equal keys keep their
    order). Names of one shape (a class's ILSVRC2012 names) sort as integers, without a key tuple each."""
    count = len(names)
    if count < 2:
        return list(range(count))
    numbers = _shared_shape_numbers(names)
    if numbers is not None:
        return sorted(range(count), key=numbers.__getitem__)
    keys = list(map(natural_key, names))
    return sorted(range(count), key=keys.__getitem__)


def choose_positions(keys: Sequence[str], count: int | None, seed: int, split: str, wnid: str) -> list[int]:
    """The positions in ``keys`` of :func:`choose`'s result, in its order."""
    ordered = natural_order(keys)
    if count is None or count >= len(ordered):
        return ordered
    rng = random.Random(f"{seed}:{split}:{wnid}")
    picked = rng.sample(ordered, count)  # the same draws as from the sorted keys: sample() picks by position
    return [picked[i] for i in natural_order([keys[p] for p in picked])]


def choose(names: Iterable[str], count: int | None, seed: int, split: str, wnid: str) -> list[str]:
    """The seeded per-class choice documented in the module docstring."""
    listed = list(names)
    return [listed[p] for p in choose_positions(listed, count, seed, split, wnid)]


def class_space(source: Source) -> str:
    """Which classes a source holds: ``imagenet-1k`` (the default) or ``imagenet-21k`` (``SourceBase.class_space``)."""
    return type(source).class_space


def _resolve_21k(tokens: Sequence[str]) -> tuple[str, ...]:
    """--classes over 21K: wnids as given; names through the 1K names, then the bundled 21K display names."""
    from .taxonomy.imagenet21k import bundled_names

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
        from .taxonomy import synsets

        if config.wordnet:
            synsets.use_wordnet(config.wordnet)
        if wide:
            from .taxonomy.imagenet21k import leaves_under_21k

            wnids = leaves_under_21k(config.under, sorted(available))
            if not wnids:
                raise UsageError(f"None of the classes the source holds is under '{config.under}'.")
            return tuple(sorted(wnids))
        leaves = tuple(synsets.imagenet_leaves(config.under))
        if not leaves:
            raise UsageError(
                f"No ImageNet-1K class lies under '{config.under}': it is not an ancestor of any of the 1000 "
                "classes. Choose a synset that is (see `imagenet-prep synsets tree entity.n.01 --depth 3`)."
            )
        # A synset names a family, not a list: build the members the archives hold (warned by make_plan).
        wnids = tuple(wnid for wnid in leaves if wnid in available)
        if not wnids:
            raise UsageError(
                f"None of the {len(leaves)} ImageNet-1K classes under '{config.under}' is in the source archives."
            )
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


def named_class_set(name: str) -> ClassSet:
    """The class set of ``--label-space NAME``: ``imagenet-1k`` (the 1000 sorted wnids) or a 21K label space."""
    if name.strip().lower() in ("imagenet-1k", "imagenet1k", "1k"):
        wnids = tuple(sorted(info.wnid for info in classes.all_classes()))
        return ClassSet("imagenet-1k", wnids, tuple(classes.by_wnid(w).name for w in wnids))
    from .taxonomy.imagenet21k import label_space_class_set

    return label_space_class_set(name)


def _looks_like_a_path(entry: str) -> bool:
    """A single --classes entry meant as a file (``./x.txt``, ``lists/dogs``), not a wnid or a class name."""
    return (
        "/" in entry
        or "\\" in entry
        or Path(entry).suffix.lower() in (".txt", ".csv", ".lst", ".list", ".tsv")
    )


@dataclass(frozen=True)
class BuildPlan:
    class_set: ClassSet  # the label space: labels are positions in it (label maps list it)
    units: tuple[WorkUnit, ...]
    source: Source
    counts: dict[str, dict[str, int]]  # split -> wnid -> images planned
    available: dict[str, int]  # split -> images the source holds for the chosen classes
    warnings: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()  # (member label, reason) refused by the reader or planner
    index_bytes: int = 0  # source bytes read to index (0 from a warm cache)
    splits: tuple[str, ...] = field(default=())
    built: tuple[str, ...] | None = None  # the classes built, when fewer than the label space (sorted)
    boxes: bool = False  # the writer writes boxes.csv
    record: dict[str, Any] = field(default_factory=dict)  # extra sections for build.json

    @property
    def wnids(self) -> tuple[str, ...]:
        """The classes built (their folders); the label space's classes unless it is wider."""
        return self.class_set.wnids if self.built is None else self.built


def _unique_keys(
    source: Source, split: str, wnid: str, files: Sequence[SourceFile], refused: list[tuple[str, str]]
) -> dict[str, SourceFile]:
    """key -> file, refusing a file whose output would be another's: keys that differ only in letter case
    (``x.JPEG`` / ``x.png`` / ``X.JPEG``) map to one output path on some disks."""
    kept: dict[str, SourceFile] = {}
    owner: dict[str, str] = {}
    for file in sorted(files, key=lambda f: natural_key(f.name)):
        folded = file.key.casefold()
        if folded in owner:
            refused.append((source.member_label(split, wnid, file.name), _clash_reason(owner[folded])))
            continue
        owner[folded] = file.name
        kept[file.key] = file
    return kept


def _within_cap(
    source: Source,
    split: str,
    wnid: str,
    files: Sequence[SourceFile],
    cap: int,
    refused: list[tuple[str, str]],
) -> list[SourceFile]:
    """The files not above the member-size cap; the others are refused (recorded), never read."""
    kept = []
    for file in files:
        # A zip member (or a Parquet image alone in its row group): the size it declares once read.
        size = max(file.location.size, file.location.raw_size or 0)
        if size > cap:
            refused.append((source.member_label(split, wnid, file.name), _cap_reason(size, cap)))
        else:
            kept.append(file)
    return kept


def _cap_reason(size: int, cap: int) -> str:
    return (
        f"{size:,} bytes, above the member-size cap of {cap:,} bytes "
        "(no real ImageNet image is near it; raise it with --max-member-size)"
    )


def _clash_reason(owner: str) -> str:
    return f"its output name clashes with {owner} (names differ only in extension or case)"


def _kept_files(
    source: Source,
    split: str,
    wnid: str,
    files: Sequence[SourceFile],
    cap: int,
    refused: list[tuple[str, str]],
) -> dict[str, SourceFile] | PackedFiles:
    """A class's files without those above the cap and those whose output would be another's: key -> file
    (by :func:`_within_cap` and :func:`_unique_keys`), or for PackedFiles the same files and refusals as
    PackedFiles in the same order (natural order of the names), without a record per file."""
    if not isinstance(files, PackedFiles):
        return _unique_keys(
            source, split, wnid, _within_cap(source, split, wnid, files, cap, refused), refused
        )
    names = files.names()
    sizes = files.sizes
    above = [row for row, size in enumerate(sizes) if size > cap] if max(sizes, default=0) > cap else []
    for row in above:
        refused.append(
            (source.member_label(split, wnid, names[row]), _cap_reason(int(files.sizes[row]), cap))
        )
    rows = [row for row, size in enumerate(sizes) if size <= cap] if above else list(range(len(names)))
    kept_names = [names[row] for row in rows] if above else names
    ordered = [rows[i] for i in natural_order(kept_names)]
    folded = files.folded_keys()
    kept_folded = [folded[row] for row in rows] if above else folded
    if len(set(kept_folded)) != len(kept_folded):  # the first in natural order keeps its key (_unique_keys)
        owner: dict[str, str] = {}
        unique = []
        for row in ordered:
            fold = folded[row]
            if fold in owner:
                refused.append((source.member_label(split, wnid, names[row]), _clash_reason(owner[fold])))
                continue
            owner[fold] = names[row]
            unique.append(row)
        ordered = unique
    return files.take(ordered)


def _as_records(files: dict[str, SourceFile] | PackedFiles) -> dict[str, SourceFile]:
    return {file.key: file for file in files} if isinstance(files, PackedFiles) else files


def _split_rule(config: BuildConfig, source: Source, offered: Sequence[str]) -> tuple[str, int, int] | None:
    """How val is derived from train for a source without a val split: ("first", N, min_images) for a recipe
    (the first N names in C-collation order), ("holdout", N, min_images) for --holdout; None otherwise."""
    from . import recipes_21k

    if config.holdout is not None and "val" in offered:
        raise UsageError(
            f"--holdout makes a val split for sources without one, but the {type(source).layout} source has "
            "its own val split: drop --holdout (or build --splits train)."
        )
    if config.recipe:
        chosen = recipes_21k.recipe(config.recipe)
        count = chosen.val_per_class if config.holdout is None else config.holdout
        return ("first", count, chosen.min_images if config.min_images is None else config.min_images)
    if config.holdout is not None and "val" not in offered:
        return ("holdout", config.holdout, -1 if config.min_images is None else config.min_images)
    return None


def _derive_val(
    rule: tuple[str, int, int], seed: int, wnid: str, train: dict[str, SourceFile]
) -> tuple[dict[str, SourceFile], dict[str, SourceFile]]:
    """(train, val) of one class by the rule (key -> file each)."""
    from . import recipes_21k

    kind, count, _ = rule
    by_name = {file.name: key for key, file in train.items()}
    if kind == "first":
        kept, held = recipes_21k.miil_split(by_name, count)
    else:
        kept, held = recipes_21k.holdout_split(by_name, count, seed, wnid)
    return ({by_name[n]: train[by_name[n]] for n in kept}, {by_name[n]: train[by_name[n]] for n in held})


def make_plan(
    config: BuildConfig,
    runner: Runner | None = None,
    cache_dir: Path | None = None,
    writer: Writer | None = None,
) -> BuildPlan:
    """Index the source (cached) and decide every image's split, class, label and unit.

    Units follow the source's grouping (its cheapest reads) unless the ``writer`` regroups them (shards).
    A source without a val split gets one from ``--holdout`` or a recipe (taken out of train); a recipe or
    ``--min-images`` keeps only the classes with more images than the threshold. The plan holds the source
    open (``BuildPlan.source``): its caller closes it (``source.close()``) when the build ends.
    """
    source = open_source(config.source, layout=config.layout, cache_dir=cache_dir)
    offered = source.splits()
    rule = _split_rule(config, source, offered)
    read_splits = [s for s in config.splits if not (s == "val" and rule is not None and "val" not in offered)]
    if rule is not None and "train" not in read_splits:
        read_splits.insert(0, "train")
    for split in read_splits:
        if split not in offered:
            source.index(split, (), None)  # raises the source's own "missing" message
    warnings: list[str] = []
    space = class_space(source)
    first = "train" if "train" in read_splits else read_splits[0]
    available = set(source.classes(first))
    if "val" in read_splits and first != "val":
        source.classes("val")  # labels val now: a bad devkit fails before any work
    # A source may name its own label space (an evaluation set of the 1K: labels stay 1K indices).
    space_name = config.label_space or type(source).label_space
    full_set = named_class_set(space_name) if space_name else None
    if full_set is not None:
        in_space = set(full_set.wnids)
        wnids = select_classes(config, available, space)
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
        wnids = select_classes(config, available, space)
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
        from .taxonomy import synsets

        absent = len(synsets.imagenet_leaves(config.under)) - len(wnids)
        if absent:
            warnings.append(
                f"{absent} of the ImageNet-1K classes under '{config.under}' are not in the source archives; "
                f"building the {len(wnids)} that are."
            )
    per_class = {"train": config.train_per_class, "val": config.val_per_class}
    where = {"train": "the archive", "val": "the validation archive"}

    # Index the splits the source holds; then derive val (a recipe / --holdout) and drop small classes.
    index_bytes = 0
    split_warnings: dict[str, list[str]] = {}
    split_refused: dict[str, list[tuple[str, str]]] = {}
    files: dict[str, dict[str, dict[str, SourceFile] | PackedFiles]] = {}
    for split in read_splits:
        index = source.index(split, wnids, runner)
        index_bytes += index.bytes_read
        split_warnings[split] = list(index.warnings)
        split_refused[split] = list(index.refused)
        files[split] = {
            wnid: _kept_files(
                source, split, wnid, index.files.get(wnid, ()), config.max_member_size, split_refused[split]
            )
            for wnid in wnids
        }
    min_images = config.min_images if rule is None else rule[2]
    if min_images is not None and min_images >= 0:
        from .recipes_21k import keep_class

        sizes = {wnid: sum(len(files[split][wnid]) for split in read_splits) for wnid in wnids}
        kept = tuple(wnid for wnid in wnids if keep_class(sizes[wnid], min_images))
        if len(kept) < len(wnids):
            warnings.append(
                f"{len(wnids) - len(kept)} of the {len(wnids)} classes have {min_images} images or fewer and are "
                "left out."
            )
        wnids = kept
    if rule is not None and "val" not in offered:
        where["val"] = f"the train split ({rule[0]} {rule[1]} per class)"
        files["val"], split_warnings["val"], split_refused["val"] = {}, [], []
        for wnid in wnids:
            files["train"][wnid], files["val"][wnid] = _derive_val(
                rule, config.seed, wnid, _as_records(files["train"][wnid])
            )
    if full_set is not None:
        class_set, built = full_set, (wnids if wnids != full_set.wnids else None)
    elif space == "imagenet-1k":
        class_set, built = ClassSet("imagenet-1k", wnids, tuple(classes.by_wnid(w).name for w in wnids)), None
    else:
        from .taxonomy.imagenet21k import class_set_21k

        class_set, built = class_set_21k(wnids, name=space), None
    label_of = class_set.index_of()
    annotate = _annotator(config, source, class_set, wnids)

    units: list[WorkUnit] = []
    counts: dict[str, dict[str, int]] = {}
    available_counts: dict[str, int] = {}
    refused: list[tuple[str, str]] = []
    for split in config.splits:
        warnings.extend(split_warnings[split])
        refused.extend(split_refused[split])
        samples: list[Sample] = []
        blocks: list[SampleBlock] = []  # columns, when every class's files are (and nothing is annotated)
        columns = annotate is None and all(isinstance(f, PackedFiles) or not f for f in files[split].values())
        counts[split] = {}
        available_counts[split] = 0
        for wnid in wnids:
            by_key = files[split][wnid]
            available_counts[split] += len(by_key)
            label = label_of[wnid]
            if columns and isinstance(by_key, PackedFiles):
                positions = choose_positions(by_key.keys(), per_class.get(split), config.seed, split, wnid)
                blocks.append(SampleBlock(wnid, label, by_key.take(positions)))
                counts[split][wnid] = len(positions)
                if not positions:
                    warnings.append(
                        f"{split}: class {wnid} has no images in {where.get(split, 'the source')}."
                    )
                continue
            by_key = _as_records(by_key)
            chosen = choose(by_key, per_class.get(split), config.seed, split, wnid)
            counts[split][wnid] = len(chosen)
            if not chosen:
                warnings.append(f"{split}: class {wnid} has no images in {where.get(split, 'the source')}.")
            for key in chosen:
                file = by_key[key]
                sample = Sample(split, key, wnid, label, file.name, file.location)
                samples.append(annotate(sample) if annotate is not None else sample)
        layout = type(source).layout
        groups = source.group(split, SampleTable(split, blocks) if columns else samples)
        if writer is not None:
            groups = writer.group(split, groups)
        for unit_id, unit_samples in groups:
            units.append(WorkUnit(split, unit_id, layout, unit_samples, config.max_member_size))

    record: dict[str, Any] = {}
    if config.recipe:
        from dataclasses import asdict

        from .recipes_21k import PUBLISHED, release_of

        names = " ".join([Path(str(config.source)).name, *(r.path.name for r in source.records())])
        release = release_of(names)
        record["recipe"] = {
            "name": config.recipe,
            "release": release,
            "published": asdict(PUBLISHED[release]) if release else None,
            "min_images": rule[2] if rule else None,
            "val_per_class": rule[1] if rule else None,
        }
    if annotate is not None and getattr(annotate, "record", None):
        record.update(annotate.record)
    return BuildPlan(
        class_set=class_set,
        units=tuple(units),
        source=source,
        counts=counts,
        available=available_counts,
        warnings=tuple(warnings),
        refused=tuple(refused),
        index_bytes=index_bytes,
        splits=tuple(config.splits),
        built=built,
        boxes=config.boxes,
        record=record,
    )


def _annotator(config: BuildConfig, source: Source, class_set: ClassSet, wnids: Sequence[str]) -> Any:
    """A function adding boxes (``--boxes``) and ReaL labels (``--real-labels``) to samples, or None."""
    if not (config.boxes or config.real_labels):
        return None
    from .annotations import Annotator

    return Annotator.make(config, source, class_set, wnids)
