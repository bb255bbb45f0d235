"""The one-call API (imagenet_prep/api.py): ``imagenet_prep.build`` takes the CLI's option names and refuses any
other name naming the valid ones; it returns the BuildResult; ``check`` and ``inspect`` return the records the
commands print; and ``import imagenet_prep`` stays cheap (the API loads on first use)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import imagenet_prep
from imagenet_prep.build_options import VALID_KEYS
from imagenet_prep.errors import UsageError


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    from imagenet_prep.sample import SampleSpec, write_sample

    return write_sample(
        tmp_path_factory.mktemp("api"), SampleSpec(classes=2, train_per_class=3, val_per_class=2)
    )


def test_build_check_inspect_in_one_call_each(release, tmp_path: Path) -> None:
    seen: list[int] = []
    result = imagenet_prep.build(
        source=release.root, out=tmp_path / "out", size=32, resize="shorter", workers=1, splits="val",
        progress=seen.append,
    )  # fmt: skip
    assert result.ok and result.images_written == 4 and sum(seen) == 4
    assert result.to_dict()["per_split"] == {"val": 4}
    assert json.loads(json.dumps(result.to_dict())) == result.to_dict()  # JSON types only
    report = imagenet_prep.check(tmp_path / "out")
    assert report.ok and report.checked == 4 and report.to_dict()["out"] == str(tmp_path / "out")
    source = imagenet_prep.inspect(release.root)
    assert source.layout == "ilsvrc" and source.splits["train"].images == 6


def test_the_same_names_as_the_cli_and_a_yaml_file(release, tmp_path: Path) -> None:
    config = tmp_path / "options.yaml"
    config.write_text("size: 24\nresize: square\nsplits: [val]\n")
    result = imagenet_prep.build(
        config=config, source=release.root, out=tmp_path / "out", **{"val-per-class": 1}
    )
    assert result.images_written == 2
    record = json.loads((tmp_path / "out" / "build.json").read_text())
    assert record["config"]["size"] == 24 and record["config"]["val_per_class"] == 1


def test_an_unknown_option_is_a_type_error_naming_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(TypeError) as caught:
        imagenet_prep.build(source=tmp_path, out=tmp_path / "out", sise=64)
    message = str(caught.value)
    assert "'sise'" in message and all(key in message for key in VALID_KEYS)
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError):  # a known option with a bad value: the CLI's message
        imagenet_prep.build(source=tmp_path, out=tmp_path / "out", size="big")


def test_importing_the_package_loads_no_api() -> None:
    probe = (
        "import sys, imagenet_prep; print(sorted(m for m in sys.modules if m.startswith('imagenet_prep')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "['imagenet_prep', 'imagenet_prep.version']"  # __version__ only
    assert callable(imagenet_prep.build) and callable(imagenet_prep.check) and callable(imagenet_prep.inspect)
    from imagenet_prep.build import BuildResult, build  # the build package stays what it was

    assert build.__module__ == "imagenet_prep.build.orchestrator" and BuildResult.__name__ == "BuildResult"
