"""The contract every registered source layout keeps, run over every entry of ``sources.SOURCES``.

For each layout, its miniature is written by ``imagenet-prep sample --layout ...`` (real tars, zips, gzip streams,
Parquet files; one 12-class spec with the quirk files), then:

- ``detect`` recognises it, and ``open_source`` picks that layout (and no other);
- ``index`` lists the classes and files the miniature wrote, read back here with tarfile / zipfile alone;
- a build of it gives the same tree (every output file, label map and manifest; build.json aside) as a build of
  the official archive holding the same images (ILSVRC2012 for the 1K layouts, fall11 for the 21K ones);
- ``inspect``, the dry run and a build leave no file of it open (``SourceBase.close`` is called).

A layout added to SOURCES gets these tests by its registry line: its miniature is ``sample --layout <layout>``
unless the tables below say otherwise, and its reference is the ILSVRC2012 build unless it declares another.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.build import build_record as run_build
from support.tree import tree_hashes as tree
from typer.testing import CliRunner

from imagenet_prep.build import build
from imagenet_prep.build.dryrun import dry_run
from imagenet_prep.cli import app
from imagenet_prep.cli.inspect_cmd import inspect_source
from imagenet_prep.config import build_config
from imagenet_prep.sources import SOURCES, SourceBase, detect_layouts, open_source
from imagenet_prep.sources.evalsets import EVAL_SOURCES
from imagenet_prep.taxonomy import classes

# The parametrisation IS the registry (test_the_contract_runs_over_every_registered_layout holds it to that).
LAYOUTS = tuple(SOURCES)

# The miniature: the 12 classes of the Imagenette ten and the two quirk classes (a CMYK JPEG, a PNG named .JPEG,
# a grayscale and a progressive image), 4 train and 2 val images each. The 21K and evaluation-set miniatures
# take their own classes (only the seed applies to them).
SAMPLE_ARGS = ("--classes", "12", "--train-per-class", "4", "--val-per-class", "2", "--quirks", "--seed", "7")


# Every layout's miniature is `sample --layout <layout>` (the sample registry holds one per layout).
# More miniatures of one layout: another download of the same release.
MORE_SAMPLES = {"kaggle-zip": ("kaggle-zip-2019",)}  # the older Kaggle zip: a tar.gz inside the zip

MINIATURES = [(layout, sample) for layout in LAYOUTS for sample in (layout, *MORE_SAMPLES.get(layout, ()))]


def _miniature_id(case: tuple[str, str]) -> str:
    layout, sample = case
    return layout if sample == layout else f"{layout}-as-{sample}"


def reference_of(layout: str) -> str | None:
    """The official archive holding the same images as the layout's miniature; None for an evaluation set."""
    cls = SOURCES[layout]
    if cls in EVAL_SOURCES:
        return None
    return "fall11" if cls.class_space == "imagenet-21k" else "ilsvrc"


@pytest.fixture(scope="session")
def miniature(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """(layout, sample layout) -> the folder holding that miniature, written once per session."""
    made: dict[tuple[str, str], Path] = {}
    runner = CliRunner()

    def make(layout: str, sample: str) -> Path:
        if (layout, sample) not in made:
            root = tmp_path_factory.mktemp(f"mini-{layout}-{sample}")
            done = runner.invoke(app, ["sample", str(root), "--layout", sample, "--overwrite", *SAMPLE_ARGS])
            assert done.exit_code == 0, (
                f"`sample --layout {sample}` wrote no miniature for {layout}: {done.output}"
            )
            made[(layout, sample)] = root
        return made[(layout, sample)]

    return make


# ---------------------------------------------------------------------------------------------- oracle
WNID_RE = re.compile(r"^n\d{8}$")
VAL_NAME_RE = re.compile(r"^ILSVRC2012_val_(\d{8})\.JPEG$")


def _archive_files(path: Path, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path parts of every file in a tar (any compression) or zip, a tar inside opened too."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            yield from (prefix + tuple(n.split("/")) for n in archive.namelist() if not n.endswith("/"))
        return
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            parts = prefix + tuple(member.name.split("/"))
            if member.isfile() and member.name.endswith(".tar"):
                data = archive.extractfile(member).read()  # type: ignore[union-attr]
                with tarfile.open(fileobj=io.BytesIO(data)) as inner:
                    yield from (parts + tuple(m.name.split("/")) for m in inner.getmembers() if m.isfile())
            elif member.isfile():
                yield parts


def _label(parts: tuple[str, ...]) -> str:
    """The class of a file: its nearest <wnid> folder or <wnid>.tar, an ImageNetV2 folder (the sorted-1K index),
    or, for an ILSVRC2012 validation image, the bundled label of its number."""
    for part in reversed(parts[:-1]):
        stem = part.removesuffix(".tar")
        if WNID_RE.match(stem):
            return stem
        if part.isdigit():
            return classes.by_index(int(part)).wnid
    number = VAL_NAME_RE.match(parts[-1])
    assert number is not None, parts
    return classes.val_labels()[int(number.group(1)) - 1]


def _by_class(files: list[tuple[str, ...]], key: bool) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for parts in files:
        name = parts[-1]
        out.setdefault(_label(parts), []).append(os.path.splitext(name)[0] if key else name)
    return {wnid: sorted(names) for wnid, names in out.items()}


def written(
    layout: str, miniature: Callable[[str, str], Path]
) -> tuple[str, dict[str, dict[str, list[str]]]]:
    """What the layout's miniature holds, read with tarfile / zipfile alone: split -> wnid -> sorted file names,
    and which SourceFile field they are. The 1K layouts hold the ILSVRC2012 miniature's images under their own
    names (suffixed, .jpg, ...), so they are compared by key (the canonical stem)."""
    reference = reference_of(layout)
    if reference == "ilsvrc":
        root = miniature("ilsvrc", "ilsvrc")
        splits = {"train": "ILSVRC2012_img_train.tar", "val": "ILSVRC2012_img_val.tar"}
        return "key", {
            split: _by_class(list(_archive_files(root / name)), key=True) for split, name in splits.items()
        }
    if reference == "fall11":
        root = miniature("fall11", "fall11")
        return "name", {"train": _by_class(list(_archive_files(root / "fall11_whole.tar")), key=False)}
    root = miniature(layout, layout)
    [archive] = [p for p in root.iterdir() if p.is_file() and not p.name.endswith(".index.json")]
    return "name", {"val": _by_class(list(_archive_files(archive)), key=False)}


# ----------------------------------------------------------------------------------------------- tests
def test_the_contract_runs_over_every_registered_layout():
    assert {layout for layout, _sample in MINIATURES} == set(SOURCES) and tuple(SOURCES) == LAYOUTS
    assert set(MORE_SAMPLES) <= set(SOURCES)  # no entry for a layout that is gone


@pytest.mark.parametrize(("layout", "sample"), MINIATURES, ids=map(_miniature_id, MINIATURES))
def test_detect_recognises_the_miniature_and_open_source_picks_its_layout(miniature, layout, sample):
    root = miniature(layout, sample)
    assert detect_layouts(root) == [layout]
    source = open_source(root)
    try:
        assert type(source).layout == layout
    finally:
        source.close()


@pytest.mark.parametrize(("layout", "sample"), MINIATURES, ids=map(_miniature_id, MINIATURES))
def test_index_lists_the_classes_and_files_the_miniature_wrote(miniature, layout, sample):
    field, expected = written(layout, miniature)
    assert expected and all(expected.values())
    source = open_source(miniature(layout, sample))
    try:
        assert source.splits() == tuple(expected)
        for split, by_class in expected.items():
            wnids = source.classes(split)
            assert sorted(wnids) == sorted(by_class), split
            index = source.index(split, wnids, None)
            assert index.refused == ()
            got = {
                wnid: sorted(getattr(file, field) for file in files) for wnid, files in index.files.items()
            }
            assert got == by_class, split
    finally:
        source.close()


# ------------------------------------------------------------------------------------------- same tree
FULL = {"resize": "square", "size": 32, "workers": 1}
# Per reference: the builds compared, and what each must hold (files written, images per split).
BUILDS = {
    "ilsvrc": {
        "full": (
            FULL,
            {"files": 12 * 4 + 12 * 2 + 5, "train": 12 * 4, "val": 12 * 2},
        ),  # + 3 label maps, 2 manifests
        # A subset with per-class sampling picks the same files whatever the layout.
        "subset": ({"subset": "imagenette", "train_per_class": 3, "workers": 1}, {"train": 10 * 3}),
    },
    "fall11": {
        "full": (
            {**FULL, "splits": "train"},
            {"files": 7 * 6 + 4, "train": 7 * 6},
        ),  # + 3 label maps, 1 manifest
        "sampled": ({"train_per_class": 3, "splits": "train", "workers": 1}, {"train": 7 * 3}),
    },
}


@pytest.fixture(scope="session")
def reference_trees(miniature, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, dict]]:
    """reference layout -> build name -> (tree, build.json) of its official-archive build, built once."""
    built: dict[str, dict[str, tuple[dict[str, str], dict]]] = {}

    def get(reference: str) -> dict:
        if reference not in built:
            base = tmp_path_factory.mktemp(f"reference-{reference}")
            root = miniature(reference, reference)
            built[reference] = {}
            for name, (options, _expect) in BUILDS[reference].items():
                record = run_build(root, base / name, **options)
                built[reference][name] = (tree(base / name), record)
        return built[reference]

    return get


def _tree_cases() -> Iterator:
    for case in MINIATURES:
        layout, sample = case
        reference = reference_of(layout)
        if reference is None:
            reason = f"{layout} is an evaluation set: no other layout holds its images, so no build to compare with"
            yield pytest.param(layout, sample, id=_miniature_id(case), marks=pytest.mark.skip(reason=reason))
        else:
            yield pytest.param(layout, sample, id=_miniature_id(case))


@pytest.mark.parametrize(("layout", "sample"), _tree_cases())
def test_a_build_gives_the_same_tree_as_the_official_archive_holding_the_same_images(
    miniature, reference_trees, tmp_path, layout, sample
):
    reference = reference_of(layout)
    assert reference is not None
    expected = reference_trees(reference)
    for name, (options, expect) in BUILDS[reference].items():
        ref_tree, ref_record = expected[name]
        if (layout, sample) == (reference, reference):
            got, record = ref_tree, ref_record  # the reference itself: built once
        else:
            record = run_build(miniature(layout, sample), tmp_path / name, **options)
            got = tree(tmp_path / name)
        assert got == ref_tree, name
        if "files" in expect:
            assert len(got) == expect["files"], name
        assert record["layout"] == layout
        for split in ("train", "val"):
            if split in expect:
                assert record["counts"][split]["images"] == expect[split], (name, split)


# ---------------------------------------------------------------------------------------------- close
def _open_files_under(root: Path) -> list[str]:
    """The files under ``root`` this process holds open."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(f"{root}{os.sep}"):
            found.append(target)
    return found


@pytest.fixture
def cold_copy(miniature, tmp_path) -> Callable[[str], Path]:
    """A copy of the layout's miniature without index caches: the source opens its archives afresh."""

    def copy(layout: str) -> Path:
        root = tmp_path / "src"
        shutil.copytree(
            miniature(layout, layout),
            root,
            ignore=shutil.ignore_patterns("*.index.json"),
        )
        return root

    return copy


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="open files are listed from /proc")
SPLITS = {"ilsvrc": "train,val", "fall11": "train", None: "val"}  # by reference (see reference_of)


@needs_proc
def test_close_releases_the_archives_the_source_holds_open(cold_copy):
    root = cold_copy("ilsvrc")
    source = open_source(root)
    for split in source.splits():
        source.index(split, source.classes(split), None)
    assert sorted(Path(p).name for p in _open_files_under(root)) == [
        "ILSVRC2012_img_train.tar",
        "ILSVRC2012_img_val.tar",
    ]
    source.close()
    assert _open_files_under(root) == []
    source.index("train", source.classes("train")[:1], None)  # a closed source reopens what it needs
    source.close()


@needs_proc
@pytest.mark.parametrize("layout", LAYOUTS)
def test_inspect_the_dry_run_and_a_build_close_the_source(cold_copy, tmp_path, layout):
    root = cold_copy(layout)
    splits = SPLITS[reference_of(layout)]
    inspect_source(root)
    assert _open_files_under(root) == [], "inspect"
    dry_run(
        build_config({}, {"source": str(root), "out": str(tmp_path / "dry"), "splits": splits, "workers": 1})
    )
    assert _open_files_under(root) == [], "dry run"
    kept = []  # the caller keeps the plan: the build must still have closed its source
    config = build_config(
        {}, {"source": str(root), "out": str(tmp_path / "o"), "splits": splits, "workers": 1}
    )
    build(config, on_plan=lambda plan, _todo: kept.append(plan))
    assert kept and _open_files_under(root) == [], "build"


def test_missing_names_what_a_folder_lacks_and_defaults_to_nothing(cold_copy, miniature):
    root = cold_copy("ilsvrc")
    assert inspect_source(root)["missing"] == []
    (root / "ILSVRC2012_img_val.tar").unlink()
    (root / "ILSVRC2012_devkit_t12.tar.gz").unlink()
    report = inspect_source(root)
    assert report["missing"] == ["val", "devkit"] and list(report["splits"]) == ["train"]
    # A layout without its own missing() reports nothing missing (SourceBase's default).
    assert SOURCES["fall11"].missing is SourceBase.missing
    assert inspect_source(miniature("fall11", "fall11"))["missing"] == []
