"""One registry of the miniature releases: layout name -> how to write its miniature, what it is, and the
build command that reads it. ``sample --layout`` takes its choices, help and "Next:" hint from here; every
source layout (``sources.SOURCES``) has an entry (a test holds the two key sets equal).

A writer takes the folder, the :class:`MiniatureOptions` and a progress callback, and returns what it wrote
(:class:`Written`). The ImageNet-1K layouts draw the ILSVRC2012 miniature (``--classes``, ``--train-per-class``
...) and re-pack it; the 21K and evaluation-set miniatures take ``wnids``, ``per_class`` and ``seed``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from .ilsvrc import SampleSpec

# The family modules bring numpy, Pillow and the class tables; the CLI imports this registry for the `sample
# --layout` help, so each writer imports its family module when it runs.

__all__ = [
    "ALIASES",
    "CHOICES",
    "MINIATURES",
    "Miniature",
    "MiniatureOptions",
    "Written",
    "miniature",
    "write_layout",
    "write_miniature",
]

Progress = Callable[[int], None] | None


@dataclass(frozen=True)
class MiniatureOptions:
    """What to draw (the ``sample`` command's options). The first seven make the ILSVRC2012 miniature the
    ImageNet-1K layouts re-pack (:class:`SampleSpec`); ``wnids``, ``per_class`` and ``seed`` shape the 21K and
    evaluation-set miniatures (``per_class`` None: the set's own default)."""

    classes: int = 10
    train_per_class: int = 10
    val_per_class: int = 5
    realistic: bool = False
    quirks: bool = False
    seed: int = 0
    wnids: tuple[str, ...] | None = None
    per_class: int | tuple[int, ...] | None = None
    overwrite: bool = False

    def spec(self) -> SampleSpec:
        from .ilsvrc import SampleSpec

        return SampleSpec(
            classes=self.classes,
            train_per_class=self.train_per_class,
            val_per_class=self.val_per_class,
            realistic=self.realistic,
            quirks=self.quirks,
            seed=self.seed,
            wnids=self.wnids,
        )

    def one_per_class(self, default: int) -> int:
        """``per_class`` for a miniature whose classes all hold the same number of images."""
        if self.per_class is None:
            return default
        if isinstance(self.per_class, int):
            return self.per_class
        raise UsageError("This layout takes one number of images per class.")


@dataclass(frozen=True)
class Written:
    """A written miniature: its folder and the sentence that says what it holds (after "Wrote ")."""

    root: Path
    summary: str
    next: str = ""  # the command that builds from it (set by the sample command: the registry's hint)

    def to_dict(self) -> dict[str, str]:
        """The JSON document of ``sample --json``."""
        return {"root": str(self.root), "summary": self.summary, "next": self.next}


Writer = Callable[[Path, MiniatureOptions, Progress], Written]


def _no_progress(options: MiniatureOptions) -> int:
    return 0


def _ilsvrc_images(options: MiniatureOptions) -> int:
    from .ilsvrc import choose_wnids

    spec = options.spec()
    return len(choose_wnids(spec)) * (spec.train_per_class + spec.val_per_class)


@dataclass(frozen=True)
class Miniature:
    """One registry entry. ``hint`` is the build command that reads the miniature, ``{root}`` standing for its
    folder; it carries every option today's build needs for it (the test runs each as printed).
    ``images(options)`` counts the images drawn, for a progress bar (0: no bar)."""

    write: Writer
    description: str
    hint: str
    images: Callable[[MiniatureOptions], int] = _no_progress

    def next_command(self, root: Path) -> str:
        return self.hint.format(root=shlex.quote(str(root)))


_BUILD = "imagenet-prep build --source {root} --out OUT"


def _files(root: Path) -> str:
    return ", ".join(sorted(p.name for p in root.iterdir() if not p.name.startswith(".")))


# ---------------------------------------------------------------------------------------- ImageNet-1K
def _write_ilsvrc(root: Path, options: MiniatureOptions, progress: Progress) -> Written:
    from .ilsvrc import write_sample

    release = write_sample(root, options.spec(), progress, overwrite=options.overwrite)
    n_train = sum(len(names) for names in release.train_files.values())
    total = sum(p.stat().st_size for p in (release.train_tar, release.val_tar, release.devkit))
    extra = f", {len(release.quirk_files)} quirk files" if release.quirk_files else ""
    return Written(
        release.root,
        f"a miniature ILSVRC2012 release to {release.root}: {len(release.wnids)} classes, "
        f"{n_train} train + {len(release.val_files)} val images{extra}, {total / 1e6:.1f} MB "
        f"(checksums in MD5SUMS)",
    )


def _repacked(layout: str) -> Writer:
    def write(root: Path, options: MiniatureOptions, progress: Progress) -> Written:
        from .repack import write_layout as write_1k_layout

        release = write_1k_layout(root, options.spec(), layout, progress, overwrite=options.overwrite)
        n_train = sum(len(names) for names in release.train_files.values())
        return Written(
            release.root,
            f"a miniature ImageNet release in the {layout} layout to {release.root}: "
            f"{len(release.wnids)} classes, {n_train} train + {len(release.val_files)} val images "
            f"({', '.join(release.written)})",
        )

    return write


def _write_bbox(root: Path, options: MiniatureOptions, progress: Progress) -> Written:
    from .boxes import write_bbox

    root.mkdir(parents=True, exist_ok=True)
    write_bbox(root, options.seed, spec=options.spec())
    return Written(root, f"a miniature bbox release to {root} ({_files(root)})")


# ----------------------------------------------------------------------- ImageNet-21K, evaluation sets
def _other(name: str, draw: Callable[[Path, MiniatureOptions], object]) -> Writer:
    """A miniature beyond ImageNet-1K: ``draw`` fills the folder (no progress bar: they are a few images)."""

    def write(root: Path, options: MiniatureOptions, progress: Progress) -> Written:
        root.mkdir(parents=True, exist_ok=True)
        draw(root, options)
        return Written(root, f"a miniature {name} release to {root} ({_files(root)})")

    return write


def _21k(name: str, description: str, pick: Callable[[ModuleType], Callable[..., object]]) -> Miniature:
    """An ImageNet-21K miniature: ``pick`` names its writer in imagenet21k.py (imported when it runs)."""

    def draw(root: Path, o: MiniatureOptions) -> object:
        from . import imagenet21k as family

        wnids = o.wnids or family.DEFAULT_21K_CLASSES
        return pick(family)(root, wnids, o.per_class or family.DEFAULT_PER_CLASS, o.seed)

    # ImageNet-21K has no val split: the build takes train and says how to hold some out (--holdout N).
    return Miniature(_other(name, draw), description, _BUILD)


def _eval(name: str, draw: Callable[[Path, MiniatureOptions], object], description: str) -> Miniature:
    return Miniature(_other(name, draw), description, _BUILD)  # an evaluation set: the build takes its val


def _imagenetv2(variant: str) -> Miniature:
    def draw(root: Path, o: MiniatureOptions) -> object:
        from .evalsets import DEFAULT_PER_CLASS, write_imagenetv2

        return write_imagenetv2(root, variant, o.wnids, o.one_per_class(DEFAULT_PER_CLASS), o.seed)

    return _eval(f"imagenetv2-{variant}", draw, f"ImageNetV2 {variant}")


def _imagenet_ar(which: str, description: str) -> Miniature:
    def draw(root: Path, o: MiniatureOptions) -> object:
        from .evalsets import DEFAULT_PER_CLASS, write_imagenet_ar

        return write_imagenet_ar(root, which, o.wnids, o.one_per_class(DEFAULT_PER_CLASS), o.seed)

    return _eval(which, draw, description)


def _sketch(root: Path, o: MiniatureOptions) -> object:
    from .evalsets import DEFAULT_PER_CLASS, write_sketch

    return write_sketch(root, o.wnids, o.one_per_class(DEFAULT_PER_CLASS), o.seed)


def _1k(layout: str, description: str) -> Miniature:
    return Miniature(_repacked(layout), description, _BUILD, _ilsvrc_images)


# One entry per source layout, in sources.SOURCES's order.
MINIATURES: dict[str, Miniature] = {
    "ilsvrc": Miniature(
        _write_ilsvrc, "the official ILSVRC2012 tars, devkit and MD5SUMS", _BUILD, _ilsvrc_images
    ),
    "kaggle": _1k("kaggle", "Kaggle's extracted ILSVRC/Data/CLS-LOC tree"),
    "kaggle-zip": _1k("kaggle-zip", "Kaggle's imagenet-object-localization-challenge.zip"),
    "hf-tar": _1k("hf-tar", "the Hugging Face Hub's tar.gz shards"),
    "hf-parquet": _1k("hf-parquet", "the Hugging Face Hub's Parquet shards, needs pyarrow"),
    "blurred": _1k("blurred", "the face-blurred train/val_blurred.tar.gz"),
    "imagefolder": _1k("imagefolder", "train/<wnid>/ and val/<wnid>/ folders"),
    "fall11": _21k("fall11", "ImageNet-21K fall11_whole.tar", lambda m: m.write_fall11),
    "class-tars": _21k(
        "class-tars", "a folder of ImageNet-21K <wnid>.tar class tars", lambda m: m.write_class_tars
    ),
    "winter21": _21k("winter21", "ImageNet-21K winter21_whole.tar.gz", lambda m: m.write_winter21),
    "imagenetv2-matched-frequency": _imagenetv2("matched-frequency"),
    "imagenetv2-threshold0.7": _imagenetv2("threshold0.7"),
    "imagenetv2-top-images": _imagenetv2("top-images"),
    "imagenet-a": _imagenet_ar("imagenet-a", "ImageNet-A"),
    "imagenet-r": _imagenet_ar("imagenet-r", "ImageNet-R"),
    "imagenet-sketch": _eval("imagenet-sketch", _sketch, "ImageNet-Sketch"),
    "wds": _1k("wds", "WebDataset shards in timm's imagenet-1k-wds layout (.jpg + .cls + .json, _info.json)"),
}
# Not source layouts of their own: the ILSVRC2012 miniature with its bounding-box archives beside it, and the
# older Kaggle zip (the kaggle-zip layout, a tar.gz of the tree inside the zip).
ADD_ONS: dict[str, Miniature] = {
    "kaggle-zip-2019": _1k("kaggle-zip-2019", "the older Kaggle zip (the tree as a tar.gz inside it)"),
    "bbox": Miniature(
        _write_bbox, "the ILSVRC2012 miniature with its bounding-box archives", _BUILD + " --boxes"
    ),
}
CHOICES: dict[str, Miniature] = {**MINIATURES, **ADD_ONS}
# Earlier names of layouts, still accepted ({variant}: the ImageNetV2 variant write_layout was given).
ALIASES = {"imagenetv2": "imagenetv2-{variant}", "sketch": "imagenet-sketch"}


def miniature(layout: str, variant: str = "matched-frequency") -> tuple[str, Miniature]:
    """The registry entry of ``layout`` (an alias resolved) and its canonical name; a UsageError names the
    choices."""
    name = ALIASES.get(layout, layout).format(variant=variant)
    try:
        return name, CHOICES[name]
    except KeyError:
        raise UsageError(f"Unknown sample layout {layout!r}: choose one of {', '.join(CHOICES)}.") from None


def write_miniature(
    dest: str | os.PathLike[str],
    layout: str = "ilsvrc",
    options: MiniatureOptions = MiniatureOptions(),  # noqa: B008 - frozen, so a shared default is safe
    progress: Progress = None,
) -> Written:
    """Write the miniature of ``layout`` into ``dest``."""
    _name, entry = miniature(layout)
    return entry.write(Path(dest), options, progress)


def write_layout(
    dest: str | os.PathLike[str],
    layout: str,
    *,
    wnids: Sequence[str] | None = None,
    per_class: int | Sequence[int] | None = None,
    seed: int = 0,
    variant: str = "matched-frequency",
) -> Path:
    """Write the miniature ``layout`` into ``dest`` from a class list, images per class and seed (the 21K and
    evaluation-set miniatures; ``variant`` picks the ImageNetV2 variant of ``imagenetv2``); returns ``dest``."""
    _name, entry = miniature(layout, variant)
    counts = per_class if per_class is None or isinstance(per_class, int) else tuple(per_class)
    options = MiniatureOptions(wnids=tuple(wnids) if wnids else None, per_class=counts, seed=seed)
    return entry.write(Path(dest), options, None).root
