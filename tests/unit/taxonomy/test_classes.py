"""The bundled ImageNet-1K metadata (imagenet_prep.classes): indices, names, validation labels, subsets,
and its agreement with WordNet 3.0 and with scripts/make_metadata.py."""

from __future__ import annotations

import gzip
import importlib.util
from collections import Counter
from pathlib import Path

import pytest
from support import DATA, REPO
from support.reference import facts_dir

from imagenet_prep import classes, wordnet
from imagenet_prep.errors import UnknownClassError, UsageError


def test_tench_and_kit_fox() -> None:
    tench = classes.by_wnid("n01440764")
    assert (tench.name, tench.ilsvrc2012_id, tench.index, tench.tf_index) == ("tench", 449, 0, 1)
    assert tench.lemmas == ("tench", "Tinca_tinca") and tench.words == "tench, Tinca tinca"
    assert classes.by_index(0) is tench and classes.by_ilsvrc_id(449) is tench
    assert classes.by_ilsvrc_id(1).wnid == "n02119789"  # kit fox: the devkit's first synset
    assert classes.by_wnid("n02119789").ilsvrc2012_id == 1
    assert classes.by_index(999).wnid == "n15075141" and classes.by_index(999).tf_index == 1000


def test_all_classes_are_consistent() -> None:
    rows = classes.all_classes()
    assert len(rows) == 1000
    assert [c.index for c in rows] == list(range(1000))
    assert [c.wnid for c in rows] == sorted(c.wnid for c in rows)
    assert sorted(c.ilsvrc2012_id for c in rows) == list(range(1, 1001))
    assert all(classes.WNID_RE.match(c.wnid) for c in rows)
    assert len({c.name for c in rows}) == 1000  # unique display names
    assert all(c.gloss and c.lemmas and c.words for c in rows)


@pytest.mark.parametrize(
    "word, wnids", [("crane", ("n02012849", "n03126707")), ("maillot", ("n03710637", "n03710721"))]
)
def test_repeated_words_get_distinct_names(word: str, wnids: tuple[str, str]) -> None:
    first = [c for c in classes.all_classes() if c.words.split(", ")[0] == word]
    assert tuple(c.wnid for c in first) == wnids
    names = [c.name for c in first]
    assert len(set(names)) == 2 and all(name.startswith(f"{word} (") for name in names)
    assert [c.wnid for c in classes.by_name(word)] == list(wnids)
    for c in first:  # each disambiguated name leads back to its class
        assert classes.resolve([c.name]) == (c.wnid,)


def test_resolve_names_and_wnids() -> None:
    assert classes.resolve(["n01443537", "tench", " Tinca tinca ", "goldfish", ""]) == (
        "n01440764",
        "n01443537",
    )
    with pytest.raises(UsageError, match="n02012849.*n03126707"):
        classes.resolve(["crane"])


def test_unknown_classes_list_close_matches() -> None:
    with pytest.raises(UnknownClassError, match="tench") as info:
        classes.resolve(["tenhc"])
    assert "Close matches" in str(info.value)
    with pytest.raises(UnknownClassError, match=r"n01440764 \(tench\)"):
        classes.resolve(["n01440765"])  # not a 1K wnid; the nearest ones are listed
    with pytest.raises(UnknownClassError, match="out of range"):
        classes.by_index(1000)
    with pytest.raises(UnknownClassError, match="out of range"):
        classes.by_ilsvrc_id(0)


def test_val_labels() -> None:
    labels = classes.val_labels()
    assert len(labels) == 50_000
    counts = Counter(labels)
    assert len(counts) == 1000 and set(counts.values()) == {50}
    assert set(counts) == {c.wnid for c in classes.all_classes()}
    # The devkit's ground truth starts 490, 361: val 1 is a sea snake (index 65), val 2 an alp (index 970).
    assert labels[0] == "n01751748" and classes.by_wnid(labels[0]).ilsvrc2012_id == 490
    assert classes.by_wnid(labels[0]).index == 65
    assert labels[1] == "n09193705" and classes.by_wnid(labels[1]).ilsvrc2012_id == 361
    assert classes.val_file_name(1) == "ILSVRC2012_val_00000001.JPEG"


def test_subsets() -> None:
    names = classes.subset_names()
    for name in ("imagenette", "imagewoof", "imagenet-100", "tiny-imagenet-200", "imagenet-a", "imagenet-r"):
        assert name in names
    sizes = {name: len(classes.subset_wnids(name)) for name in names}
    assert sizes["imagenette"] == 10 and sizes["imagewoof"] == 10 and sizes["imagenet-100"] == 100
    assert sizes["tiny-imagenet-200"] == 200 and sizes["imagenet-a"] == 200 and sizes["imagenet-r"] == 200
    assert "n01440764" in classes.subset_wnids("Imagenette")
    for name in names:
        wnids = classes.subset_wnids(name)
        assert list(wnids) == sorted(set(wnids)) and all(classes.is_imagenet1k(w) for w in wnids)
    with pytest.raises(UnknownClassError, match="imagenette"):
        classes.subset_wnids("imagenete")


@pytest.mark.slow  # every class against WordNet 3.0
def test_bundled_metadata_agrees_with_wordnet_30() -> None:
    wn = wordnet.load()
    assert wn.get_version() == "3.0"
    for info in classes.all_classes():
        synset = wn.synset_from_pos_and_offset("n", int(info.wnid[1:]))
        assert info.lemmas == tuple(synset.lemma_names()), info.wnid
        assert info.gloss == synset.definition(), info.wnid
        # the devkit's words are WordNet's lemmas (spaces for underscores), in the same order
        assert info.words.split(", ") == [lemma.replace("_", " ") for lemma in synset.lemma_names()], (
            info.wnid
        )


def _facts_from_bundled(folder: Path) -> Path:
    """Rebuild make_metadata.py's inputs from the bundled data, for checkouts without the published lists (its outputs
    must still come out byte-identical: this checks the WordNet columns, the layout and the determinism)."""
    from imagenet_prep import classes as c

    folder.mkdir()
    rows = sorted(c.all_classes(), key=lambda info: info.ilsvrc2012_id)
    order = "".join(f"{i.ilsvrc2012_id}\t{i.wnid}\t{i.index}\t{i.words}\n" for i in rows)
    (folder / "ilsvrc2012_id_order.txt").write_text(order)
    val = "".join(
        f"{c.val_file_name(k + 1)}\t{w}\t{c.by_wnid(w).ilsvrc2012_id}\t{c.by_wnid(w).index}\n"
        for k, w in enumerate(c.val_labels())
    )
    (folder / "val_labels.txt").write_text(val)
    (folder / "subsets").mkdir()
    spec = _load_script()
    for name, source in spec.SUBSETS.items():
        text = (DATA / "subsets" / f"{name}.txt").read_text()
        (folder / "subsets" / source).write_text("\n".join(line for line in text.splitlines()[1:]) + "\n")
    return folder


def _load_script():
    spec = importlib.util.spec_from_file_location("make_metadata", REPO / "scripts" / "make_metadata.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # runs the script, WordNet 3.0 included
@pytest.mark.parametrize("source", ["published", "rebuilt"])
def test_make_metadata_reproduces_the_bundled_files(tmp_path: Path, source: str) -> None:
    # "published" runs only where the published lists are given; "rebuilt" always runs
    facts = facts_dir("ilsvrc2012") if source == "published" else _facts_from_bundled(tmp_path / "facts")
    out = tmp_path / "out"
    _load_script().main(["--facts", str(facts), "--out", str(out)])
    produced = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    generated = {
        "imagenet1k_classes.tsv",
        "imagenet1k_hierarchy.tsv",
        "val_labels.txt.gz",
    }
    committed = sorted(
        p.relative_to(DATA)
        for p in DATA.rglob("*")
        if p.is_file() and (p.name in generated or p.parent.name == "subsets")
    )
    assert produced == committed
    assert len(produced) == len(generated) + len(classes.subset_names())
    for relative in produced:
        assert (out / relative).read_bytes() == (DATA / relative).read_bytes(), relative
    assert len(gzip.decompress((out / "val_labels.txt.gz").read_bytes()).split()) == 50_000
