"""Plan a build: which classes, which images, grouped into work units. Source-agnostic: the source (see
sources/) answers which classes and files it holds and how its samples group into units; the writer (see
outputs/) may regroup them (a shard writer shuffles); the plan chooses:

- ``selection``: which classes, in which label space;
- ``sampling``: which files of a class (the refusals, the seeded per-class draw);
- ``recipes``: a val split derived from train (``--recipe``, ``--holdout``), small classes left out;
- ``annotations``: boxes and ReaL labels attached to samples.

Work units are small frozen picklable records (records.WorkUnit) identified by a unit id unique across splits.
Each sample carries where its bytes are, so a worker reads its own bytes: pixels never travel through the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..build_options import SPLITS
from ..columns import PackedFiles, SampleBlock, SampleTable
from ..config import BuildConfig
from ..errors import UsageError
from ..records import ClassSet, Sample, SourceFile, WorkUnit
from ..sources import Source, open_source
from ..sources.base import Runner
from .recipes import derive_val, keep_classes, recipe_record, split_rule
from .sampling import as_records, choose, choose_kept, kept_files, listed_only
from .selection import choose_classes, class_space, label_space_of, wordnet_of

if TYPE_CHECKING:
    from ..taxonomy.image_lists import ImageList
    from .annotations import Annotator
    from .listed import Listed

Groups = list[tuple[str, Sequence[Sample]]]  # a unit's samples: a tuple, a SampleTable or SampleRows
Files = dict[str, dict[str, "dict[str, SourceFile] | PackedFiles"]]  # split -> wnid -> the class's kept files


class Regrouper(Protocol):
    """What the plan asks of a writer (``outputs.base.Writer.group``): its own grouping of a split's units
    (a shard writer makes shards). A protocol: the plan sits below the outputs and imports none."""

    def group(self, split: str, groups: Groups) -> Groups: ...

    def plan_warnings(self, units: Sequence[WorkUnit]) -> list[str]: ...


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


def make_plan(
    config: BuildConfig,
    runner: Runner | None = None,
    cache_dir: Path | None = None,
    writer: Regrouper | None = None,
) -> BuildPlan:
    """Index the source (cached) and decide every image's split, class, label and unit.

    Units follow the source's grouping (its cheapest reads) unless the ``writer`` regroups them (shards).
    A source without a val split gets one from ``--holdout`` or a recipe (taken out of train); a recipe or
    ``--min-images`` keeps only the classes with more images than the threshold. The plan holds the source
    open (``BuildPlan.source``): its caller closes it (``source.close()``) when the build ends.
    """
    lists = _image_lists(config)  # read before the source: a bad list fails first
    source = open_source(config.source, layout=config.layout, cache_dir=cache_dir)
    offered = source.splits()
    notes: list[str] = []
    if not config.splits:
        config = replace(config, splits=default_splits(config, source, offered, notes))
    notes += unused_boxes(config)
    rule = split_rule(config, source, offered)
    read_splits = [s for s in config.splits if not (s == "val" and rule is not None and "val" not in offered)]
    if rule is not None and "train" not in read_splits:
        read_splits.insert(0, "train")
    if lists:  # the source splits the lists draw from, whatever output split each image goes to
        from .listed import source_splits

        read_splits = source_splits(lists, config.splits, offered)
        if not read_splits:
            raise UsageError(
                f"--images {config.images}: none of its images goes to the splits built "
                f"({', '.join(config.splits)}); check --splits."
            )
    for split in read_splits:
        if split not in offered:
            source.index(split, (), None)  # raises the source's own "missing" message
    first = "train" if "train" in read_splits else read_splits[0]
    available = set(source.classes(first))
    if "val" in read_splits and first != "val":
        source.classes("val")  # labels val now: a bad devkit fails before any work
    wnids, full_set, warnings = choose_classes(config, source, available, first)
    warnings = notes + warnings

    # Index the splits the source holds; then drop small classes and derive val (a recipe / --holdout).
    listed_keys = None
    if lists and rule is None:  # each class keeps only the files the lists name (memory: the list's)
        from .listed import listed_keys as keys_of

        listed_keys = keys_of(lists)
    index = _index(config, source, read_splits, wnids, runner, listed_keys)
    files = index.files
    min_images = config.min_images if rule is None else rule[2]
    sizes = {wnid: sum(index.sizes[split][wnid] for split in read_splits) for wnid in wnids}
    wnids, dropped = keep_classes(wnids, sizes, min_images)
    warnings += dropped
    where = {"train": "the archive", "val": "the validation archive"}
    if rule is not None and "val" not in offered:
        where["val"] = f"the train split ({rule[0]} {rule[1]} per class)"
        files["val"], index.warnings["val"], index.refused["val"] = {}, [], []
        for wnid in wnids:
            files["train"][wnid], files["val"][wnid] = derive_val(
                rule, config.seed, wnid, as_records(files["train"][wnid])
            )
    with wordnet_of(config):  # a 21K class outside the bundled names is named from the build's WordNet
        class_set, built = label_space_of(full_set, wnids, class_space(source))
    annotate = _annotator(config, source, class_set, wnids)
    refused: list[tuple[str, str]] = []
    listed: Listed | None = None
    if lists:
        from .listed import select

        listed = select(
            lists,
            config.splits,
            files,
            wnids,
            class_set.index_of(),
            narrowed=bool(config.subset or config.classes or config.under),
            allow_missing=config.allow_missing,
            check_labels=not config.ignore_list_labels,
        )
        files = listed.files
        where = {split: f"the image list ({config.images})" for split in config.splits}
        for split in read_splits:  # the index's warnings and refusals once per source split read
            warnings.extend(index.warnings[split])
            refused.extend(index.refused[split])
        warnings.extend(listed.warnings)

    units: list[WorkUnit] = []
    counts: dict[str, dict[str, int]] = {}
    available_counts: dict[str, int] = {}
    for split in config.splits:
        if listed is None:
            warnings.extend(index.warnings[split])
            refused.extend(index.refused[split])
        samples, counts[split], available_counts[split] = _draw(
            config, split, wnids, files[split], class_set.index_of(), annotate, where, warnings
        )
        groups = source.group(split, samples)
        if writer is not None:
            groups = writer.group(split, groups)
        layout = type(source).layout
        for unit_id, unit_samples in groups:
            units.append(WorkUnit(split, unit_id, layout, unit_samples, config.max_member_size))

    if writer is not None:
        warnings.extend(writer.plan_warnings(units))  # e.g. a split with fewer shards than loaders need
    record: dict[str, Any] = recipe_record(config, source, rule)
    if annotate is not None and annotate.record:
        record.update(annotate.record)
    if listed is not None:
        record["images"] = listed.record
    return BuildPlan(
        class_set=class_set,
        units=tuple(units),
        source=source,
        counts=counts,
        available=available_counts,
        warnings=tuple(warnings),
        refused=tuple(refused),
        index_bytes=index.bytes_read,
        splits=tuple(config.splits),
        built=built,
        boxes=config.boxes,
        record=record,
    )


def default_splits(
    config: BuildConfig, source: Source, offered: Sequence[str], notes: list[str]
) -> tuple[str, ...]:
    """The splits a build takes when --splits is not given: the ones the source has (an evaluation set: val),
    plus val when --holdout or a recipe derives it from train. A split the source lacks adds one line to
    ``notes`` saying how to get it."""
    derived = config.holdout is not None or config.recipe is not None
    held = tuple(split for split in SPLITS if split in offered or (split == "val" and derived))
    if not held:  # nothing recognised: the explicit default, so the source says what it misses
        return SPLITS
    layout = type(source).layout
    if "val" not in held:
        notes.append(
            f"The {layout} source has no val split, so this build has train only: add --holdout N to hold out "
            "N train images per class as val (seeded)."
        )
    missing = source.missing() if "train" not in held else []
    if missing:  # a release without its train part (an evaluation set misses nothing: val is all it has)
        notes.append(f"The {layout} source lacks {', '.join(missing)}, so this build has val only.")
    return held


def unused_boxes(config: BuildConfig) -> list[str]:
    """One line when the ILSVRC2012 bounding-box archives of the splits built sit beside a local source but
    --boxes is not given: they are named, not used (using them unasked would change what existing builds write,
    and their fingerprint)."""
    if config.boxes or not isinstance(config.source, Path) or not config.source.is_dir():
        return []
    from ..fetch.catalog import by_key, keys

    known = set(keys())  # bbox_train, bbox_val: a test split (an image list's) has no box archive
    found = [by_key(f"bbox_{split}").filename for split in config.splits if f"bbox_{split}" in known]
    found = [name for name in found if (config.source / name).is_file()]
    if not found:
        return []
    return [
        f"{' and '.join(found)} found beside the source, not used: add --boxes to write boxes.csv from them."
    ]


@dataclass
class _Index:
    """The kept files of every split read (split -> wnid -> files), with the index's warnings and refusals."""

    files: Files
    warnings: dict[str, list[str]]
    refused: dict[str, list[tuple[str, str]]]
    bytes_read: int = 0
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> wnid -> files kept (all)


def _index(
    config: BuildConfig,
    source: Source,
    splits: Sequence[str],
    wnids: Sequence[str],
    runner: Runner | None,
    listed_keys: set[str] | None = None,
) -> _Index:
    """Index ``splits`` for the chosen classes; each class keeps the files within the cap and without clashes
    (``sizes`` counts them), and with ``listed_keys`` (an image list's) only those of them: a class is read,
    checked and cut down one at a time, so a plan never holds the whole index."""
    found = _Index({}, {}, {})
    for split in splits:
        index = source.index(split, wnids, runner)
        found.bytes_read += index.bytes_read
        found.warnings[split] = list(index.warnings)
        refused = found.refused[split] = list(index.refused)
        split_files: dict[str, dict[str, SourceFile] | PackedFiles] = {}
        sizes = found.sizes[split] = {}
        for wnid in wnids:
            kept = kept_files(source, split, wnid, index.files.get(wnid, ()), config.max_member_size, refused)
            sizes[wnid] = len(kept)
            split_files[wnid] = kept if listed_keys is None else listed_only(kept, listed_keys)
        found.files[split] = split_files
    return found


def _draw(
    config: BuildConfig,
    split: str,
    wnids: Sequence[str],
    files: dict[str, dict[str, SourceFile] | PackedFiles],
    label_of: dict[str, int],
    annotate: Annotator | None,
    where: dict[str, str],
    warnings: list[str],
) -> tuple[Sequence[Sample], dict[str, int], int]:
    """A split's samples (a SampleTable when every class's files are columns and nothing is annotated, else
    Samples), the images drawn per class, and the images the classes offered."""
    per_class = {"train": config.train_per_class, "val": config.val_per_class}.get(split)
    samples: list[Sample] = []
    blocks: list[SampleBlock] = []
    columns = annotate is None and all(isinstance(f, PackedFiles) or not f for f in files.values())
    counts: dict[str, int] = {}
    offered = 0
    for wnid in wnids:
        by_key = files[wnid]
        offered += len(by_key)
        label = label_of[wnid]
        if columns and isinstance(by_key, PackedFiles):
            positions = choose_kept(by_key, per_class, config.seed, split, wnid)
            blocks.append(SampleBlock(wnid, label, by_key.take(positions)))
            counts[wnid] = len(positions)
        else:
            by_key = as_records(by_key)
            chosen = choose(by_key, per_class, config.seed, split, wnid)
            counts[wnid] = len(chosen)
            for key in chosen:
                file = by_key[key]
                sample = Sample(split, key, wnid, label, file.name, file.location)
                samples.append(annotate(sample) if annotate is not None else sample)
        if not counts[wnid]:
            warnings.append(f"{split}: class {wnid} has no images in {where.get(split, 'the source')}.")
    return (SampleTable(split, blocks) if columns else samples), counts, offered


def _annotator(
    config: BuildConfig, source: Source, class_set: ClassSet, wnids: Sequence[str]
) -> Annotator | None:
    """Boxes and ReaL labels for the samples, or None. Imported only when asked for: the box parsers (and
    xml.etree) cost every other build's start."""
    if not (config.boxes or config.real_labels):
        return None
    from .annotations import annotator_for

    return annotator_for(config, source, class_set, wnids)


def _image_lists(config: BuildConfig) -> tuple[ImageList, ...]:
    """The parsed ``--images`` lists (none without it: the list reader is imported only when asked for)."""
    if not config.images:
        return ()
    from ..taxonomy.image_lists import load_spec

    return load_spec(config.images)
