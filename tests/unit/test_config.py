"""The build configuration: YAML files, CLI overrides and early validation with helpful messages."""

from __future__ import annotations

import pytest
from support import CONFIGS as CONFIG_DIR

from imagenet_prep.config import build_config, read_config_file
from imagenet_prep.errors import UsageError
from imagenet_prep.image.process import OutputFormat, ResampleFilter, ResizeMode

CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


def test_the_example_configs_are_there():
    names = {path.stem for path in CONFIGS}
    assert {"imagenet1k-256", "imagenet1k-full", "imagenette-160", "imagenette-320", "imagewoof-320",
            "downsampled-64", "ci-tiny"} <= names  # fmt: skip


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_example_config_validates(path, tmp_path):
    config = build_config(read_config_file(path), {"source": tmp_path / "src", "out": tmp_path / "out"})
    assert config.image.resize in set(ResizeMode)


def test_downsampled_config_means_square_box_png(tmp_path):
    path = next(p for p in CONFIGS if p.stem == "downsampled-64")
    config = build_config(read_config_file(path), {"source": tmp_path / "s", "out": tmp_path / "o"})
    assert (config.image.resize, config.image.size) == (ResizeMode.SQUARE, 64)
    assert (config.image.filter, config.image.format) == (ResampleFilter.BOX, OutputFormat.PNG)


def test_cli_values_override_the_file_and_none_means_not_given(tmp_path):
    file_values = read_config_file(next(p for p in CONFIGS if p.stem == "ci-tiny"))
    config = build_config(file_values, {"source": "s", "out": "o", "size": 32, "seed": None, "subset": None})
    assert config.image.size == 32
    assert config.subset == "imagenette" and config.train_per_class == 10 and config.seed == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("resize: squash\n", "center-crop"),
        ("train-per-class: 0\n", "at least 1"),
        ("splits: train,test\n", "train, val"),
        ("sizes: 64\n", "Unknown key 'sizes'"),
        ("subset: imagenette\nunder: dog.n.01\n", "Choose one of"),
        ("size: big\n", "whole number"),
        ("- a list\n", "mapping"),
        ("size: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        build_config(read_config_file(path), {"source": tmp_path / "s", "out": tmp_path / "o"})


def test_source_and_out_are_required_and_distinct(tmp_path):
    with pytest.raises(UsageError, match="--out is required"):
        build_config({}, {"source": tmp_path})
    with pytest.raises(UsageError, match="folder of its own"):
        build_config({}, {"source": tmp_path, "out": tmp_path})


def test_missing_config_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="Cannot read the config file"):
        read_config_file(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("stem", "resize", "size", "output"),
    [
        ("imagenet256-adm", ResizeMode.ADM, 256, "zip"),
        ("imagenet512-adm", ResizeMode.ADM, 512, "zip"),
        ("imagenet32-downsampled", ResizeMode.DOWNSAMPLED, 32, "npz"),
        ("imagenet64-downsampled", ResizeMode.DOWNSAMPLED, 64, "npz"),
    ],
)
def test_generative_presets(tmp_path, stem, resize, size, output):
    from imagenet_prep.outputs import writer_for

    path = next(p for p in CONFIGS if p.stem == stem)
    config = build_config(read_config_file(path), {"source": tmp_path / "s", "out": tmp_path / "o"})
    assert (config.image.resize, config.image.size, config.output) == (resize, size, output)
    assert config.image.format is OutputFormat.PNG
    assert config.image.filter is (ResampleFilter.BOX if output == "npz" else ResampleFilter.BICUBIC)
    assert writer_for(config).name == output  # the writer takes these image options
