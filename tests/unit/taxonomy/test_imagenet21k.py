"""ImageNet-21K label spaces, unique display names and WordNet leaves under a synset."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import pytest
from support import DATA as BUNDLED
from support import REPO
from support.reference import DIGESTS, digest, facts_dir

from imagenet_prep import classes, synsets, wordnet
from imagenet_prep.errors import UnknownClassError, UsageError
from imagenet_prep.records import ClassSet
from imagenet_prep.taxonomy import imagenet21k as taxonomy_21k
from imagenet_prep.taxonomy.imagenet21k import class_set_21k, label_space, leaves_under_21k

DATA = BUNDLED / "imagenet21k"

EXPECTED = {
    # name: (file, classes, first line, last line)
    "imagenet22k": ("imagenet22k_synsets.txt", 21841, "n00004475", "n15102894"),
    "imagenet12k": ("imagenet12k_synsets.txt", 11821, "n00005787", "n15102894"),
    "imagenet21k-p": ("imagenet21k_miil_synsets.txt", 11221, "n00005787", "n15102894"),
    "imagenet21k-p-w21": ("imagenet21k_miil_w21_synsets.txt", 10450, "n00005787", "n15102894"),
    "imagenet22k-ms": ("imagenet22k_ms_synsets.txt", 21842, "n01440764", "n15102894"),
    "goog": ("imagenet21k_goog_synsets.txt", 21843, "n00004475", "n15102894"),
}


def test_label_spaces_are_the_six_known_ones() -> None:
    assert tuple(EXPECTED) == taxonomy_21k.LABEL_SPACES


@pytest.mark.parametrize("space", list(EXPECTED))
def test_label_space_lengths_and_lines_equal_the_files(space: str) -> None:
    file, count, first, last = EXPECTED[space]
    wnids = label_space(space)
    assert len(wnids) == count == len(set(wnids))
    assert (wnids[0], wnids[-1]) == (first, last)
    assert digest(wnids) == DIGESTS[file]  # the published file's lines, in its exact order
    assert label_space(space.upper()) == wnids


def test_label_space_facts() -> None:
    assert label_space("imagenet22k") == tuple(sorted(label_space("imagenet22k")))
    one_k = tuple(info.wnid for info in classes.all_classes())
    assert label_space("imagenet22k-ms")[:1000] == one_k
    assert "n04399382" not in label_space("imagenet22k")  # teddy bear: not in fall11's list
    assert set(label_space("imagenet21k-p")) <= set(label_space("imagenet22k"))


def test_unknown_label_space_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownClassError) as info:
        label_space("imagenet21k")
    message = str(info.value)
    assert all(name in message for name in taxonomy_21k.LABEL_SPACES)
    assert "Did you mean" in message


@pytest.mark.parametrize("space", list(EXPECTED))
def test_names_are_unique_even_ignoring_case(space: str) -> None:
    class_set = taxonomy_21k.label_space_class_set(space)
    assert class_set.name == space and class_set.wnids == label_space(space)
    assert len(class_set.names) == len(class_set.wnids)
    assert len(set(class_set.names)) == len(class_set.names)
    # Ignoring case too, but for the 1K's own pair "Cardigan" (corgi) / "cardigan" (sweater), kept as 1K names
    folded = {n.casefold() for n in class_set.names}
    both = {"n02113186", "n02963159"} <= set(class_set.wnids)
    assert len(folded) == len(class_set.names) - both
    assert all(n and n == n.strip() and "\t" not in n and "_" not in n for n in class_set.names)


def test_names_of_21841_classes_are_fast_and_need_no_wordnet() -> None:
    taxonomy_21k.bundled_names.cache_clear()
    start = time.perf_counter()
    class_set = class_set_21k(label_space("imagenet22k"))
    assert time.perf_counter() - start < 2.0  # measured ~0.05 s
    assert len(set(class_set.names)) == 21841


def test_1k_classes_keep_their_1k_names_and_others_get_wordnet_lemmas() -> None:
    names = taxonomy_21k.bundled_names()
    for info in classes.all_classes():
        assert names[info.wnid] == info.name
    assert names["n02012849"] == "crane (wading bird)" and names["n03126707"] == "crane (lifting device)"
    assert names["n02205219"] == "crane fly"
    assert names["n00004475"] == "organism"
    # the same first lemma and the same hypernym: another lemma, else the wnid, tells them apart
    assert names["n01521399"] == "rhea (Rhea americana)" and names["n01521756"] == "rhea (nandu)"
    assert names["n01887896"] == "calf (young mammal, n01887896)"
    assert names["n04319937"] == "stilt (pole)"  # hypernym in brackets, as the 1K names do


def test_class_set_keeps_order_and_refuses_bad_lists() -> None:
    class_set = class_set_21k(["n15102894", "n01440764"], name="two")
    knothole = taxonomy_21k.bundled_names()["n15102894"]
    assert class_set == ClassSet("two", ("n15102894", "n01440764"), (knothole, "tench"))
    with pytest.raises(UsageError, match="twice"):
        class_set_21k(["n01440764", "n01440764"])
    with pytest.raises(UnknownClassError, match="Not wnids"):
        class_set_21k(["tench"])


@pytest.fixture(scope="module")
def wn():
    return wordnet.load()


def test_wnids_outside_the_bundled_table_are_named_from_wordnet(wn) -> None:
    life = next(w for w, n in taxonomy_21k.bundled_names().items() if n == "life")
    assert "n00006269" not in taxonomy_21k.bundled_names()  # life.n.10: in no label space
    class_set = class_set_21k([life, "n00006269", "n00001740"])
    assert class_set.names == ("life", "life (living thing)", "entity")


def _facts_from_bundled(folder: Path) -> Path:
    """Rebuild make_21k_data.py's inputs from the bundled data (the label spaces are its gzipped copies of the
    published lists, checked against their digests above; SOURCE.md is the bundled one without the note the
    script appends), so the script's outputs, names.tsv.gz from WordNet included, must come out byte-identical."""
    folder.mkdir()
    for bundled in taxonomy_21k.LABEL_SPACE_FILES.values():
        (folder / bundled.removesuffix(".gz")).write_bytes(gzip.decompress((DATA / bundled).read_bytes()))
    source = (DATA / "SOURCE.md").read_text(encoding="utf-8")
    (folder / "SOURCE.md").write_text(source[: source.index("\n## In this package")] + "\n", encoding="utf-8")
    return folder


@pytest.mark.slow  # names 21,844 synsets from WordNet
@pytest.mark.parametrize("source", ["published", "rebuilt"])
def test_bundled_names_file_is_what_the_script_makes(tmp_path: Path, wn, source: str) -> None:
    import importlib.util

    # "published" runs only where the published lists are given; "rebuilt" always runs
    facts = facts_dir("imagenet21k") if source == "published" else _facts_from_bundled(tmp_path / "facts")
    tmp_path = tmp_path / "out"
    spec = importlib.util.spec_from_file_location("make_21k_data", REPO / "scripts" / "make_21k_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--facts", str(facts), "--out", str(tmp_path)])
    for made in tmp_path.iterdir():
        assert made.read_bytes() == (DATA / made.name).read_bytes(), made.name
    assert {p.name for p in tmp_path.iterdir()} == {p.name for p in DATA.iterdir()}
    lines = gzip.decompress((DATA / "names.tsv.gz").read_bytes()).decode().splitlines()
    assert len(lines) == 1 + 21844


def test_leaves_under_dog_in_21k(wn) -> None:
    space = label_space("imagenet22k")
    dogs = leaves_under_21k("dog.n.01", space)
    assert "n02084071" in dogs  # the synset itself
    one_k_dogs = synsets.imagenet_leaves("dog.n.01")
    assert len(one_k_dogs) == 118
    assert set(one_k_dogs) <= set(dogs)
    assert len(dogs) > 150  # many more breeds than in 1K
    assert "n02123045" not in dogs  # tabby cat
    assert list(dogs) == [w for w in space if w in set(dogs)]  # the label space's order
    ms = leaves_under_21k("n02084071", label_space("imagenet22k-ms"))
    assert ms[:118] == one_k_dogs  # Microsoft's order puts the 1K classes first
    assert leaves_under_21k("dog.n.01", ["n01440764"]) == ()
