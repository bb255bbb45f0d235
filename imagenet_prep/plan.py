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

from .config import BuildConfig
from .errors import InputError, UsageError
from .outputs.base import Writer
from .records import ClassSet, Sample, SourceFile, WorkUnit
from .sources import Source, open_source
from .sources.base import Runner
from .taxonomy import classes

_NUMBER_RE = re.compile(r"(\d+)")


_TWO_NUMBERS_RE = re.compile(r"(\D*)(\d+)(\D*)(\d+)(\D*)")  # every ILSVRC2012 name: n01440764_10026.JPEG


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


def choose(names: Iterable[str], count: int | None, seed: int, split: str, wnid: str) -> list[str]:
    """The seeded per-class choice documented in the module docstring."""
    ordered = sorted(names, key=natural_key)
    if count is None or count >= len(ordered):
        return ordered
    rng = random.Random(f"{seed}:{split}:{wnid}")
    return sorted(rng.sample(ordered, count), key=natural_key)


def select_classes(config: BuildConfig, available: Iterable[str]) -> tuple[str, ...]:
    """The sorted wnids to build, from --subset / --classes / --under, or every class the archives hold."""
    available = set(available)
    if config.subset:
        wnids = classes.subset_wnids(config.subset)
    elif config.classes:
        if len(config.classes) == 1 and Path(config.classes[0]).is_file():
            wnids = classes.read_class_file(Path(config.classes[0]))
        elif len(config.classes) == 1 and _looks_like_a_path(config.classes[0]):
            raise InputError(
                f"The classes file {config.classes[0]} does not exist. Give an existing file of wnids or names "
                "(one per line), or the classes themselves: --classes n01440764,n02102040."
            )
        else:
            wnids = classes.resolve(config.classes)
    elif config.under:
        from .taxonomy import synsets

        if config.wordnet:
            synsets.use_wordnet(config.wordnet)
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
        return tuple(sorted(w for w in available if classes.is_imagenet1k(w)))
    missing = sorted(set(wnids) - available)
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise UsageError(
            f"{len(missing)} of the {len(wnids)} requested classes are not in the source archives ({shown}); "
            f"the archives hold {len(available)} classes."
        )
    return tuple(sorted(wnids))


def _looks_like_a_path(entry: str) -> bool:
    """A single --classes entry meant as a file (``./x.txt``, ``lists/dogs``), not a wnid or a class name."""
    return (
        "/" in entry
        or "\\" in entry
        or Path(entry).suffix.lower() in (".txt", ".csv", ".lst", ".list", ".tsv")
    )


@dataclass(frozen=True)
class BuildPlan:
    class_set: ClassSet
    units: tuple[WorkUnit, ...]
    source: Source
    counts: dict[str, dict[str, int]]  # split -> wnid -> images planned
    available: dict[str, int]  # split -> images the source holds for the chosen classes
    warnings: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()  # (member label, reason) refused by the reader or planner
    index_bytes: int = 0  # source bytes read to index (0 from a warm cache)
    splits: tuple[str, ...] = field(default=())

    @property
    def wnids(self) -> tuple[str, ...]:
        return self.class_set.wnids


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
            reason = f"its output name clashes with {owner[folded]} (names differ only in extension or case)"
            refused.append((source.member_label(split, wnid, file.name), reason))
            continue
        owner[folded] = file.name
        kept[file.key] = file
    return kept


def make_plan(
    config: BuildConfig,
    runner: Runner | None = None,
    cache_dir: Path | None = None,
    writer: Writer | None = None,
) -> BuildPlan:
    """Index the source (cached) and decide every image's split, class, label and unit.

    Units follow the source's grouping (its cheapest reads) unless the ``writer`` regroups them (shards).
    """
    source = open_source(config.source, cache_dir=cache_dir)
    offered = source.splits()
    for split in config.splits:
        if split not in offered:
            source.index(split, (), None)  # raises the source's own "missing" message
    warnings: list[str] = []
    refused: list[tuple[str, str]] = []
    first = "train" if "train" in config.splits else config.splits[0]
    available = set(source.classes(first))
    if "val" in config.splits and first != "val":
        source.classes("val")  # labels val now: a bad devkit fails before any work
    wnids = select_classes(config, available)
    if config.under:
        from .taxonomy import synsets

        absent = len(synsets.imagenet_leaves(config.under)) - len(wnids)
        if absent:
            warnings.append(
                f"{absent} of the ImageNet-1K classes under '{config.under}' are not in the source archives; "
                f"building the {len(wnids)} that are."
            )
    class_set = ClassSet("imagenet-1k", wnids, tuple(classes.by_wnid(w).name for w in wnids))
    label_of = class_set.index_of()
    per_class = {"train": config.train_per_class, "val": config.val_per_class}
    where = {"train": "the archive", "val": "the validation archive"}

    units: list[WorkUnit] = []
    counts: dict[str, dict[str, int]] = {}
    available_counts: dict[str, int] = {}
    index_bytes = 0
    for split in config.splits:
        index = source.index(split, wnids, runner)
        index_bytes += index.bytes_read
        warnings.extend(index.warnings)
        refused.extend(index.refused)
        samples: list[Sample] = []
        counts[split] = {}
        available_counts[split] = 0
        for wnid in wnids:
            by_key = _unique_keys(source, split, wnid, index.files.get(wnid, ()), refused)
            available_counts[split] += len(by_key)
            chosen = choose(by_key, per_class.get(split), config.seed, split, wnid)
            counts[split][wnid] = len(chosen)
            if not chosen:
                warnings.append(f"{split}: class {wnid} has no images in {where.get(split, 'the source')}.")
            label = label_of[wnid]
            for key in chosen:
                file = by_key[key]
                samples.append(Sample(split, key, wnid, label, file.name, file.location))
        layout = type(source).layout
        groups = source.group(split, samples)
        if writer is not None:
            groups = writer.group(split, groups)
        for unit_id, unit_samples in groups:
            units.append(WorkUnit(split, unit_id, layout, unit_samples))

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
    )
