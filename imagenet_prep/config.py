"""The build configuration: one frozen object built from a YAML file and/or CLI flags, validated early.

YAML keys are the long CLI option names (``train-per-class`` or ``train_per_class``); CLI flags override the
file. Every error names the bad key or value and lists what is valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import UsageError
from .image import ImageOptions, OutputFormat, ResampleFilter, ResizeMode, Resizer, coerce_enum
from .records import DEFAULT_MAX_MEMBER_SIZE

SPLITS = ("train", "val")


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides what a build writes (plus how it runs: workers, allow_skips, overwrite)."""

    source: Path
    out: Path
    splits: tuple[str, ...] = SPLITS
    subset: str | None = None
    classes: tuple[str, ...] | None = None  # wnids / names, or one entry naming a file of them
    under: str | None = None
    train_per_class: int | None = None
    val_per_class: int | None = None
    seed: int = 0
    image: ImageOptions = field(default_factory=ImageOptions)
    workers: int = 0  # 0 = all cores
    allow_skips: bool = False
    overwrite: bool = False
    wordnet: Path | None = None
    output: str = "imagefolder"  # a name in outputs.WRITERS
    executor: str = "local"  # a name in executors.EXECUTORS
    # Shard outputs (wds, parquet): samples or bytes per shard (None: the writer's default), and the train
    # split's seeded permutation. They decide the units (so the units' fingerprints), hence the output bytes.
    shard_size: str | None = None
    shuffle: bool = True
    shuffle_seed: int = 0
    max_member_size: int = DEFAULT_MAX_MEMBER_SIZE  # bytes; a larger archive member is refused, never read
    # Beyond ImageNet-1K (README "ImageNet-21K", "Bounding boxes", "Evaluation sets"):
    label_space: str | None = None  # a named label space: labels are positions in it
    holdout: int | None = None  # val = N images per class held out of train (sources without a val split)
    recipe: str | None = None  # a published processing recipe (recipes_21k.RECIPES), e.g. imagenet21k-p
    min_images: int | None = None  # keep only classes with MORE than N images (the recipe's threshold)
    real_labels: bool = False  # val manifest gains a real_labels column (ReaL, ILSVRC2012 val)
    boxes: bool = False  # write boxes.csv from the ILSVRC2012 bounding-box archives

    def __post_init__(self) -> None:
        if not self.splits or any(split not in SPLITS for split in self.splits):
            raise UsageError(
                f"splits must be a comma-separated list of {', '.join(SPLITS)}; got {self.splits!r}."
            )
        chosen = [name for name in ("subset", "classes", "under") if getattr(self, name)]
        if len(chosen) > 1:
            raise UsageError(f"Choose one of --subset, --classes, --under (got {', '.join(chosen)}).")
        for name in ("train_per_class", "val_per_class"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(
                    f"{name.replace('_', '-')} must be at least 1 (got {value}); omit it for all."
                )
        if self.workers < 0:
            raise UsageError(f"workers must be 0 (all cores) or more (got {self.workers}).")
        if self.recipe is not None:
            from .recipes_21k import recipe

            recipe(self.recipe)  # an unknown recipe is a UsageError naming the known ones
        for name in ("holdout", "min_images"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"{name.replace('_', '-')} must be 0 or more (got {value}).")
        if self.source.resolve() == self.out.resolve():
            raise UsageError("--out must be a folder of its own, not the --source folder.")
        _check_bounds(self)

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1

    def output_fingerprint(self, extra: Mapping[str, Any]) -> str:
        """Hash of what decides the output bytes (not workers, not flags that only change behaviour)."""
        decisive = {
            "splits": list(self.splits),
            "train_per_class": self.train_per_class,
            "val_per_class": self.val_per_class,
            "seed": self.seed,
            "image": self.image_dict(),
            **extra,
            # Options beyond the 1K add a key only when used, so earlier trees keep their fingerprint.
            **{key: value for key, value in self.beyond_dict().items() if value},
            # The default output adds nothing, so trees built before outputs were pluggable still resume.
            **({"output": self.output} if self.output != "imagefolder" else {}),
        }
        return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:16]

    def beyond_dict(self) -> dict[str, Any]:
        return {
            "label_space": self.label_space,
            "holdout": self.holdout,
            "recipe": self.recipe,
            "min_images": self.min_images,
            "real_labels": self.real_labels,
            "boxes": self.boxes,
        }

    def image_dict(self) -> dict[str, Any]:
        return {
            key: (value.value if hasattr(value, "value") else value)
            for key, value in asdict(self.image).items()
            # verify's default adds nothing, so builds made before the option existed keep their fingerprint
            if not (key == "verify" and value is True)
        }

    def to_dict(self) -> dict[str, Any]:
        """The resolved config, as written into build.json."""
        return {
            "source": str(self.source.resolve()),
            "out": str(self.out.resolve()),
            "splits": list(self.splits),
            "subset": self.subset,
            "classes": list(self.classes) if self.classes else None,
            "under": self.under,
            "train_per_class": self.train_per_class,
            "val_per_class": self.val_per_class,
            "seed": self.seed,
            **self.image_dict(),
            "workers": self.worker_count,
            "allow_skips": self.allow_skips,
            "output": self.output,
            "executor": self.executor,
            "verify": self.image.verify,
            "shard_size": self.shard_size,
            "shuffle": self.shuffle,
            "shuffle_seed": self.shuffle_seed,
            "max_member_size": self.max_member_size,
            **self.beyond_dict(),
        }


MAX_MEMBER_SIZE_LIMIT = 1 << 30  # the cap itself is bounded: one positioned read, one decode


def max_workers() -> int:
    """The most --workers accepted: 4 x the cores (more only adds memory and start-up, never speed)."""
    return 4 * (os.cpu_count() or 1)


def _check_bounds(config: BuildConfig) -> None:
    """--workers bounded, the member-size cap in range, and an --out that cannot hold the --source."""
    if config.workers > max_workers():
        raise UsageError(
            f"--workers {config.workers} is too many: at most {max_workers()} (4 x the {os.cpu_count() or 1} "
            "cores); omit it to use one per core."
        )
    if not 1 <= config.max_member_size <= MAX_MEMBER_SIZE_LIMIT:
        raise UsageError(
            f"--max-member-size must be 1 byte to 1GiB (got {config.max_member_size}); the default "
            f"{DEFAULT_MAX_MEMBER_SIZE >> 20}MiB is far above any real ImageNet image."
        )
    source, out = config.source.resolve(), config.out.resolve()
    if out in source.parents:
        raise UsageError(
            f"--out {config.out} holds the --source folder {config.source}: the output would be written among "
            "the archives (and --overwrite could remove them). Choose an --out outside the source folder."
        )


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)


def parse_size(value: Any, key: str) -> int:
    """Bytes from an int or a string like ``64MiB``, ``64M``, ``65536`` (K/M/G are powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE_RE.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise UsageError(
            f"'{key.replace('_', '-')}' must be a size in bytes, like 67108864 or 64MiB (got {value!r})."
        )
    unit = (match.group(2) or "b")[0].lower()
    return int(match.group(1)) << {"b": 0, "k": 10, "m": 20, "g": 30}[unit]


_IMAGE_KEYS = {"resize", "size", "quality", "format", "filter", "upscale", "draft", "resizer", "verify"}
_TOP_KEYS = {f.name for f in fields(BuildConfig) if f.name != "image"}
VALID_KEYS = tuple(sorted(_TOP_KEYS | _IMAGE_KEYS))


def _as_list(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [str(part).strip() for part in value]
    else:
        raise UsageError(f"'{key}' must be a list or a comma-separated string (got {value!r}).")
    return tuple(item for item in items if item)


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise UsageError(f"'{key}' must be a whole number (got {value!r}).")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"'{key}' must be a whole number (got {value!r}).") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML config file into a flat mapping with normalised keys (unknown keys are an error)."""
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"Cannot read the config file {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"The config file {path} is not valid YAML: {str(exc).splitlines()[0]}.") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UsageError(f"The config file {path} must hold a mapping of option: value.")
    return normalise_keys(loaded, origin=str(path))


def normalise_keys(mapping: Mapping[str, Any], origin: str = "options") -> dict[str, Any]:
    result = {}
    for raw_key, value in mapping.items():
        key = str(raw_key).replace("-", "_")
        if key not in VALID_KEYS:
            valid = ", ".join(k.replace("_", "-") for k in VALID_KEYS)
            raise UsageError(f"Unknown key '{raw_key}' in {origin}. Valid keys: {valid}.")
        result[key] = value
    return result


def build_config(file_values: Mapping[str, Any], cli_values: Mapping[str, Any]) -> BuildConfig:
    """Merge file values and CLI values (CLI wins; None means 'not given') and validate."""
    merged: dict[str, Any] = dict(file_values)
    merged.update({key: value for key, value in normalise_keys(cli_values).items() if value is not None})
    for required in ("source", "out"):
        if not merged.get(required):
            raise UsageError(f"--{required} is required (on the command line or in the --config file).")

    image_kwargs: dict[str, Any] = {}
    for key, enum_type, what in (
        ("resize", ResizeMode, "resize mode"),
        ("format", OutputFormat, "output format"),
        ("filter", ResampleFilter, "resample filter"),
        ("resizer", Resizer, "resizer"),
    ):
        if key in merged:  # coerced once, here; ImageOptions accepts the enum members as they are
            image_kwargs[key] = coerce_enum(enum_type, merged[key], what)
    if "size" in merged:
        image_kwargs["size"] = None if merged["size"] in (None, "none") else _int(merged["size"], "size")
    elif image_kwargs.get("resize") == ResizeMode.NONE:
        image_kwargs["size"] = None
    if "quality" in merged:
        image_kwargs["quality"] = _int(merged["quality"], "quality")
    for flag in ("upscale", "draft"):
        if flag in merged:
            image_kwargs[flag] = bool(merged[flag])
    if "verify" in merged:
        image_kwargs["verify"] = bool(merged["verify"])
    image = ImageOptions(**image_kwargs)

    classes = merged.get("classes")
    return BuildConfig(
        source=Path(merged["source"]).expanduser(),
        out=Path(merged["out"]).expanduser(),
        splits=_as_list(merged.get("splits", ",".join(SPLITS)), "splits"),
        subset=merged.get("subset") or None,
        classes=_as_list(classes, "classes") if classes else None,
        under=merged.get("under") or None,
        train_per_class=None
        if merged.get("train_per_class") is None
        else _int(merged["train_per_class"], "n"),
        val_per_class=None if merged.get("val_per_class") is None else _int(merged["val_per_class"], "n"),
        seed=_int(merged.get("seed", 0), "seed"),
        image=image,
        workers=_int(merged.get("workers", 0), "workers"),
        allow_skips=bool(merged.get("allow_skips", False)),
        overwrite=bool(merged.get("overwrite", False)),
        wordnet=Path(merged["wordnet"]).expanduser() if merged.get("wordnet") else None,
        output=str(merged.get("output") or "imagefolder"),
        executor=str(merged.get("executor") or "local"),
        shard_size=None if merged.get("shard_size") is None else str(merged["shard_size"]),
        shuffle=bool(merged.get("shuffle", True)),
        shuffle_seed=_int(merged.get("shuffle_seed", 0), "shuffle-seed"),
        **(
            {"max_member_size": parse_size(merged["max_member_size"], "max_member_size")}
            if merged.get("max_member_size") is not None
            else {}
        ),
        label_space=str(merged["label_space"]) if merged.get("label_space") else None,
        holdout=None if merged.get("holdout") is None else _int(merged["holdout"], "holdout"),
        recipe=str(merged["recipe"]).strip().lower() if merged.get("recipe") else None,
        min_images=None if merged.get("min_images") is None else _int(merged["min_images"], "min-images"),
        real_labels=bool(merged.get("real_labels", False)),
        boxes=bool(merged.get("boxes", False)),
    )
