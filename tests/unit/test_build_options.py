"""Every build option is declared once (imagenet_prep/build_options.py) and everything else derives from it: the
`build` command's flags, YAML keys and parsing, to_dict, the settings, the run-only keys, the repair command and
the help lists. These tests walk the declarations; the end-to-end repair is in test_repair_command.py."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from support import REPO
from typer.testing import CliRunner

from imagenet_prep.build.orchestrator import RUN_ONLY_KEYS, settings_of
from imagenet_prep.build_options import BY_KEY, OPTIONS, recorded
from imagenet_prep.cli import app
from imagenet_prep.cli.build_cmd import build_command
from imagenet_prep.config import (
    VALID_KEYS,
    BuildConfig,
    build_config,
    command_words,
    default_of,
    read_config_file,
)
from imagenet_prep.errors import UsageError
from imagenet_prep.executors import EXECUTORS
from imagenet_prep.image import ImageOptions, OutputFormat, ResampleFilter, ResizeMode, Resizer
from imagenet_prep.outputs import WRITERS
from imagenet_prep.outputs.record import rebuild_command
from imagenet_prep.sources import SOURCES

# One non-default value per option (as a YAML file would give it); options that only go together share a case.
NON_DEFAULT: dict[str, dict[str, Any]] = {
    "source": {"source": "elsewhere/src"},
    "out": {"out": "elsewhere/out"},
    "splits": {"splits": ["val"]},
    "subset": {"subset": "imagewoof"},
    "classes": {"classes": ["n01440764", "n02102040"]},
    "under": {"under": "dog.n.01"},
    "images": {"images": "simclr-1pct"},
    "allow_missing": {"images": "simclr-1pct", "allow_missing": True},
    "ignore_list_labels": {"images": "imagenet-lt", "ignore_list_labels": True},
    "train_per_class": {"train_per_class": 7},
    "val_per_class": {"val_per_class": 3},
    "seed": {"seed": -5},
    "resize": {"resize": "center-crop"},
    "size": {"size": 64},
    "quality": {"quality": 70},
    "format": {"format": "webp"},
    "filter": {"filter": "box"},
    "upscale": {"upscale": True},
    "draft": {"draft": False},
    "resizer": {"resizer": "fast"},
    "verify": {"verify": False},
    "workers": {"workers": 2},
    "allow_skips": {"allow_skips": True},
    "remote_min_rate": {"remote_min_rate": 4096},
    "overwrite": {"overwrite": True},
    "wordnet": {"wordnet": "/usr/share/wordnet"},
    "output": {"output": "wds"},
    "executor": {"executor": "dask"},
    "shard_size": {"shard_size": "100"},
    "min_shards": {"min_shards": 8},
    "shuffle": {"shuffle": False},
    "shuffle_seed": {"shuffle_seed": 3},
    "tfds_name": {"output": "tfds", "tfds_name": "imagenette_10c"},
    "max_member_size": {"max_member_size": "1MiB"},
    "label_space": {"label_space": "imagenet12k"},
    "holdout": {"holdout": 2},
    "recipe": {"recipe": "imagenet21k-p"},
    "min_images": {"min_images": 4},
    "real_labels": {"real_labels": True},
    "boxes": {"boxes": True},
    "scheduler": {"scheduler": "tcp://127.0.0.1:8786"},
    "num_shards": {"num_shards": 3, "shard_index": 2},
    "shard_index": {"num_shards": 2, "shard_index": 0},
    "layout": {"layout": "winter21"},
}
EXTRA_CASES = {"resize none": {"resize": "none"}, "min_images 0": {"min_images": 0}}


def _yaml(values: dict[str, Any]) -> str:
    """A config file: hyphenated keys, YAML values (json is YAML)."""
    return "".join(f"{key.replace('_', '-')}: {json.dumps(value)}\n" for key, value in values.items())


def _from_yaml(tmp_path: Path, values: dict[str, Any]) -> BuildConfig:
    base = {"source": str(tmp_path / "src"), "out": str(tmp_path / "out")}
    path = tmp_path / "config.yaml"
    path.write_text(_yaml({**base, **values}))
    return build_config(read_config_file(path), {})


def _values(config: BuildConfig) -> dict[str, Any]:
    """Every declared option's value, as build.json would record it (workers as given, not resolved)."""
    return {
        option.key: recorded(getattr(config.image if option.group == "image" else config, option.key))
        for option in OPTIONS
    }


def _parse_flags(words: list[str]) -> BuildConfig:
    """The real `build` command line parsed by its Typer command (without running a build), then configured."""
    command = typer.main.get_command(app).commands["build"]  # type: ignore[attr-defined]
    params = command.make_context("build", list(words)).params
    return build_config({}, {key: value for key, value in params.items() if key in VALID_KEYS})


def test_every_config_field_is_declared_once():
    keys = [option.key for option in OPTIONS]
    assert len(keys) == len(set(keys))
    fields = {f.name for f in dataclasses.fields(BuildConfig)} - {"image"}
    image_fields = {f.name for f in dataclasses.fields(ImageOptions)}
    assert set(keys) == fields | image_fields
    assert {o.key for o in OPTIONS if o.group == "image"} == image_fields
    assert set(NON_DEFAULT) == set(keys)  # a new option needs a case here
    flags = [option.flag for option in OPTIONS]
    assert len(flags) == len(set(flags))
    # the run-only keys are the executor, sharding and run-only groups: the same as before the declarations
    assert set(RUN_ONLY_KEYS) == {
        "workers",
        "executor",
        "scheduler",
        "num_shards",
        "shard_index",
        "allow_skips",
        "overwrite",
        "remote_min_rate",  # a deadline for remote reads: never the bytes
    }


@pytest.mark.parametrize("case", [*NON_DEFAULT, *EXTRA_CASES])
def test_yaml_config_flags_config_round_trip(case, tmp_path):
    values = {**NON_DEFAULT, **EXTRA_CASES}[case]
    config = _from_yaml(tmp_path, values)
    for key in values:  # the case really sets a non-default value
        if key in BY_KEY and key not in ("source", "out"):
            assert _values(config)[key] != recorded(default_of(BY_KEY[key])), key
    words = command_words(_values(config), every=True)
    again = _parse_flags(words)
    assert again == config, words


def test_defaults_round_trip_with_no_flags(tmp_path):
    config = _from_yaml(tmp_path, {})
    words = command_words(_values(config), every=True)
    assert words == ["--source", str(tmp_path / "src"), "--out", str(tmp_path / "out")]
    assert _parse_flags(words) == config
    for option in OPTIONS:
        if option.key not in ("source", "out"):
            assert _values(config)[option.key] == recorded(default_of(option)), option.key


def test_repair_command_repeats_every_option_that_decides_the_output(tmp_path):
    """What the repair command reproduces: everything but the run-only keys it leaves out on purpose (workers,
    overwrite, the shard of a sharded build; a repair runs the whole build)."""
    every = {}
    for case in "splits classes train_per_class seed resize size quality format filter".split():  # noqa: SIM905
        every.update(NON_DEFAULT[case])
    for case in ("upscale", "draft", "verify", "allow_skips", "wordnet", "output", "shard_size", "shuffle"):
        every.update(NON_DEFAULT[case])
    for case in ("shuffle_seed", "max_member_size", "label_space", "holdout", "min_images", "real_labels"):
        every.update(NON_DEFAULT[case])
    every.update(boxes=True, layout="winter21", executor="dask", scheduler="tcp://127.0.0.1:8786", workers=2)
    config = _from_yaml(tmp_path, every)
    command = rebuild_command(config.to_dict())
    assert command.startswith(f"imagenet-prep build --source {tmp_path / 'src'} --out {tmp_path / 'out'} ")
    again = _parse_flags(command.split()[2:])
    assert again == dataclasses.replace(config, workers=0)
    for flag in ("--holdout 2", "--label-space imagenet12k", "--no-verify", "--max-member-size 1048576"):
        assert flag in command
    for flag in ("--boxes", "--real-labels", "--layout winter21", "--min-images 4", "--no-draft"):
        assert flag in command
    sharded = _from_yaml(tmp_path, {"num_shards": 3, "shard_index": 1, "workers": 2})
    assert rebuild_command(sharded.to_dict()) == rebuild_command(_from_yaml(tmp_path, {}).to_dict())


def test_a_misspelled_parameter_is_an_error_not_dropped(tmp_path):
    with pytest.raises(UsageError, match="Unknown key 'sorce'"):
        build_command(sorce=str(tmp_path), out=str(tmp_path / "out"))
    result = CliRunner().invoke(app, ["build", "--sorce", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--sorce" in result.output


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    # undo the wrapping (the formatter breaks lines after hyphens too)
    return re.sub(r"-\s+", "-", re.sub(r"\s+", " ", result.output))


def test_help_lists_name_every_registered_layout_output_executor_and_enum_value():
    text = _help("build")
    layouts = re.search(r"--layout <str> Source layout \(default: detected\): ([^.]+(?:\.\d[^.]*)*)\.", text)
    assert layouts is not None
    assert layouts.group(1).split(", ") == list(SOURCES)
    outputs = re.search(r"--output <str> Output: ([^(]+) \(default", text)
    assert outputs is not None and outputs.group(1).split(", ") == list(WRITERS)
    executors = re.search(r"--executor <str> Where units run: ([^(]+) \(default", text)
    assert executors is not None and executors.group(1).split(", ") == list(EXECUTORS)
    for option, enum in (("resize", ResizeMode), ("format", OutputFormat), ("filter", ResampleFilter)):
        assert ", ".join(member.value for member in enum) in text, option
    assert ", ".join(member.value for member in Resizer) in text
    assert "{" not in text  # every placeholder filled
    inspect_text = _help("inspect")
    assert ", ".join(SOURCES) in inspect_text


def test_every_declared_option_is_a_flag_of_build():
    text = _help("build")
    for option in OPTIONS:
        assert f"{option.flags[0].replace('/', ' / ')} " in text, option.key


# ------------------------------------------------------------------- what must not change for built trees
def _fingerprint_before(config: BuildConfig, extra: dict[str, Any]) -> str:
    """BuildConfig.output_fingerprint as it was before the declarations (frozen copy)."""
    image = {
        key: (value.value if hasattr(value, "value") else value)
        for key, value in dataclasses.asdict(config.image).items()
        if not (key == "verify" and value is True)
    }
    beyond = {
        "label_space": config.label_space,
        "holdout": config.holdout,
        "recipe": config.recipe,
        "min_images": config.min_images,
        "real_labels": config.real_labels,
        "boxes": config.boxes,
    }
    decisive = {
        "splits": list(config.splits),
        "train_per_class": config.train_per_class,
        "val_per_class": config.val_per_class,
        "seed": config.seed,
        "image": image,
        **extra,
        **{key: value for key, value in beyond.items() if value},
        **({"output": config.output} if config.output != "imagefolder" else {}),
    }
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:16]


def _to_dict_before(config: BuildConfig) -> dict[str, Any]:
    """BuildConfig.to_dict as it was (frozen copy; it wrote verify twice), but for the key order."""
    image = {
        key: (value.value if hasattr(value, "value") else value)
        for key, value in dataclasses.asdict(config.image).items()
    }
    return {
        "source": str(Path(config.source).resolve()),
        "out": str(Path(config.out).resolve()),
        "splits": list(config.splits),
        "subset": config.subset,
        "classes": list(config.classes) if config.classes else None,
        "under": config.under,
        "train_per_class": config.train_per_class,
        "val_per_class": config.val_per_class,
        "seed": config.seed,
        **image,
        "workers": config.worker_count,
        "allow_skips": config.allow_skips,
        "output": config.output,
        "executor": config.executor,
        "shard_size": config.shard_size,
        "shuffle": config.shuffle,
        "shuffle_seed": config.shuffle_seed,
        "max_member_size": config.max_member_size,
        "label_space": config.label_space,
        "holdout": config.holdout,
        "recipe": config.recipe,
        "min_images": config.min_images,
        "real_labels": config.real_labels,
        "boxes": config.boxes,
        **({"scheduler": config.scheduler} if config.scheduler else {}),
        **(
            {"num_shards": config.num_shards, "shard_index": config.shard_index}
            if config.num_shards is not None
            else {}
        ),
        "layout": config.layout,
    }


def _configs(tmp_path: Path, count: int) -> list[BuildConfig]:
    """Defaults, each non-default case, and ``count`` random valid combinations of them."""
    cases = [{}, *NON_DEFAULT.values(), *EXTRA_CASES.values()]
    configs = [_from_yaml(tmp_path, case) for case in cases]
    rng = random.Random(20)
    while len(configs) < len(cases) + count:
        values: dict[str, Any] = {}
        for case in rng.sample(cases, rng.randint(2, 12)):
            values.update(case)
        try:
            configs.append(_from_yaml(tmp_path, values))
        except UsageError:  # e.g. --subset with --classes, --overwrite with --num-shards
            continue
    return configs


def test_fingerprint_and_record_are_what_they_were(tmp_path):
    """Trees already built resume (the same fingerprint) and build.json records the same config."""
    extras = [{}, {"wnids": ["n01440764"], "units": ["a1b2"]}]
    for config in _configs(tmp_path, 300):
        for extra in extras:
            assert config.output_fingerprint(extra) == _fingerprint_before(config, extra)
        record = config.to_dict()
        before = _to_dict_before(config)
        if config.wordnet is not None:  # recorded now, so the repair command can repeat it
            assert record.pop("wordnet") == str(config.wordnet)
        if config.tfds_name is not None:  # a new option (tfds), recorded only when set
            assert record.pop("tfds_name") == config.tfds_name
        if config.min_shards is not None:  # a newer option, recorded only when set
            assert record.pop("min_shards") == config.min_shards
        for key in ("images", "allow_missing", "ignore_list_labels"):  # recorded when set (image lists)
            assert record.pop(key, None) == (getattr(config, key) or None)
        if config.remote_min_rate is not None:  # a newer run-only option, recorded only when set
            assert record.pop("remote_min_rate") == config.remote_min_rate
        assert record == before
        assert set(settings_of(config, ["n01440764"])) >= {
            "splits",
            "subset",
            "classes",
            "under",
            "wnids",
            "seed",
        }


def test_settings_name_the_options_that_differ_only_when_set(tmp_path):
    default = settings_of(_from_yaml(tmp_path, {}), ["n01440764"])
    first = "splits subset classes under wnids train_per_class val_per_class seed output"
    assert set(default) == {
        *first.split(),
        "resize",
        "size",
        "quality",
        "format",
        "filter",
        "upscale",
        "draft",
        "resizer",
    }  # what state.json recorded before the declarations, so older trees name no spurious difference
    held = settings_of(_from_yaml(tmp_path, {"holdout": 2, "shard_size": "100", "verify": False}), [])
    assert held["holdout"] == 2 and held["shard_size"] == "100" and held["verify"] is False
    assert "workers" not in held and "source" not in held


def test_docs_options_md_is_generated_from_the_declarations():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_options_doc", REPO / "scripts" / "gen_options_doc.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    text = generator.render()
    for option in OPTIONS:
        assert f"`{option.flag}`" in text and f"`{option.key.replace('_', '-')}`" in text
    assert ", ".join(SOURCES) in text
    committed = (REPO / "docs" / "options.md").read_text(encoding="utf-8")
    assert committed == text, (
        "docs/options.md is stale: run `python scripts/gen_options_doc.py` and commit it"
    )
