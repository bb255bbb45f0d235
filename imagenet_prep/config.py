"""The build configuration: one frozen object built from a YAML file and/or CLI flags, validated early.

YAML keys are the long CLI option names (``train-per-class`` or ``train_per_class``); CLI flags override the
file. Every error names the bad key or value and lists what is valid.

A config file is untrusted input: it must be a regular file of at most ``MAX_CONFIG_BYTES`` (``/dev/zero`` or a
FIFO is refused before a byte is read), YAML anchors and aliases are refused (an alias bomb would otherwise
expand to gigabytes), nesting is limited to ``MAX_CONFIG_DEPTH``, and every value is type-checked: booleans are
real YAML booleans (``"false"`` in quotes is a string, not false), numbers are finite whole numbers in range,
paths and names are strings, and ``splits``/``classes`` are lists of strings or comma-separated strings.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from .build_options import (
    BY_KEY,
    IMAGE_KEYS,
    OPTIONS,
    SPLITS,
    VALID_KEYS,
    Option,
    check_splits,
    max_workers,
    parse_size,
    recorded,
)
from .errors import UsageError
from .image import ImageOptions, ResizeMode
from .records import DEFAULT_MAX_MEMBER_SIZE

__all__ = ["SPLITS", "VALID_KEYS", "BuildConfig", "build_config", "parse_size", "read_config_file"]
MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: the example configs are a few hundred bytes
MAX_CONFIG_DEPTH = 8  # a config is a flat mapping of scalars and short lists


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides what a build writes (plus how it runs: workers, allow_skips, overwrite)."""

    source: Path | str  # a folder, or the URL of one (str: http(s)://..., read by Range requests)
    out: Path | str  # a folder, or (shard outputs) an object-store URL: s3://bucket/prefix (build/remote.py)
    # () = the splits the source has (resolved by the plan, and recorded resolved: plan/make.py default_splits)
    splits: tuple[str, ...] = ()
    subset: str | None = None
    classes: tuple[str, ...] | None = None  # wnids / names, or one entry naming a file of them
    under: str | None = None
    # Image-level list (--images): a bundled name, a file, or train=FILE,val=FILE2 (plan/listed.py).
    images: str | None = None
    allow_missing: bool = False  # --images: listed images the source lacks are left out, not an error
    ignore_list_labels: bool = False  # --images: the list's labels and folders are not checked
    train_per_class: int | None = None
    val_per_class: int | None = None
    seed: int = 0
    image: ImageOptions = field(default_factory=ImageOptions)
    workers: int = 0  # 0 = all cores
    allow_skips: bool = False
    remote_min_rate: int | None = (
        None  # bytes/s of a remote read (run-only); None: the environment, else 1024
    )
    overwrite: bool = False
    wordnet: Path | None = None
    output: str = "imagefolder"  # a name in outputs.WRITERS
    executor: str = "local"  # a name in executors.EXECUTORS
    # Shard outputs (wds, parquet): samples or bytes per shard (None: the writer's default), and the train
    # split's seeded permutation. They decide the units (so the units' fingerprints), hence the output bytes.
    shard_size: str | None = None
    min_shards: int | None = None  # at least this many shards per split (a split's images allowing)
    shuffle: bool = True
    shuffle_seed: int = 0
    tfds_name: str | None = None
    max_member_size: int = DEFAULT_MAX_MEMBER_SIZE  # bytes; a larger archive member is refused, never read
    # Beyond ImageNet-1K (README "ImageNet-21K", "Bounding boxes", "Evaluation sets"):
    label_space: str | None = None  # a named label space: labels are positions in it
    holdout: int | None = None  # val = N images per class held out of train (sources without a val split)
    recipe: str | None = None  # a published processing recipe (config.RECIPES), e.g. imagenet21k-p
    min_images: int | None = None  # keep only classes with MORE than N images (the recipe's threshold)
    real_labels: bool = False  # val manifest gains a real_labels column (ReaL, ILSVRC2012 val)
    boxes: bool = False  # write boxes.csv from the ILSVRC2012 bounding-box archives
    scheduler: str | None = None  # the dask executor's scheduler: tcp://HOST:PORT or local:N
    num_shards: int | None = None  # static sharding (job arrays): this process builds shard shard_index of N
    shard_index: int | None = None
    layout: str | None = None  # a name in sources.SOURCES; None = detect it in the source folder

    def __post_init__(self) -> None:
        check_splits(self.splits, empty=True)
        self._check_images()
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
            recipe(self.recipe)  # an unknown recipe is a UsageError naming the known ones
        for name in ("holdout", "min_images"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"{name.replace('_', '-')} must be 0 or more (got {value}).")
        if (
            isinstance(self.source, Path)
            and isinstance(self.out, Path)
            and self.source.resolve() == self.out.resolve()
        ):
            raise UsageError("--out must be a folder of its own, not the --source folder.")
        _check_bounds(self)
        self._check_shards()

    def _check_images(self) -> None:
        if not self.images:
            if "test" in self.splits:
                raise UsageError(
                    f"--splits: 'test' needs an image list that fills it (--images imagenet-lt, or test=FILE); "
                    f"without one, valid splits: {', '.join(SPLITS)}."
                )
            for flag in ("allow_missing", "ignore_list_labels"):
                if getattr(self, flag):
                    raise UsageError(f"--{flag.replace('_', '-')} goes with --images (an image list).")
            return
        if self.holdout is not None or self.recipe is not None:
            raise UsageError(
                "--images decides each image's split itself: drop --holdout / --recipe (or put the held-out "
                "images in a val list: --images train=A,val=B)."
            )
        from .taxonomy.image_lists import spec_splits

        named = spec_splits(self.images)
        if named is not None and not set(self.splits) <= set(named):
            raise UsageError(
                f"--splits {','.join(self.splits)}: --images {self.images} gives lists for "
                f"{', '.join(named)} only; name those splits (or give a list for each: --images train=A,val=B)."
            )

    def _check_shards(self) -> None:
        if self.num_shards is None and self.shard_index is None:
            return
        if self.num_shards is None or self.shard_index is None:
            raise UsageError(
                "--num-shards and --shard-index go together (e.g. --num-shards 8 --shard-index 0)."
            )
        if self.num_shards < 1:
            raise UsageError(f"num-shards must be at least 1 (got {self.num_shards}).")
        if not 0 <= self.shard_index < self.num_shards:
            raise UsageError(
                f"shard-index must be 0..{self.num_shards - 1} for --num-shards {self.num_shards} "
                f"(got {self.shard_index}); with a SLURM array use --shard-index $SLURM_ARRAY_TASK_ID."
            )
        if self.overwrite:
            raise UsageError(
                "--overwrite cannot be combined with --num-shards (each shard would remove the others' work): "
                "empty the --out folder first."
            )

    @property
    def sharded(self) -> bool:
        return self.num_shards is not None

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1

    def images_at_most(self) -> int | None:
        """An upper bound of the images this build processes, from the config alone; None when it is unknown
        before planning (every class, --under, a class file, a split without a per-class limit, a holdout or a
        recipe). The executor hears it before planning, to start its workers early only if it may need them."""
        if self.holdout is not None or self.recipe is not None:
            return None
        splits = self.splits or SPLITS  # the source's splits, not known yet: at most these
        limits = [self.train_per_class if split == "train" else self.val_per_class for split in splits]
        if any(limit is None for limit in limits):
            return None
        if self.subset:
            from .taxonomy.classes import subset_wnids

            try:
                count = len(subset_wnids(self.subset))
            except UsageError:  # an unknown subset: planning says so
                return None
        elif self.classes and not (len(self.classes) == 1 and Path(self.classes[0]).is_file()):
            count = sum(1 for token in self.classes if token.strip())  # each names at most one class
        else:
            return None
        return count * sum(limit or 0 for limit in limits)

    def output_fingerprint(self, extra: Mapping[str, Any]) -> str:
        """Hash of what decides the output bytes (not workers, not flags that only change behaviour).

        Not derived from the declarations' ``decisive``: trees already built must keep their hash, and it has
        special cases a derivation would change (the selection and the shard options reach it through the
        wnids and the unit fingerprints in ``extra``; beyond-1K keys count only when truthy, so min_images 0
        adds nothing; verify and output only when not at their default). The declarations give its image and
        beyond-1K key sets; tests/unit/test_build_options.py compares it with a frozen copy of the old function."""
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
        return {option.key: getattr(self, option.key) for option in OPTIONS if option.group == "beyond-1K"}

    def image_dict(self) -> dict[str, Any]:
        return {
            key: recorded(getattr(self.image, key))
            for key in IMAGE_KEYS
            # verify's default adds nothing, so builds made before the option existed keep their fingerprint
            if not (key == "verify" and self.image.verify is True)
        }

    def to_dict(self) -> dict[str, Any]:
        """The resolved config, as written into build.json: each declared option once (build_options.py)."""
        values: dict[str, Any] = {}
        for option in OPTIONS:
            if option.record == "never":
                continue
            value = _recorded_value(self, option.key)
            if option.record == "when-set" and (value is None or value is False):
                continue
            values[option.key] = value
        return values


def _recorded_value(config: BuildConfig, key: str) -> Any:
    if key == "source":
        return _source_text(config.source)
    if key == "out":
        return str(config.out.resolve()) if isinstance(config.out, Path) else config.out
    if key == "workers":
        return config.worker_count
    if key == "shard_index" and config.num_shards is None:
        return None
    return recorded(getattr(config.image if key in IMAGE_KEYS else config, key))


MAX_MEMBER_SIZE_LIMIT = 1 << 30  # the cap itself is bounded: one positioned read, one decode


def _check_bounds(config: BuildConfig) -> None:
    """--workers bounded, the member-size cap in range, and an --out that cannot hold the --source."""
    if config.workers > max_workers():
        raise UsageError(
            f"'workers' must be between 0 and {max_workers()} (got {config.workers}): --workers above 4 x the "
            f"{os.cpu_count() or 1} cores only adds memory and start-up; omit it to use one per core."
        )
    if not 1 <= config.max_member_size <= MAX_MEMBER_SIZE_LIMIT:
        raise UsageError(
            f"--max-member-size must be 1 byte to 1GiB (got {config.max_member_size}); the default "
            f"{DEFAULT_MAX_MEMBER_SIZE >> 20}MiB is far above any real ImageNet image."
        )
    if not isinstance(config.source, Path) or not isinstance(config.out, Path):
        return  # a URL: nothing of it lives under --out
    source, out = config.source.resolve(), config.out.resolve()
    if out in source.parents:
        raise UsageError(
            f"--out {config.out} holds the --source folder {config.source}: the output would be written among "
            "the archives (and --overwrite could remove them). Choose an --out outside the source folder."
        )


_TOP_KEYS = {f.name for f in fields(BuildConfig) if f.name != "image"}
assert _TOP_KEYS | set(IMAGE_KEYS) == set(VALID_KEYS), "every BuildConfig field is a declared option"


class _Refused(Exception):
    def __init__(self, what: str, line: int) -> None:
        super().__init__(what)
        self.what, self.line = what, line


def _strict_loader() -> type:
    """yaml.SafeLoader that refuses anchors and aliases (no alias bombs) and deep nesting."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _Refused(
                    "uses YAML anchors and aliases (&name / *name), which config files do not allow: write "
                    "each value out",
                    line,
                )
            self._depth += 1
            if self._depth > MAX_CONFIG_DEPTH:
                raise _Refused(f"is nested more than {MAX_CONFIG_DEPTH} levels deep", line)
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return StrictLoader


def _read_limited(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_CONFIG_BYTES; checked on the open descriptor (O_NONBLOCK:
    opening a FIFO does not wait for a writer) before anything is read, and read with a bounded read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(f"Cannot read the config file {path}: {exc.strerror}.") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"The config file {path} is not a regular file; give the path of a YAML file.")
        if st.st_size > MAX_CONFIG_BYTES:
            raise UsageError(f"The config file {path} is larger than 1 MiB; a config is a short YAML file.")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        left = MAX_CONFIG_BYTES + 1
        while left > 0 and (chunk := os.read(fd, left)):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise UsageError(f"Cannot read the config file {path}: {exc.strerror}.") from None
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise UsageError(f"The config file {path} is larger than 1 MiB; a config is a short YAML file.")
    return data


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML config file into a flat mapping with normalised keys (unknown keys are an error)."""
    import yaml

    data = _read_limited(Path(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"The config file {path} is not UTF-8 text.") from None
    try:
        loaded = yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        raise UsageError(f"The config file {path} {exc.what} (line {exc.line}).") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"The config file {path} is not valid YAML: {str(exc).splitlines()[0]}.") from None
    except RecursionError:  # pragma: no cover - the depth limit comes first
        raise UsageError(f"The config file {path} is nested too deeply.") from None
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
    """Merge file values and CLI values (CLI wins; None means 'not given') and validate: each given value goes
    through its declared parser (build_options.py); an option not given keeps its field default."""
    merged: dict[str, Any] = dict(file_values)
    merged.update({key: value for key, value in normalise_keys(cli_values).items() if value is not None})
    for required in ("source", "out"):
        if not merged.get(required):
            raise UsageError(f"--{required} is required (on the command line or in the --config file).")
    values = {key: BY_KEY[key].parse(value, key) for key, value in merged.items()}
    if values.get("images") and "splits" not in values:  # a list's own splits (imagenet-lt: val, test)
        from .taxonomy.image_lists import spec_splits

        values["splits"] = spec_splits(values["images"]) or SPLITS
    for key in ("max_member_size",):  # null in a file: the default
        if key in values and values[key] is None:
            del values[key]
    image = {key: values.pop(key) for key in IMAGE_KEYS if key in values}
    if "size" not in image and image.get("resize") == ResizeMode.NONE:
        image["size"] = None  # --resize none alone keeps the original size
    return BuildConfig(**values, image=ImageOptions(**image))


def _source_text(source: Path | str) -> str:
    """The source as build.json records it: a URL without any ``user:password@``."""
    if isinstance(source, str):
        from .io.http import redact

        return redact(source)
    return str(source.resolve())


# ------------------------------------------------------------------------------------------------ recipes
# What a recipe name means as build defaults is configuration (validated with the config); how it splits and
# keeps classes is the plan's (plan/recipes.py).
MIIL_MIN_IMAGES = 500  # a class is kept when it has MORE than this many images
MIIL_VAL_PER_CLASS = 50


@dataclass(frozen=True)
class Recipe:
    """A published processing recipe as build defaults: classes with more than ``min_images`` images, val =
    the first ``val_per_class`` names per class in C-collation order (``config`` keys override both)."""

    name: str
    min_images: int
    val_per_class: int


# The image options are the config file's (configs/imagenet21k-p.yaml: resize squish, size 224).
RECIPES = {"imagenet21k-p": Recipe("imagenet21k-p", MIIL_MIN_IMAGES, MIIL_VAL_PER_CLASS)}


def recipe(name: str) -> Recipe:
    found = RECIPES.get(name.strip().lower())
    if found is None:
        raise UsageError(f"Unknown recipe '{name}': use one of {', '.join(RECIPES)}.")
    return found


# ------------------------------------------------------------------------------------------- declared options
# What needs both the declarations (build_options.py) and the config's field defaults lives here, so that the
# declarations import no config.
def default_of(option: Option) -> Any:
    """The option's default: its BuildConfig (image: ImageOptions) field default."""
    owner = ImageOptions if option.group == "image" else BuildConfig
    for declared in fields(owner):
        if declared.name == option.key:
            if declared.default is not MISSING:
                return declared.default
            return None  # source and out: required
    raise LookupError(option.key)


def command_words(config: Mapping[str, Any], out: Path | str | None = None, every: bool = False) -> list[str]:
    """The ``build`` flags that reproduce a recorded config (build.json's ``config``): every option the repair
    repeats (``every``: every option), unless it is at its default."""
    words: list[str] = []
    for option in OPTIONS:
        value = out if option.key == "out" and out is not None else config.get(option.key)
        if option.key in ("source", "out"):
            words += [option.flag, str(value or option.key.upper())]
            continue
        if not (option.repair or every) or value is None or value == recorded(default_of(option)):
            continue
        if option.cli_type is bool:
            if value:
                words.append(option.flag)
            elif option.negative:
                words.append(option.negative)
        else:
            words += [option.flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return words
