"""Every build option, declared once: its config key, CLI flag(s), parser, help, group, and whether it decides
the output bytes. The rest is derived from this table: the ``build`` command's parameters (cli/build_cmd.py),
YAML key validation and parsing and ``to_dict`` (config.py), the settings diff and the run-only keys
(build/orchestrator.py), the repair command (outputs/record.py) and docs/options.md
(scripts/gen_options_doc.py). An option's default is its ``BuildConfig`` (or, group ``image``, its
``ImageOptions``) field default, read from the dataclass.

Light on purpose: the CLI imports it to declare its parameters, so it imports nothing beyond the standard
library and ``errors``; enums and registries are imported when a value is parsed or a help list is shown.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from .errors import UsageError

GROUPS = ("input", "selection", "image", "writer", "beyond-1K", "executor", "sharding", "run-only")
#: Groups whose keys only change how a build runs, not what it writes.
RUN_GROUPS = ("executor", "sharding", "run-only")
SPLITS = ("train", "val")  # the default; a list (--images) may also build test
OUTPUT_SPLITS = (*SPLITS, "test")
_SEED_LIMIT = 2**63


# ------------------------------------------------------------------------------------------------ parsers
def _name(key: str) -> str:
    return key.replace("_", "-")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_list(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)) and all(isinstance(part, str) for part in value):
        items = [part.strip() for part in value]
    else:
        raise UsageError(
            f"'{_name(key)}' must be a list of names or a comma-separated string (got {_shown(value)})."
        )
    return tuple(item for item in items if item)


def check_splits(splits: tuple[str, ...], empty: bool = False) -> tuple[str, ...]:
    """``splits`` when each is a known split; none at all only when ``empty`` (a config built in Python: the
    splits the source has). A value given (--splits, a YAML key) must name one."""
    unknown = [split for split in splits if split not in OUTPUT_SPLITS]
    if unknown or not (splits or empty):
        got = f"unknown split {', '.join(repr(s) for s in unknown)}" if unknown else "no split"
        raise UsageError(
            f"--splits: {got}. Valid splits: {', '.join(SPLITS)}, and test with an --images list "
            "(comma-separated, e.g. --splits train,val)."
        )
    return splits


def whole(value: Any, key: str, low: int | None = None, high: int | None = None) -> int:
    """A whole number: an int, a float with no fraction (``256.0``) or a string of digits; finite, and within
    [low, high] when given."""
    whole_float = isinstance(value, float) and math.isfinite(value) and value.is_integer()
    digits = isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,40}\s*", value) is not None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif whole_float or digits:
        number = int(value)
    if number is None:
        raise UsageError(f"'{_name(key)}' must be a whole number (got {_shown(value)}).")
    if (low is not None and number < low) or (high is not None and number > high):
        bound = (
            f"between {low} and {high}"
            if low is not None and high is not None
            else f"at least {low}"
            if low is not None
            else f"at most {high}"
        )
        raise UsageError(f"'{_name(key)}' must be {bound} (got {number}).")
    return number


def boolean(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    hint = " (a quoted string, not a boolean)" if isinstance(value, str) else ""
    raise UsageError(f"'{_name(key)}' must be true or false (got {_shown(value)}{hint}).")


def text(value: Any, key: str) -> str:
    """A path or a name: a string (or a path object from the CLI), never a number, list or mapping."""
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    if isinstance(value, str):
        return value
    raise UsageError(
        f"'{_name(key)}' must be a string (got {_shown(value)}); put it in quotes if it is a name that looks "
        "like a number."
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


Parser = Callable[[Any, str], Any]


def _unset_is_none(parse: Parser) -> Parser:
    """None (a YAML ``null``) means 'not set'; anything else goes through ``parse``."""
    return lambda value, key: None if value is None else parse(value, key)


def _empty_is_none(parse: Parser) -> Parser:
    """Any empty value ('' or null) means 'not set'."""
    return lambda value, key: parse(value, key) if value else None


def _optional_text(value: Any, key: str) -> str | None:
    return None if value is None else (text(value, key) or None)


def _enum(name: str, label: str) -> Parser:
    def parse(value: Any, key: str) -> Any:
        image = import_module("imagenet_prep.image.options")  # PIL: only once a value is parsed
        enum_type = getattr(image, name)
        if not isinstance(value, (str, enum_type)):
            raise UsageError(f"'{_name(key)}' must be a string (got {_shown(value)}).")
        return image.coerce_enum(enum_type, value, label)  # coerced once; ImageOptions takes it as it is

    return parse


def _size(value: Any, key: str) -> int | None:
    return None if value in (None, "none") else whole(value, key)


def _per_class(value: Any, key: str) -> int:
    return whole(value, key, high=10**9)


def _bounded(low: int | None, high: int | None) -> Parser:
    return lambda value, key: whole(value, key, low, high)


def max_workers() -> int:
    """The most worker processes accepted (--workers, --scheduler local:N): 4 x the cores (more only adds memory
    and start-up, never speed)."""
    return 4 * (os.cpu_count() or 1)


#: The most static shards: far above any job array (SLURM's default MaxArraySize is 1001), far below what costs
#: memory (each shard is a list in the plan state; 10**8 of them took > 6 GB).
MAX_NUM_SHARDS = 10_000

#: Dask address schemes a build can reach over a network (``inproc://`` lives inside one process; ``udp://`` is
#: no Dask scheme).
DASK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


def parse_scheduler(value: Any, key: str) -> str:
    """--scheduler: ``local:N`` (N worker processes, bounded like --workers) or a Dask address of a network scheme."""
    address = text(value, key).strip()
    if address.startswith("local:"):
        count = address.partition(":")[2]
        if not count.isdigit() or not 1 <= int(count) <= max_workers():
            raise UsageError(
                f"--scheduler {_shown(address)}: write local:N with N worker processes, 1 to {max_workers()} "
                f"(4 x the {os.cpu_count() or 1} cores; e.g. local:4)."
            )
        return address
    scheme = address.partition("://")[0] if "://" in address else ""
    if scheme not in DASK_SCHEMES:
        raise UsageError(
            f"--scheduler {_shown(address)} is not a Dask scheduler address: use tcp://HOST:PORT (or "
            f"{', '.join(s + '://' for s in DASK_SCHEMES[1:])}) or local:N."
        )
    return address


def _source(value: Any, key: str) -> Path | str:
    """--source: a folder, or a URL of one (kept as text: a Path would fold its ``//``)."""
    from .io.bytesource import is_remote

    value = text(value, key)
    return value if is_remote(value) else Path(value).expanduser()


def _out(value: Any, key: str) -> Path | str:
    """--out: a folder, or an object-store URL kept as text (io/objectstore.py says which schemes it writes)."""
    value = text(value, key)
    if "://" in value:
        from .io.objectstore import out_url

        return out_url(value)
    return Path(value).expanduser()


def _wordnet(value: Any, key: str) -> Path | None:
    folder = _optional_text(value, key)
    return Path(folder).expanduser() if folder else None


def _images(value: Any, key: str) -> str | None:
    """--images: a bundled list name, a file, or train=FILE,val=FILE2; file paths recorded absolute."""
    spec = _optional_text(value, key)
    if not spec:
        return None
    from .taxonomy.image_lists import normalise_spec

    return normalise_spec(spec)


def _name_or(default: str) -> Parser:
    return lambda value, key: str(value) if value else default


# ------------------------------------------------------------------------------------------ help lists
def _registry(module: str, name: str) -> Callable[[], tuple[str, ...]]:
    return lambda: tuple(getattr(import_module(module), name))


def _enum_values(name: str) -> Callable[[], tuple[str, ...]]:
    return lambda: tuple(
        member.value for member in getattr(import_module("imagenet_prep.image.options"), name)
    )


#: Placeholder in a help text -> the names it lists, read from the registry or enum when help is shown.
CHOICES: dict[str, Callable[[], tuple[str, ...]]] = {
    "layouts": _registry("imagenet_prep.sources", "SOURCES"),
    "outputs": _registry("imagenet_prep.outputs", "WRITERS"),
    "executors": _registry("imagenet_prep.executors", "EXECUTORS"),
    "resize_modes": _enum_values("ResizeMode"),
    "formats": _enum_values("OutputFormat"),
    "filters": _enum_values("ResampleFilter"),
    "resizers": _enum_values("Resizer"),
}


def listed(help_text: str) -> str:
    """``help_text`` with its ``{layouts}``-style placeholders replaced by the names (imports only what it
    names; any other brace is left as it is)."""
    for name, names in CHOICES.items():
        placeholder = "{" + name + "}"
        if placeholder in help_text:
            help_text = help_text.replace(placeholder, ", ".join(names()))
    return help_text


# ---------------------------------------------------------------------------------------- declarations
@dataclass(frozen=True)
class Option:
    """One build option. ``flags``: the CLI spelling (``--x/--no-x`` for a pair; empty: not on the command
    line); ``cli_type``: what the command line hands over (the parser makes the config value of it);
    ``record``: how build.json records it (``always``, ``when-set``: only when not None nor False, ``never``);
    ``repair``: whether the repair command repeats it."""

    key: str
    group: str
    help: str
    parse: Parser
    decisive: bool
    flags: tuple[str, ...] = ()
    cli_type: type = str
    record: str = "always"
    repair: bool = True

    @property
    def flag(self) -> str:
        """The main flag (``--upscale`` of ``--upscale/--no-upscale``)."""
        return self.flags[0].split("/")[0] if self.flags else f"--{_name(self.key)}"

    @property
    def negative(self) -> str | None:
        """The ``--no-x`` flag of a pair, else None."""
        return self.flags[0].split("/")[1] if self.flags and "/" in self.flags[0] else None

    @property
    def run_only(self) -> bool:
        return self.group in RUN_GROUPS

    def help_text(self) -> str:
        """The help with its ``{layouts}``-style lists filled in from the registries (imports them)."""
        return listed(self.help)


def _option(
    key: str, group: str, help: str, parse: Parser, decisive: bool, flag: str | None = None, **more: Any
) -> Option:
    return Option(key, group, help, parse, decisive, (flag or f"--{_name(key)}",), **more)


OPTIONS: tuple[Option, ...] = (
    # Text, not Path: a Path folds the '//' of a URL (--source s3://bucket/prefix/, --out s3://bucket/prefix).
    _option(
        "source",
        "input",
        "Folder holding a copy of ImageNet in any layout: {layouts} (or its https://, s3:// or gs:// URL).",
        _source,
        True,
    ),
    _option(
        "out",
        "input",
        "Output folder for the tree (shard outputs: also s3:// or gs://bucket/prefix). Given alone, re-runs the "
        "configuration recorded in it.",
        _out,
        False,
    ),
    _option(
        "splits",
        "selection",
        "Splits to build: train,val (default: the splits the source has; an evaluation set: val).",
        lambda value, key: check_splits(as_list(value, key)),
        True,
    ),
    _option(
        "subset",
        "selection",
        "Named subset (imagenette, imagewoof, imagenet-100, ...).",
        _optional_text,
        True,
    ),
    _option(
        "classes",
        "selection",
        "Comma-separated wnids or names, or a file of them.",
        _empty_is_none(as_list),
        True,
    ),
    _option("under", "selection", "The 1K classes under a WordNet synset (dog.n.01).", _optional_text, True),
    _option(
        "images",
        "selection",
        "Image-level list: a file (names or paths, optional label), train=FILE,val=FILE2, or a bundled list "
        "(simclr-1pct, simclr-10pct, imagenet-lt, imagenet-lt-val, imagenet-lt-test).",
        _images,
        True,
        record="when-set",
    ),
    _option(
        "allow_missing",
        "selection",
        "--images: build the listed images the source holds (default: a listed image it lacks is an error).",
        boolean,
        False,
        cli_type=bool,
        record="when-set",
    ),
    _option(
        "ignore_list_labels",
        "selection",
        "--images: do not check the list's labels and folders against the source's classes.",
        boolean,
        False,
        cli_type=bool,
        record="when-set",
    ),
    _option(
        "train_per_class",
        "selection",
        "Seeded sample of N train images per class.",
        _unset_is_none(_per_class),
        True,
        cli_type=int,
    ),
    _option(
        "val_per_class",
        "selection",
        "Seeded sample of N val images per class.",
        _unset_is_none(_per_class),
        True,
        cli_type=int,
    ),
    _option(
        "seed",
        "selection",
        "Seed for the per-class samples (default 0).",
        _bounded(-_SEED_LIMIT, _SEED_LIMIT - 1),
        True,
        cli_type=int,
    ),
    _option(
        "resize",
        "image",
        "Resize mode: {resize_modes} (default shorter). square and center-crop always give exactly size x size "
        "(a smaller image is enlarged); shorter and longer enlarge only with --upscale. adm (alias "
        "center-crop-dhariwal: guided-diffusion's center_crop_arr) and downsampled (alias chrabaszcz: Downsampled "
        "ImageNet's squash) run the published Pillow calls on the full decode, pixel for pixel.",
        _enum("ResizeMode", "resize mode"),
        True,
    ),
    _option(
        "size",
        "image",
        "Target size in pixels (default 256; none with --resize none).",
        _size,
        True,
        cli_type=int,
    ),
    _option("quality", "image", "JPEG/WebP quality 1-100 (default 90).", whole, True, cli_type=int),
    _option(
        "format",
        "image",
        "Output format: {formats} (default jpeg). WebP trees: torchvision's ImageFolder and datasets' "
        "imagefolder list .webp; Keras and timm do not by default (timm: add_img_extensions('.webp')).",
        _enum("OutputFormat", "format"),
        True,
    ),
    _option(
        "filter",
        "image",
        "Resampling filter: {filters} (default bicubic).",
        _enum("ResampleFilter", "filter"),
        True,
    ),
    _option(
        "upscale",
        "image",
        "shorter/longer: enlarge images smaller than --size (default: keep them). square and center-crop "
        "always enlarge to size x size.",
        boolean,
        True,
        "--upscale/--no-upscale",
        cli_type=bool,
    ),
    _option(
        "draft",
        "image",
        "Let the JPEG decoder downscale while decoding when the target is much smaller (default); "
        "--no-draft decodes every image at full size.",
        boolean,
        True,
        "--draft/--no-draft",
        cli_type=bool,
    ),
    _option(
        "resizer",
        "image",
        "Resize engine: {resizers} (default pillow; fast is SIMD: pip install 'imagenet-prep[fast]'; auto: "
        "fast when it is installed, else pillow; build.json records the engine used).",
        _enum("Resizer", "resizer"),
        True,
    ),
    _option(
        "verify",
        "image",
        "Decode images kept as they are (--resize none) to prove them whole (default); --no-verify skips it.",
        boolean,
        True,
        "--verify/--no-verify",
        cli_type=bool,
    ),
    # the upper bound of --workers: config._check_bounds (it depends on the machine)
    _option(
        "workers",
        "executor",
        "Worker processes (default: all cores).",
        _bounded(0, None),
        False,
        cli_type=int,
        repair=False,
    ),
    _option(
        "allow_skips", "run-only", "Exit 0 even when bad images were skipped.", boolean, False, cli_type=bool
    ),
    _option(
        "remote_min_rate",
        "run-only",
        "Remote sources: a read slower than this many bytes/s over 30 s fails the build in one line (as fetch "
        "--min-rate; default 1024, or IMAGENET_PREP_HTTP_MIN_RATE; 0: no minimum).",
        _unset_is_none(_bounded(0, 10**12)),
        False,
        cli_type=int,
        record="when-set",
    ),
    _option(
        "overwrite",
        "run-only",
        "Replace a tree built with another config.",
        boolean,
        False,
        cli_type=bool,
        record="never",
        repair=False,
    ),
    _option(
        "wordnet",
        "input",
        "WordNet 3.0 dict folder (for --under).",
        _wordnet,
        False,
        cli_type=Path,
        record="when-set",
    ),
    _option("output", "writer", "Output: {outputs} (default imagefolder).", _name_or("imagefolder"), True),
    _option(
        "executor", "executor", "Where units run: {executors} (default local).", _name_or("local"), False
    ),
    _option(
        "shard_size",
        "writer",
        "shard outputs: samples per shard (5000) or bytes (1GB; planned from the source image sizes).",
        _unset_is_none(lambda value, key: str(value)),
        True,
    ),
    _option(
        "min_shards",
        "writer",
        "wds/parquet: at least N shards per split (fewer only when a split has fewer images): when "
        "--shard-size gives fewer, the split is cut into N even shards. Set it to loader workers x GPUs "
        "(e.g. 8 x 8 = 64); a build with fewer than 16 shards in a split warns. Default: not set.",
        _unset_is_none(_bounded(1, 10**6)),
        True,
        cli_type=int,
        record="when-set",
    ),
    _option(
        "shuffle",
        "writer",
        "shard outputs: shuffle the train split across shards (default).",
        boolean,
        True,
        "--shuffle/--no-shuffle",
        cli_type=bool,
    ),
    _option(
        "shuffle_seed",
        "writer",
        "shard outputs: seed of the train shuffle (default 0).",
        whole,
        True,
        cli_type=int,
    ),
    _option(
        "tfds_name",
        "writer",
        "tfds: the dataset name (default imagenet2012 for the full set, else derived from the build).",
        _empty_is_none(lambda value, key: str(value)),
        True,
        record="when-set",
    ),
    _option(
        "max_member_size",
        "input",
        "Refuse archive members larger than this (bytes, or 64MiB / 512K; default 64MiB, at most 1GiB).",
        lambda value, key: None if value is None else parse_size(value, key),
        True,
    ),
    _option(
        "label_space",
        "beyond-1K",
        "Label space (labels = positions in it): imagenet-1k, imagenet22k, imagenet12k, imagenet21k-p, "
        "imagenet21k-p-w21, imagenet22k-ms, goog.",
        _empty_is_none(lambda value, key: str(value)),
        True,
    ),
    _option(
        "holdout",
        "beyond-1K",
        "Val = N images per class held out of train (seeded; sources without val).",
        _unset_is_none(_bounded(1, 10**9)),
        True,
        cli_type=int,
    ),
    _option(
        "recipe",
        "beyond-1K",
        "Published recipe: imagenet21k-p (MIIL ImageNet-21K-P).",
        _empty_is_none(lambda value, key: str(value).strip().lower()),
        True,
    ),
    _option(
        "min_images",
        "beyond-1K",
        "Keep only classes with more than N images.",
        _unset_is_none(_bounded(0, 10**9)),
        True,
        cli_type=int,
    ),
    _option(
        "real_labels",
        "beyond-1K",
        "val.csv gains a real_labels column (ReaL labels).",
        boolean,
        True,
        cli_type=bool,
    ),
    _option(
        "boxes",
        "beyond-1K",
        "Write boxes.csv from the ILSVRC2012 bounding-box archives.",
        boolean,
        True,
        cli_type=bool,
    ),
    _option(
        "scheduler",
        "executor",
        "For --executor dask: a scheduler address tcp://HOST:PORT, or local:N for N local workers (N at most "
        "4 x the cores; schemes tcp, tls, ws, wss, ucx).",
        _empty_is_none(parse_scheduler),
        False,
        record="when-set",
    ),
    # A repair runs the whole build again (not one shard of it): it rebuilds what is damaged in every shard.
    _option(
        "num_shards",
        "sharding",
        f"Static sharding (job arrays): split the build into N shards (at most {MAX_NUM_SHARDS}); then `finalize`.",
        _unset_is_none(_bounded(None, MAX_NUM_SHARDS)),
        False,
        cli_type=int,
        record="when-set",
        repair=False,
    ),
    _option(
        "shard_index",
        "sharding",
        "Which shard this process builds: 0..N-1 (e.g. $SLURM_ARRAY_TASK_ID).",
        _unset_is_none(whole),
        False,
        cli_type=int,
        record="when-set",
        repair=False,
    ),
    _option(
        "layout",
        "input",
        "Source layout (default: detected): {layouts}.",
        _empty_is_none(lambda value, key: str(value)),
        False,
    ),
)

BY_KEY: dict[str, Option] = {option.key: option for option in OPTIONS}
IMAGE_KEYS: tuple[str, ...] = tuple(option.key for option in OPTIONS if option.group == "image")
RUN_ONLY_KEYS: tuple[str, ...] = tuple(option.key for option in OPTIONS if option.run_only)
VALID_KEYS: tuple[str, ...] = tuple(sorted(BY_KEY))


def recorded(value: Any) -> Any:
    """A config value as build.json records it (JSON: enums by value, tuples as lists, paths as text)."""
    if hasattr(value, "value"):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return value
