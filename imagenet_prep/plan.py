"""Plan a build: which archives, which classes, which images, written where, grouped into work units.

Work units are small frozen picklable records identified by (split, unit id): ``train-<wnid>`` per class and
``val-NNNN`` per chunk of the validation tar in archive order (contiguous reads). Each task carries its member's
offset and size, so a worker reads its own bytes from the archive with one positioned read: pixels never travel
through the pool.

Per-class sampling (``--train-per-class`` / ``--val-per-class``): the class's files are sorted by name
(numerically), and N of them are drawn with ``random.Random(f"{seed}:{split}:{wnid}").sample``, then sorted again.
Each class's choice depends only on the seed, split, class and its file list: the same seed gives the same files,
and adding classes to a build does not change the files chosen for the others.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import archive, classes, devkit
from .config import BuildConfig
from .errors import InputError, UsageError

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
DEVKIT_TAR = "ILSVRC2012_devkit_t12.tar.gz"
DEVKIT_DIR = "ILSVRC2012_devkit_t12"
VAL_CHUNK = 250  # images per val unit: big enough to amortise a task, small enough to balance 2+ workers

IndexRunner = Callable[[Callable, Sequence[tuple]], list]


@dataclass(frozen=True)
class ImageTask:
    """One image: where its bytes are in the archive, and where it goes (relative to OUT, no extension)."""

    member: archive.TarMember
    dest_stem: str
    label: int
    wnid: str


@dataclass(frozen=True)
class WorkUnit:
    split: str
    unit_id: str
    archive_path: str
    tasks: tuple[ImageTask, ...]

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{self.split}|{self.unit_id}|".encode())
        for task in self.tasks:
            digest.update(
                f"{task.member.name}|{task.member.offset}|{task.member.size}|{task.dest_stem}\n".encode()
            )
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Sources:
    """The archives found in --source (None = absent)."""

    folder: Path
    train: Path | None
    val: Path | None
    devkit: Path | None


@dataclass(frozen=True)
class BuildPlan:
    wnids: tuple[str, ...]
    units: tuple[WorkUnit, ...]
    sources: Sources
    counts: dict[str, dict[str, int]]  # split -> wnid -> images planned
    available: dict[str, int]  # split -> images the archive holds for the chosen classes
    warnings: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()  # ("<split>/<member>", reason) refused by the reader or planner
    class_dirs: tuple[str, ...] = field(default=())  # relative dirs to create


def find_sources(folder: Path) -> Sources:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"The source folder {folder} does not exist. Point --source at the folder holding the ILSVRC2012 "
            f"archives (or make a miniature one with `imagenet-prep sample {folder}`)."
        )

    def present(name: str) -> Path | None:
        path = folder / name
        return path if path.exists() else None

    return Sources(folder, present(TRAIN_TAR), present(VAL_TAR), present(DEVKIT_TAR) or present(DEVKIT_DIR))


def _missing(name: str, folder: Path) -> InputError:
    return InputError(
        f"The archive {name} is missing from {folder}: run `imagenet-prep fetch --dest {folder}`, "
        "or build only the splits you have with --splits."
    )


_NUMBER_RE = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """n01440764_2.JPEG before n01440764_10.JPEG."""
    return tuple(int(part) if part.isdigit() else part for part in _NUMBER_RE.split(name))


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
        else:
            wnids = classes.resolve(config.classes)
    elif config.under:
        from . import synsets

        if config.wordnet:
            synsets.use_wordnet(config.wordnet)
        leaves = tuple(synsets.imagenet_leaves(config.under))
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


def _index_train(
    train_archive: archive.TrainArchive, wnids: Sequence[str], runner: IndexRunner | None
) -> dict[str, tuple[archive.TarMember, ...]]:
    """Inner indexes of the chosen classes; uncached ones in parallel through ``runner`` when given."""
    class_tars = train_archive.classes()
    result: dict[str, tuple[archive.TarMember, ...]] = {}
    uncached = [wnid for wnid in wnids if not train_archive.has_members(wnid)]
    if runner is not None and len(uncached) > 1:
        path = str(train_archive.path)
        outputs = runner(archive.index_class_tar, [(path, class_tars[wnid]) for wnid in uncached])
        for wnid, (members, refused) in zip(uncached, outputs, strict=True):
            train_archive.add_members(wnid, members, refused)
    for wnid in wnids:
        result[wnid] = train_archive.members(wnid)
    train_archive.save()
    return result


def _unique_outputs(
    wnid: str, members: Sequence[archive.TarMember], refused: list[tuple[str, str]]
) -> dict[str, archive.TarMember]:
    """name -> member, refusing a member whose output file would be another's: names that differ only in
    extension or letter case (``x.JPEG`` / ``x.png`` / ``X.JPEG``) map to one output path on some disks."""
    kept: dict[str, archive.TarMember] = {}
    owner: dict[str, str] = {}
    for member in sorted(members, key=lambda m: natural_key(m.name)):
        key = Path(member.name).stem.casefold()
        if key in owner:
            reason = f"its output name clashes with {owner[key]} (names differ only in extension or case)"
            refused.append((f"train/{wnid}.tar/{member.name}", reason))
            continue
        owner[key] = member.name
        kept[member.name] = member
    return kept


def make_plan(
    config: BuildConfig, runner: IndexRunner | None = None, cache_dir: Path | None = None
) -> BuildPlan:
    """Index the archives (cached) and decide every image's destination."""
    sources = find_sources(config.source)
    warnings: list[str] = []
    refused: list[tuple[str, str]] = []
    for split, path, name in (("train", sources.train, TRAIN_TAR), ("val", sources.val, VAL_TAR)):
        if split in config.splits and path is None:
            raise _missing(name, config.source)

    train_archive = (
        archive.TrainArchive(sources.train, cache_dir=cache_dir) if "train" in config.splits else None
    )
    val_labels: dict[str, str] = {}
    val_archive = None
    if "val" in config.splits:
        val_archive = archive.ValArchive(sources.val, cache_dir=cache_dir)
        kit = devkit.read_devkit(sources.devkit) if sources.devkit else None
        if kit is not None:
            warnings.extend(devkit.compare_with_bundled(kit))
        val_labels = devkit.val_wnids([member.name for member in val_archive.members()], kit)
        val_archive.save()
        refused.extend((f"val/{name}", reason) for name, reason in val_archive.refused)

    available = set(train_archive.classes()) if train_archive is not None else set(val_labels.values())
    wnids = select_classes(config, available)
    if config.under:
        from . import synsets

        absent = len(synsets.imagenet_leaves(config.under)) - len(wnids)
        if absent:
            warnings.append(
                f"{absent} of the ImageNet-1K classes under '{config.under}' are not in the source archives; "
                f"building the {len(wnids)} that are."
            )
    label_of = {wnid: i for i, wnid in enumerate(wnids)}

    units: list[WorkUnit] = []
    counts: dict[str, dict[str, int]] = {}
    available_counts: dict[str, int] = {}
    if train_archive is not None:
        members_by_class = _index_train(train_archive, wnids, runner)
        # Only what concerns this build: the outer archive's refusals, and those inside the chosen classes.
        refused.extend((f"train/{name}", reason) for name, reason in train_archive.refused_for(wnids))
        counts["train"] = {}
        available_counts["train"] = 0
        for wnid in wnids:
            by_name = _unique_outputs(wnid, members_by_class[wnid], refused)
            available_counts["train"] += len(by_name)
            chosen = choose(by_name, config.train_per_class, config.seed, "train", wnid)
            tasks = tuple(
                ImageTask(by_name[name], f"train/{wnid}/{Path(name).stem}", label_of[wnid], wnid)
                for name in chosen
            )
            counts["train"][wnid] = len(tasks)
            if not tasks:
                warnings.append(f"train: class {wnid} has no images in the archive.")
            units.append(WorkUnit("train", f"train-{wnid}", str(sources.train), tasks))

    if val_archive is not None:
        by_class: dict[str, list[str]] = {wnid: [] for wnid in wnids}
        for name, wnid in val_labels.items():
            if wnid in by_class:
                by_class[wnid].append(name)
        available_counts["val"] = sum(len(names) for names in by_class.values())
        chosen_names = set()
        counts["val"] = {}
        for wnid in wnids:
            picked = choose(by_class[wnid], config.val_per_class, config.seed, "val", wnid)
            counts["val"][wnid] = len(picked)
            chosen_names.update(picked)
            if not picked:
                warnings.append(f"val: class {wnid} has no images in the validation archive.")
        tasks = [
            ImageTask(
                member,
                f"val/{val_labels[member.name]}/{Path(member.name).stem}",
                label_of[val_labels[member.name]],
                val_labels[member.name],
            )
            for member in val_archive.members()
            if member.name in chosen_names
        ]
        for start in range(0, len(tasks), VAL_CHUNK):
            chunk = tuple(tasks[start : start + VAL_CHUNK])
            units.append(WorkUnit("val", f"val-{start // VAL_CHUNK:04d}", str(sources.val), chunk))

    class_dirs = tuple(f"{split}/{wnid}" for split in config.splits for wnid in wnids)
    return BuildPlan(
        wnids=wnids,
        units=tuple(units),
        sources=sources,
        counts=counts,
        available=available_counts,
        warnings=tuple(warnings),
        refused=tuple(refused),
        class_dirs=class_dirs,
    )
