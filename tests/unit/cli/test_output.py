"""Every command's result goes through cli/output.py: ``--json`` prints exactly one JSON document on stdout with
the keys docs/python-api.md documents (parsed from that page, so the page and the code cannot drift apart);
human mode prints text, not JSON; ``--quiet`` shows no progress but still the result line. And the img/s rate
after a resume counts only the images that run built."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from support import REPO
from support.cli import main_in_process

from imagenet_prep.build.orchestrator import BuildResult
from imagenet_prep.cli.build_cmd import _build_line

DOCUMENTED = re.compile(r"^- (`[^(]*`) \(`(\w+)`\): (.*)$", re.MULTILINE)


def documented_keys() -> dict[str, list[str]]:
    """Command (``build --json``) -> its document's keys, from docs/python-api.md's "JSON documents"."""
    section = (REPO / "docs" / "python-api.md").read_text().split("## JSON documents", 1)[1]
    keys: dict[str, list[str]] = {}
    for commands, _record, listed in DOCUMENTED.findall(section):
        for command in re.findall(r"`([^`]+)`", commands):
            keys[command] = re.findall(r"`(\w+)`", listed)
    return keys


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    from imagenet_prep.sample import SampleSpec, write_sample

    # 12 images: built in this process (no pool), so each command here takes milliseconds
    return write_sample(
        tmp_path_factory.mktemp("output"), SampleSpec(classes=2, train_per_class=4, val_per_class=2)
    )


def run(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    return main_in_process([str(arg) for arg in args], capsys, monkeypatch)


def document(args: list[str], capsys, monkeypatch, code: int = 0) -> dict:
    status, out, err = run(args, capsys, monkeypatch)
    assert status == code, err
    return json.loads(out)  # the whole of stdout is one document


def test_the_page_documents_every_command_with_json() -> None:
    keys = documented_keys()
    assert set(keys) == {
        "build --json", "finalize --json", "build --dry-run --json", "check --json", "inspect --json",
        "verify --json", "fetch --json", "sample --json", "wordnet status --json", "wordnet install --json",
    }  # fmt: skip
    assert all(len(listed) >= 3 for listed in keys.values()), keys


def test_every_json_document_has_the_documented_keys(release, tmp_path: Path, capsys, monkeypatch) -> None:
    keys = documented_keys()
    out = tmp_path / "out"
    base = ["build", "--source", release.root, "--out", out, "--size", "32", "--workers", "1"]

    dry = document([*base, "--dry-run", "--json"], capsys, monkeypatch)
    assert list(dry) == keys["build --dry-run --json"] and dry["images_total"] == 12
    assert not out.exists()

    built = document([*base, "--json"], capsys, monkeypatch)
    assert list(built) == keys["build --json"]
    assert built["ok"] and built["images"] == 12 and built["per_split"] == {"train": 8, "val": 4}
    assert built["units"]["already_built"] == 0 and built["units"]["built"] == built["units"]["total"]
    assert built["shard"] is None and built["layout"] == "ilsvrc" and built["images_built"] == 12

    checked = document(["check", out, "--json"], capsys, monkeypatch)
    assert list(checked) == keys["check --json"]
    assert checked["ok"] and checked["checked"] == 12 and checked["repair"] is None

    next(out.glob("train/*/*.JPEG")).unlink()
    damaged = document(["check", out, "--json"], capsys, monkeypatch, code=1)
    assert list(damaged) == keys["check --json"]
    assert (
        not damaged["ok"] and damaged["problems"] >= 1 and damaged["repair"].startswith("imagenet-prep build")
    )

    inspected = document(["inspect", release.root, "--json"], capsys, monkeypatch)
    assert list(inspected) == keys["inspect --json"]
    assert inspected["splits"]["val"] == {"classes": 2, "images": 4, "refused": 0}

    verified = document(
        ["verify", release.root, "--checksums", release.root / "MD5SUMS", "--json"], capsys, monkeypatch
    )
    assert list(verified) == keys["verify --json"] and verified["ok"]
    assert {r["status"] for r in verified["results"]} == {"ok"}

    dest = tmp_path / "fetched"
    fetched = document(
        ["fetch", "--dest", dest, "--base-url", release.root, "--checksums", release.root / "MD5SUMS",
         "--only", "val,devkit", "--json"],
        capsys, monkeypatch,
    )  # fmt: skip
    assert list(fetched) == keys["fetch --json"] and fetched["ok"] and len(fetched["results"]) == 2

    sharded = tmp_path / "sharded"
    shard_argv = ["build", "--source", release.root, "--out", sharded, "--size", "32", "--workers", "1"]
    shard = document([*shard_argv, "--num-shards", "1", "--shard-index", "0", "--json"], capsys, monkeypatch)
    assert list(shard) == keys["build --json"] and shard["shard"] == {"index": 0, "count": 1}
    finalized = document(["finalize", sharded, "--json"], capsys, monkeypatch)
    assert list(finalized) == keys["finalize --json"] and finalized["images"] == 12


def test_sample_and_wordnet_documents(tmp_path: Path, capsys, monkeypatch) -> None:
    from imagenet_prep.taxonomy.wordnet import WordNetLocation, WordNetStatus

    keys = documented_keys()
    written = document(["sample", tmp_path / "mini", "--classes", "2", "--json"], capsys, monkeypatch)
    assert list(written) == keys["sample --json"]
    assert written["root"] == str(tmp_path / "mini") and written["next"].startswith("imagenet-prep build")
    # WordNet's records, as the commands print them (whether WordNet is installed here or not).
    location = WordNetLocation(tmp_path / "nltk", "cache", tmp_path / "dict", "3.0")
    assert list(location.to_dict()) == keys["wordnet install --json"]
    state = WordNetStatus(True, "WordNet 3.0", location).to_dict()
    assert list(state) == keys["wordnet status --json"] and state["location"]["version"] == "3.0"
    assert json.loads(json.dumps(state)) == state


def test_synsets_json_is_one_document(capsys, monkeypatch) -> None:
    shown = document(["synsets", "show", "n01440764", "--json"], capsys, monkeypatch)
    assert shown[0]["wnid"] == "n01440764" and shown[0]["ilsvrc2012_id"] == 449
    status, out, _ = run(["synsets", "leaves", "n02123045", "--json"], capsys, monkeypatch)
    assert status == 0 and out == '["n02123045"]\n'  # a flat list stays on one line


def test_human_and_quiet_modes(release, tmp_path: Path, capsys, monkeypatch) -> None:
    argv = ["build", "--source", release.root, "--out", tmp_path / "out", "--size", "32", "--workers", "1"]
    status, out, err = run(argv, capsys, monkeypatch)
    assert status == 0
    assert out.startswith("Built 12 images (train 8, val 4) in 2 classes") and not out.startswith("{")
    assert "build: 100%" in err  # stderr is no terminal here: the plain progress lines

    status, out, err = run([*argv[:4], tmp_path / "quiet", *argv[5:], "--quiet"], capsys, monkeypatch)
    assert status == 0 and out.startswith("Built 12 images") and err == ""  # no progress, still the result

    status, out, err = run(["check", tmp_path / "out"], capsys, monkeypatch)
    assert status == 0 and out == f"Checked 12 images in {tmp_path / 'out'}: OK.\n" and err == ""

    status, out, _ = run(["inspect", release.root], capsys, monkeypatch)
    assert status == 0 and "layout ilsvrc" in out and "val: 4 images in 2 classes" in out


def test_the_rate_after_a_resume_counts_only_this_runs_images(release, tmp_path: Path, capsys, monkeypatch):
    out = tmp_path / "out"
    argv = ["build", "--source", release.root, "--out", out, "--size", "32", "--workers", "1"]
    assert document([*argv, "--json"], capsys, monkeypatch)["images_built"] == 12
    shutil.rmtree(next(out.glob("train/*")))  # one class's train unit: 4 images to build again
    again = document([*argv, "--json"], capsys, monkeypatch)
    assert again["images"] == 12 and again["images_built"] == 4
    units = again["units"]
    assert units["built"] == units["rebuilt"] == 1 and units["already_built"] == units["total"] - 1

    resumed = BuildResult(
        out=out, counts={"train": {"n1": 2000}, "val": {"n1": 100}}, images_written=2100, skipped=(),
        repaired=(), units_total=21, units_resumed=20, seconds=2.0, warnings=(), images_built=100,
    )  # fmt: skip
    line = _build_line(resumed)
    assert line.startswith("Built 2,100 images") and "(50 img/s)" in line and "resumed 20 of 21 units" in line
