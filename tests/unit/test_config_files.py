"""Issue 15, config files: real YAML booleans only, typed and finite values, no anchors/aliases (alias bombs),
a size limit and regular files only (/dev/zero, a FIFO). Each is one error line and exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagenet_prep import config as config_mod
from imagenet_prep.config import build_config, read_config_file
from imagenet_prep.errors import UsageError


def build_from(tmp_path: Path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return build_config(read_config_file(path), {"source": tmp_path / "s", "out": tmp_path / "o"})


def cli_build(tmp_path: Path, config: Path | str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imagenet_prep", "build", "--config", str(config),
         "--source", str(tmp_path / "src"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def assert_one_line_usage_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, done.stderr
    assert line.startswith("imagenet-prep: error: ")
    for fragment in fragments:
        assert fragment in line, line


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('overwrite: "false"\n', "overwrite"),
        ("upscale: 'no'\n", "upscale"),
        ("draft: 0\n", "draft"),
        ("allow-skips: off-ish\n", "allow-skips"),
    ],
)
def test_booleans_must_be_real_yaml_booleans(tmp_path, text, key):
    with pytest.raises(UsageError, match=f"'{key}' must be true or false"):
        build_from(tmp_path, text)


def test_real_booleans_still_work(tmp_path):
    config = build_from(tmp_path, "overwrite: true\nupscale: false\ndraft: false\nallow-skips: yes\n")
    assert config.overwrite is True and config.image.upscale is False and config.image.draft is False
    assert config.allow_skips is True


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("size: .inf\n", "'size' must be a whole number"),
        ("size: .nan\n", "'size' must be a whole number"),
        ("seed: -.inf\n", "'seed' must be a whole number"),
        ("size: 1.5\n", "'size' must be a whole number"),
        ("quality: 1e400\n", "'quality' must be a whole number"),
        ("workers: 100000000\n", "'workers' must be between"),
        ("seed: 1000000000000000000000000000\n", "'seed' must be between"),
        ("train-per-class: [1]\n", "'train-per-class' must be a whole number"),
        ("subset: [a]\n", "'subset' must be a string"),
        ("under: 3.5\n", "'under' must be a string"),
        ("wordnet: true\n", "'wordnet' must be a string"),
        ("resize: [shorter]\n", "'resize' must be a string"),
        ("splits: {train: 1}\n", "'splits' must be a list"),
        ("classes: [[n01440764]]\n", "'classes' must be a list"),
        ("classes: [1, 2]\n", "'classes' must be a list"),
    ],
)
def test_wrong_types_and_non_finite_numbers_are_usage_errors(tmp_path, text, fragment):
    with pytest.raises(UsageError, match=fragment.replace("[", r"\[")):
        build_from(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("source: 5\nout: o\n", "'source' must be a string"),
        ("source: s\nout: {a: 1}\n", "'out' must be a string"),
    ],
)
def test_paths_must_be_strings(tmp_path, text, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=fragment):
        build_config(read_config_file(path), {})


def test_whole_numbers_written_as_floats_or_strings_are_accepted(tmp_path):
    config = build_from(tmp_path, "size: 128.0\nquality: '85'\nseed: 7\n")
    assert (config.image.size, config.image.quality, config.seed) == (128, 85, 7)


@pytest.mark.parametrize(
    "text",
    [
        "size: &s 64\nquality: *s\n",
        "classes: &c [n01440764]\n",
        "a: &a [x, x]\nb: &b [*a, *a]\n",
    ],
    ids=["alias", "anchor-only", "nested"],
)
def test_anchors_and_aliases_are_refused(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match="anchors and aliases"):
        read_config_file(path)


def test_billion_laughs_is_refused_quickly_and_briefly(tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    lines += ["size: *a9"]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    done = cli_build(tmp_path, path)
    assert_one_line_usage_error(done, "anchors and aliases", str(path))
    assert len(done.stderr) < 500


def test_too_large_config_file_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * ((1 << 20) // 10 + 1) + "size: 64\n")
    assert config_mod.MAX_CONFIG_BYTES == 1 << 20
    with pytest.raises(UsageError, match="larger than 1 MiB"):
        read_config_file(path)


def test_deeply_nested_yaml_is_a_usage_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("size: " + "[" * 50_000 + "]" * 50_000 + "\n")
    done = cli_build(tmp_path, path)
    assert_one_line_usage_error(done, "nested", str(path))


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "folder"])
def test_config_must_be_a_regular_file(tmp_path, kind):
    if kind == "dev-zero":
        config: Path | str = "/dev/zero"
    elif kind == "fifo":
        config = tmp_path / "pipe.yaml"
        os.mkfifo(config)
    else:
        config = tmp_path
    done = cli_build(tmp_path, config, timeout=30)  # a hang or a memory blow-up fails here
    assert_one_line_usage_error(done, "not a regular file", str(config))


def test_quoted_false_through_the_cli_is_exit_2(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text('overwrite: "false"\n')
    assert_one_line_usage_error(cli_build(tmp_path, path), "'overwrite' must be true or false")


def test_inf_size_through_the_cli_is_exit_2_not_a_traceback(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("size: .inf\n")
    assert_one_line_usage_error(cli_build(tmp_path, path), "'size' must be a whole number")
