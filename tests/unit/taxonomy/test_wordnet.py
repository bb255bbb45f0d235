"""WordNet 3.0 discovery, preparation and refusal (wrong version, none), in-process and through the real CLI.

Uses the system WordNet 3.0 that .ci/run installs (/usr/share/wordnet). conftest.py points IMAGENET_PREP_CACHE
at a session folder, so the user's cache is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imagenet_prep import wordnet
from imagenet_prep.errors import WordNetError
from imagenet_prep.io import paths

SYSTEM_WORDNET = Path("/usr/share/wordnet")
CLI = shutil.which("imagenet-prep") or ""


@pytest.fixture(scope="module")
def wordnet_31(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the real dict files whose headers claim WordNet 3.1 (same byte length, offsets intact)."""
    folder = tmp_path_factory.mktemp("wordnet-3.1")
    for source in SYSTEM_WORDNET.iterdir():
        if source.is_file():
            data = source.read_bytes()
            if source.name.startswith("data."):
                assert b"WordNet 3.0 Copyright" in data[:8192]
                data = data.replace(b"WordNet 3.0 Copyright", b"WordNet 3.1 Copyright", 1)
            (folder / source.name).write_bytes(data)
    return folder


@pytest.fixture()
def empty_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "no-wordnet"
    folder.mkdir()
    return folder


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert CLI, "the imagenet-prep console script is not installed (pip install -e .)"
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=full_env, timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("imagenet-prep: error: ")
    assert "Traceback" not in result.stderr
    assert "apt-get install wordnet-base wordnet-sense-index" in lines[0]
    assert "nltk.downloader wordnet" in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_system_wordnet_is_30() -> None:
    assert wordnet.dict_version(SYSTEM_WORDNET) == "3.0"


def test_prepare_copies_into_cache_with_lexnames() -> None:
    location = wordnet.prepare(SYSTEM_WORDNET)
    corpus = location.nltk_root / "corpora" / "wordnet"
    assert location.version == "3.0"
    assert location.nltk_root == wordnet.cache_dir() / "nltk_data"
    assert str(wordnet.cache_dir()) == os.environ["IMAGENET_PREP_CACHE"]  # never the user's cache in tests
    lexnames = (corpus / "lexnames").read_text().splitlines()
    assert len(lexnames) == 45
    assert lexnames[3].split("\t") == ["03", "noun.Tops", "1"]
    assert lexnames[5].split("\t") == ["05", "noun.animal", "1"]
    for name in ("data.noun", "index.noun", "index.sense"):
        assert (corpus / name).stat().st_size == (SYSTEM_WORDNET / name).stat().st_size
    assert not [p for p in corpus.parent.iterdir() if p.name.startswith(".wordnet-")]  # no staging left
    assert wordnet.prepare(SYSTEM_WORDNET) == location  # prepared once, then reused


def test_status_and_load_report_30() -> None:
    state = wordnet.status(SYSTEM_WORDNET)
    assert state.ok and state.location is not None and state.location.version == "3.0"
    reader = wordnet.load()
    assert reader.get_version() == "3.0"
    assert reader.synset("dog.n.01").offset() == 2084071  # n02084071, the ImageNet wnid of dog
    assert wordnet.load() is reader  # loaded once per process


def test_wrong_version_is_refused(wordnet_31: Path) -> None:
    assert wordnet.dict_version(wordnet_31) == "3.1"
    with pytest.raises(WordNetError, match=r"WordNet 3\.1.*3\.0 offsets") as info:
        wordnet.locate(wordnet_31)
    assert "\n" not in str(info.value)
    state = wordnet.status(wordnet_31)
    assert not state.ok and "3.1" in state.message and "apt-get install" in state.message


def test_missing_wordnet_is_refused(empty_dir: Path) -> None:
    with pytest.raises(WordNetError, match=r"missing data\.noun") as info:
        wordnet.locate(empty_dir)
    assert "imagenet-prep wordnet install" in str(info.value)
    with pytest.raises(WordNetError, match="does not exist"):
        wordnet.locate(empty_dir / "nope")


def test_env_var_selects_the_folder(monkeypatch: pytest.MonkeyPatch, wordnet_31: Path) -> None:
    monkeypatch.setenv(wordnet.ENV_WORDNET_DIR, str(wordnet_31))
    assert not wordnet.status().ok  # the explicit choice is used alone: no fallback to a good WordNet


@pytest.mark.parametrize("command", [["synsets", "show", "feeling.n.01"], ["synsets", "leaves", "bird"]])
def test_cli_wrong_version_one_line_exit_2(wordnet_31: Path, command: list[str]) -> None:
    result = run_cli(*command, env={wordnet.ENV_WORDNET_DIR: str(wordnet_31)})
    assert_one_line_error(result, "WordNet 3.1", str(wordnet_31))
    assert result.stdout == ""


def test_cli_no_wordnet_one_line_exit_2(empty_dir: Path) -> None:
    result = run_cli("synsets", "tree", "feeling.n.01", env={wordnet.ENV_WORDNET_DIR: str(empty_dir)})
    assert_one_line_error(result, str(empty_dir), "missing data.noun")
    # the --wordnet option does the same as the environment variable
    result = run_cli("synsets", "show", "kitten.n.01", "--wordnet", str(empty_dir))
    assert_one_line_error(result, str(empty_dir))


def test_cli_status(wordnet_31: Path, empty_dir: Path) -> None:
    good = run_cli("wordnet", "status", "--wordnet", str(SYSTEM_WORDNET))
    assert good.returncode == 0, good.stderr
    assert "WordNet 3.0" in good.stdout
    assert_one_line_error(run_cli("wordnet", "status", "--wordnet", str(wordnet_31)), "3.1")
    assert_one_line_error(run_cli("wordnet", "status", env={wordnet.ENV_WORDNET_DIR: str(empty_dir)}))


def test_cli_install_from_dir_into_a_fresh_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {paths.ENV_CACHE_DIR: str(cache)}
    result = run_cli("wordnet", "install", "--from", str(SYSTEM_WORDNET), env=env)
    assert result.returncode == 0, result.stderr
    corpus = cache / "nltk_data" / "corpora" / "wordnet"
    assert str(cache / "nltk_data") in result.stdout
    assert (corpus / "lexnames").is_file() and wordnet.dict_version(corpus) == "3.0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # nothing written elsewhere
    status = run_cli("wordnet", "status", env=env)
    assert status.returncode == 0 and "(cache)" in status.stdout, status.stdout


def test_cli_install_refuses_wrong_version(wordnet_31: Path, tmp_path: Path) -> None:
    result = run_cli(
        "wordnet", "install", "--from", str(wordnet_31), env={paths.ENV_CACHE_DIR: str(tmp_path)}
    )
    assert_one_line_error(result, "3.1")
    assert not (tmp_path / "nltk_data" / "corpora" / "wordnet").exists()


def test_python_m_entry_point_reports_errors_too(empty_dir: Path) -> None:
    env = {**os.environ, wordnet.ENV_WORDNET_DIR: str(empty_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "imagenet_prep", "wordnet", "status"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2 and result.stderr.startswith("imagenet-prep: error: ")


def test_concurrent_installs_share_one_copy(tmp_path: Path) -> None:
    """Several processes preparing the same fresh cache at once: all succeed, one copy, no staging left."""
    env = {**os.environ, paths.ENV_CACHE_DIR: str(tmp_path)}
    command = [CLI, "wordnet", "install", "--from", str(SYSTEM_WORDNET)]
    running = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)
    ]
    for process in running:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    corpora = tmp_path / "nltk_data" / "corpora"
    assert [p.name for p in corpora.iterdir()] == ["wordnet"]
    assert wordnet.dict_version(corpora / "wordnet") == "3.0"
