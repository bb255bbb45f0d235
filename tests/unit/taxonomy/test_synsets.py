"""imagenet_prep.synsets against the real WordNet 3.0 (loaded once for the module), and the `synsets` CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagenet_prep import classes, synsets, wordnet
from imagenet_prep.cli import app
from imagenet_prep.errors import AmbiguousSynsetError, UnknownClassError, UsageError, WordNetError


@pytest.fixture(scope="module")
def wn():
    """The nltk reader itself, for independent cross-checks (the same one synsets uses: loaded once)."""
    return wordnet.load()


def nltk_wnid(synset) -> str:
    return f"n{synset.offset():08d}"


def leaves_by_descent(wn, name: str, *, instances: bool) -> list[str]:
    """An independent count: walk DOWN from the synset (synsets.py walks up from the 1000 classes)."""
    top = wn.synset(name)

    def kids(s):
        return s.hyponyms() + s.instance_hyponyms() if instances else s.hyponyms()

    found = {nltk_wnid(s) for s in top.closure(kids)} | {nltk_wnid(top)}
    return sorted(w for w in found if classes.is_imagenet1k(w))


# --- ImageNet-1K leaves ----------------------------------------------------------------------------


@pytest.mark.parametrize("name, count", [("dog.n.01", 118), ("bird.n.01", 59), ("animal.n.01", 398)])
def test_leaf_counts(wn, name: str, count: int) -> None:
    leaves = synsets.imagenet_leaves(name)
    assert len(leaves) == count
    assert list(leaves) == sorted(set(leaves))
    # Hypernyms only or with instance links: the same classes (documented choice; no 1K class is an instance).
    assert list(leaves) == leaves_by_descent(wn, name, instances=True)
    assert list(leaves) == leaves_by_descent(wn, name, instances=False)


def test_animals_are_exactly_the_first_398_indices() -> None:
    indices = [classes.by_wnid(w).index for w in synsets.imagenet_leaves("animal.n.01")]
    assert indices == list(range(398))


def test_dogs_are_indices_151_to_268_and_imagewoof_is_canine() -> None:
    dogs = synsets.imagenet_leaves("n02084071")
    assert [classes.by_wnid(w).index for w in dogs] == list(range(151, 269))
    woof = set(classes.subset_wnids("imagewoof"))
    assert woof - set(dogs) == {"n02115641"}  # the dingo is a wild dog: a canine, not a dog.n.01
    assert woof <= set(synsets.imagenet_leaves("canine.n.02"))
    assert synsets.imagenet_leaves("dog") == dogs  # plain name -> dog.n.01


def test_leaves_of_entity_is_all_1000_and_of_a_class_itself() -> None:
    assert synsets.imagenet_leaves("entity.n.01") == tuple(c.wnid for c in classes.all_classes())
    assert synsets.imagenet_leaves("n01440764") == ("n01440764",)
    assert synsets.imagenet_leaves("feeling.n.01") == ()
    assert len(synsets.imagenet_leaves("abstraction.n.06")) == 8  # web site, street sign, ...


# --- resolving queries ----------------------------------------------------------------------------


def test_get_by_wnid_sense_and_name(wn) -> None:
    dog = synsets.get("n02084071")
    assert dog.name == "dog.n.01"
    assert dog.lemmas == tuple(wn.synset("dog.n.01").lemma_names())
    assert dog.definition == wn.synset("dog.n.01").definition()
    assert not dog.is_imagenet1k and dog.class_info is None and dog.imagenet1k_index is None
    assert synsets.get("dog.n.01") == dog
    assert synsets.get("Dog.n.01") == dog
    assert synsets.get("dog") == dog  # 7 noun senses, only dog.n.01 leads to ImageNet-1K classes
    assert synsets.get("dogs") == dog  # nltk's morphy
    assert synsets.get(dog) is dog
    assert synsets.get("N02084071") == dog


def test_plain_names_prefer_imagenet_senses() -> None:
    assert synsets.get("tiger").wnid == "n02129604"  # tiger.n.01 is a fierce person
    assert synsets.get("tiger").name == "tiger.n.02"
    assert synsets.get("tabby").wnid == "n02123045"
    assert synsets.get("tabby cat") == synsets.get("tabby")
    assert synsets.get("hot dog").wnid == "n07697537"  # a 1K lemma wins over WordNet's other "hot dog"


def test_imagenet_class_record(wn) -> None:
    tench = synsets.get("n01440764")
    assert (tench.name, tench.imagenet1k_index, tench.is_imagenet1k) == ("tench.n.01", 0, True)
    assert tench.class_info == classes.by_wnid("n01440764")
    assert tench.display_name == "tench"
    crane = synsets.get("n02012849")
    assert crane.display_name == classes.by_wnid("n02012849").name != "crane"
    with pytest.raises(dataclasses.FrozenInstanceError):
        tench.name = "x"  # type: ignore[misc]
    assert len({tench, synsets.get("tench.n.01"), synsets.get("tench")}) == 1  # hashable, equal


def test_bundled_sense_names_agree_with_wordnet(wn) -> None:
    for info in classes.all_classes():
        bundled = synsets.get(info.wnid)
        real = wn.synset_from_pos_and_offset("n", int(info.wnid[1:]))
        assert (bundled.name, bundled.lemmas, bundled.definition) == (
            real.name(),
            tuple(real.lemma_names()),
            real.definition(),
        ), info.wnid
        assert synsets.get(real.name()) == bundled


@pytest.mark.parametrize(
    "word, wnids",
    [
        ("crane", {"n02012849", "n03126707"}),
        ("maillot", {"n03710637", "n03710721"}),
        ("cardigan", {"n02113186", "n02963159"}),
        ("cat", {"n02121620", "n02127808"}),  # cat.n.01 and big_cat.n.01 both lead to 1K classes
    ],
)
def test_ambiguous_names_list_every_noun_sense(wn, word: str, wnids: set[str]) -> None:
    with pytest.raises(AmbiguousSynsetError) as info:
        synsets.get(word)
    error = info.value
    assert isinstance(error, synsets.AmbiguousQueryError)
    expected = [nltk_wnid(s) for s in wn.synsets(word, pos="n")]
    assert [s.wnid for s in error.senses] == expected
    assert wnids <= set(expected)
    message = str(error)
    assert "\n" not in message
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == message and copy.senses == error.senses
    for sense in wn.synsets(word, pos="n"):
        assert nltk_wnid(sense) in message and sense.definition() in message


def test_unknown_queries_suggest_close_matches() -> None:
    with pytest.raises(UnknownClassError, match="dingo"):
        synsets.get("dgo")
    with pytest.raises(UnknownClassError, match=r"dog\.n\.01, frump\.n\.01"):
        synsets.get("dog.n.99")
    with pytest.raises(UnknownClassError, match="n01440764"):
        synsets.get("n0144076")  # 7 digits
    with pytest.raises(UnknownClassError, match="not a WordNet 3.0 noun synset"):
        synsets.get("n99999999")
    with pytest.raises(UsageError, match="not a noun"):
        synsets.get("run.v.01")
    with pytest.raises(UsageError):
        synsets.get("  ")


def test_senses_lemmas_definition(wn) -> None:
    assert [s.name for s in synsets.senses("crane")] == [s.name() for s in wn.synsets("crane", pos="n")]
    assert synsets.lemmas("n01440764") == ("tench", "Tinca_tinca")
    assert synsets.definition("bird.n.01") == wn.synset("bird.n.01").definition()


# --- hierarchy ------------------------------------------------------------------------------------


def canonical_paths(synset) -> list[list[str]]:
    """nltk's hypernym_paths() as wnids, in the documented order: by sense names from the synset upward
    (nltk's own order changes with the hash seed)."""
    paths = sorted(synset.hypernym_paths(), key=lambda path: [s.name() for s in reversed(path)])
    return [[nltk_wnid(s) for s in path] for path in paths]


def test_hypernym_paths(wn) -> None:
    paths = synsets.hypernym_paths("tabby")
    assert [[s.wnid for s in path] for path in paths] == canonical_paths(wn.synset("tabby.n.01"))
    assert len(paths) == 2
    for path in paths:
        assert path[0].name == "entity.n.01" and path[-1].wnid == "n02123045"
    assert [s.name for s in synsets.hypernyms("tabby")] == ["domestic_cat.n.01"]
    assert [path[-3].name for path in paths] == ["cat.n.01", "domestic_animal.n.01"]
    assert [s.name for s in synsets.hypernyms("domestic_cat.n.01")] == ["cat.n.01", "domestic_animal.n.01"]


def test_hypernym_paths_outside_the_bundle_follow_the_same_order(wn) -> None:
    # Synsets that are no 1K class and have none below, with several parents: answered by WordNet.
    for name in ("puppy.n.01", "einstein.n.01", "kitten.n.01", "leash.n.01"):
        assert not synsets.imagenet_leaves(name)
        found = synsets.hypernym_paths(name)
        assert [[s.wnid for s in path] for path in found] == canonical_paths(wn.synset(name)), name
        assert [s.name for s in synsets.hypernyms(name)] == sorted(
            s.name() for s in wn.synset(name).hypernyms() + wn.synset(name).instance_hypernyms()
        )
    assert len(synsets.hypernym_paths("puppy.n.01")) > 1


def test_is_a() -> None:
    assert synsets.is_a("tabby", "cat.n.01")
    assert synsets.is_a("n02123045", "feline.n.01")
    assert not synsets.is_a("tiger", "cat.n.01")  # tiger is a big cat, a sibling of cat.n.01
    assert synsets.is_a("tiger", "feline.n.01")
    assert synsets.is_a("dog.n.01", "dog.n.01")
    assert not synsets.is_a("animal.n.01", "dog.n.01")
    assert synsets.is_a("einstein.n.01", "person.n.01")  # via an instance hypernym
    assert not synsets.is_a("n01440764", "dog.n.01")


def test_lowest_common_ancestor(wn) -> None:
    assert synsets.lowest_common_ancestor("tabby", "tiger").name == "feline.n.01"
    assert synsets.lowest_common_ancestor("dog.n.01", "cat.n.01").name == "carnivore.n.01"
    assert synsets.lowest_common_ancestor("tench", "tench").wnid == "n01440764"
    assert synsets.lowest_common_ancestor("dog.n.01", "n02085620").name == "dog.n.01"  # Chihuahua
    for a, b in [("tabby.n.01", "tiger.n.02"), ("goldfish.n.01", "tench.n.01"), ("crane.n.05", "crane.n.04")]:
        lowest = [s.name() for s in wn.synset(a).lowest_common_hypernyms(wn.synset(b))]
        assert synsets.lowest_common_ancestor(a, b).name in lowest


def test_children_and_tree() -> None:
    every = synsets.children("dog.n.01")
    with_classes = synsets.children("dog.n.01", imagenet_only=True)
    assert set(with_classes) < set(every)
    assert all(synsets.imagenet_leaves(s) for s in with_classes)
    assert "corgi.n.01" in [s.name for s in with_classes]

    full = synsets.tree("dog.n.01")
    assert full.imagenet_leaves == 118
    leaves = {node.synset.wnid for _, node in full.walk() if not node.children}
    assert leaves == set(synsets.imagenet_leaves("dog.n.01"))
    for _, node in full.walk():
        assert node.imagenet_leaves == len(synsets.imagenet_leaves(node.synset))
        assert bool(node.children) != node.synset.is_imagenet1k  # the tree ends exactly at the classes
    shallow = synsets.tree("dog.n.01", depth=1)
    assert [c.synset for c in shallow.children] == list(with_classes)
    assert all(not c.children for c in shallow.children)
    assert synsets.tree("dog.n.01", depth=0).children == ()


# --- search ---------------------------------------------------------------------------------------


def test_search_imagenet_classes() -> None:
    found = synsets.search("terrier")
    assert found and all(s.is_imagenet1k for s in found)
    for s in found:
        names = {s.display_name, *classes.by_wnid(s.wnid).words.split(", "), *s.lemmas, s.name}
        assert any("terrier" in n.lower().replace("_", " ") for n in names), s
    expected = {
        c.wnid for c in classes.all_classes() if "terrier" in (c.words + " " + " ".join(c.lemmas)).lower()
    }
    assert {s.wnid for s in found} >= expected
    assert synsets.search("Tench")[0].wnid == "n01440764"  # exact matches first
    assert synsets.search("n01440764") == (synsets.get("n01440764"),)
    assert len(synsets.search("e", limit=5)) == 5
    assert synsets.search("qqqzzz") == ()


def test_search_all_wordnet() -> None:
    found = synsets.search("dog", all_wordnet=True)
    names = [s.name for s in found]
    first_other = next(i for i, s in enumerate(found) if not s.is_imagenet1k)
    assert all(s.is_imagenet1k for s in found[:first_other])  # the 1K classes come first
    assert not any(s.is_imagenet1k for s in found[first_other:])
    assert "dog.n.01" in names and "hotdog.n.02" in names
    assert len(set(names)) == len(names)
    assert found[first_other].name == "dog.n.01"  # the exact lemma leads the rest

    lions = synsets.search("sea lion", all_wordnet=True)
    assert lions[0].wnid == "n02077923" and lions[0].is_imagenet1k
    assert {"australian_sea_lion.n.01", "steller_sea_lion.n.01"} <= {
        s.name for s in lions
    }  # capitalised lemmas
    assert len(synsets.search("sea lion", all_wordnet=True, limit=2)) == 2


def test_wrong_wordnet_is_refused_but_bundled_lookups_still_work(tmp_path: Path) -> None:
    synsets.use_wordnet(tmp_path)
    try:
        assert synsets.get("n01440764").name == "tench.n.01"
        assert len(synsets.imagenet_leaves("bird.n.01")) == 59  # the bundled hierarchy answers
        with pytest.raises(WordNetError, match="install"):
            synsets.imagenet_leaves("feeling.n.01")  # outside it: WordNet is needed, and refused
        with pytest.raises(WordNetError, match="install"):
            synsets.imagenet_leaves("dog")  # a plain word: WordNet's senses decide
    finally:
        synsets.use_wordnet(None)
    assert len(synsets.imagenet_leaves("dog")) == 118


# --- the bundled ImageNet-1K hierarchy against the real WordNet -------------------------------------


def nltk_parents(synset) -> list:
    return synset.hypernyms() + synset.instance_hypernyms()


@pytest.fixture(scope="module")
def real(wn) -> dict:
    """Straight from nltk: every synset at or above a 1K class, with its ancestors (itself included)."""
    ancestors: dict[str, set[str]] = {}
    nodes: dict[str, object] = {}
    for info in classes.all_classes():
        synset = wn.synset_from_pos_and_offset("n", int(info.wnid[1:]))
        for node in (synset, *synset.closure(nltk_parents)):
            if nltk_wnid(node) not in nodes:
                nodes[nltk_wnid(node)] = node
                ancestors[nltk_wnid(node)] = {nltk_wnid(node)} | {
                    nltk_wnid(s) for s in node.closure(nltk_parents)
                }
    leaves = {
        wnid: sorted(c.wnid for c in classes.all_classes() if wnid in ancestors[c.wnid]) for wnid in nodes
    }
    return {"nodes": nodes, "ancestors": ancestors, "leaves": leaves}


def test_bundled_hierarchy_is_exactly_the_synsets_above_the_1000_classes(real) -> None:
    bundled = synsets._hierarchy()
    assert set(bundled.nodes) == set(real["nodes"])
    assert len(bundled.nodes) == 1860  # the devkit's meta.mat has the same 1860 synsets
    assert bundled.version == wordnet.REQUIRED_VERSION


def test_bundled_answers_equal_wordnet_for_every_bundled_synset(wn, real, monkeypatch) -> None:
    bundle = set(real["nodes"])
    for wnid, node in real["nodes"].items():
        expected = synsets.Synset(
            wnid,
            node.name(),
            tuple(node.lemma_names()),
            node.definition(),
            classes.by_wnid(wnid).index if classes.is_imagenet1k(wnid) else None,
        )
        assert synsets.get(wnid) == expected == synsets._record(node), wnid
        assert synsets.get(node.name()) == expected, wnid
        lemma, pos, number = node.name().rsplit(".", 2)
        assert synsets.get(f"{lemma.upper()}.{pos}.{int(number)}") == expected, wnid  # as nltk reads names
        assert synsets.imagenet_leaves(wnid) == tuple(real["leaves"][wnid]), wnid
        assert [[s.wnid for s in path] for path in synsets.hypernym_paths(wnid)] == canonical_paths(node), (
            wnid
        )
        assert [s.name for s in synsets.hypernyms(wnid)] == sorted(s.name() for s in nltk_parents(node))
        kids = sorted(node.hyponyms() + node.instance_hyponyms(), key=lambda s: s.name())
        assert [s.wnid for s in synsets.children(wnid, imagenet_only=True)] == [
            nltk_wnid(s) for s in kids if nltk_wnid(s) in bundle
        ], wnid
        top = synsets.tree(wnid, depth=1)
        assert top.imagenet_leaves == len(real["leaves"][wnid])
        assert [c.synset for c in top.children] == list(synsets.children(wnid, imagenet_only=True))

    # is_a from every bundled synset: true for its real ancestors, false for a spread of other synsets.
    sample = sorted(bundle)[::31]
    for wnid in bundle:
        for other in sorted(real["ancestors"][wnid] | set(sample)):
            assert synsets.is_a(wnid, other) == (other in real["ancestors"][wnid]), (wnid, other)

    # Lowest common ancestors of a spread of 1K classes (and the two cranes), by the WordNet rule.
    picks = [c.wnid for c in classes.all_classes()[::9]] + ["n02012849", "n03126707", "n02084071"]
    pairs = [(a, b) for i, a in enumerate(picks) for b in picks[i:]]
    answers = {pair: synsets.lowest_common_ancestor(*pair).wnid for pair in pairs}
    for a, b in pairs:
        common = [real["nodes"][w] for w in real["ancestors"][a] & real["ancestors"][b]]
        best = max(common, key=lambda s: (s.max_depth(), -s.offset()))
        assert answers[a, b] == nltk_wnid(best), (a, b)
    for a, b in pairs[:: len(pairs) // 100]:
        lowest = real["nodes"][a].lowest_common_hypernyms(real["nodes"][b])
        assert answers[a, b] in {nltk_wnid(s) for s in lowest}, (a, b)

    # The module's own WordNet code gives the same answers when told that nothing is bundled.
    monkeypatch.setattr(synsets, "_bundled", lambda synset: False)
    for wnid in sorted(bundle)[::7]:
        expected = canonical_paths(real["nodes"][wnid])
        assert synsets.hypernym_paths(wnid) == tuple(tuple(synsets.get(w) for w in path) for path in expected)
        assert synsets.is_a(wnid, sample[3]) == (sample[3] in real["ancestors"][wnid])
    for a, b in pairs[::50]:
        assert synsets.lowest_common_ancestor(a, b).wnid == answers[a, b]


@pytest.mark.parametrize(
    "text", ["Dog.n.1", "dog.n.001", "DOG.n.01", "domestic_dog.n.01", "hunting dog.n.01", "canine.n.02"]
)
def test_sense_name_spellings_resolve_as_wordnet_does(wn, text: str) -> None:
    expected = wn.synset(text.replace(" ", "_"))
    found = synsets.get(text)
    assert found.wnid == nltk_wnid(expected) and found.name == expected.name()


def test_which_sense_names_the_bundle_decides() -> None:
    assert synsets._bundled_query("Dog.n.1").name == "dog.n.01"
    assert synsets._bundled_query("n02084071").name == "dog.n.01"
    # Left to WordNet: another lemma's sense number, nltk's "0 = last sense", other synsets, plain words.
    for text in (
        "domestic_dog.n.01",
        "dog.n.00",
        "feeling.n.01",
        "n07553301",
        "dog",
        "n99999999",
        "run.v.01",
    ):
        assert synsets._bundled_query(text) is None, text


def test_the_bundled_hierarchy_states_wordnet_30_and_another_version_is_refused() -> None:
    from importlib import resources

    text = resources.files("imagenet_prep").joinpath("data", synsets.HIERARCHY_FILE).read_text("utf-8")
    assert "# WordNet version: 3.0\n" in text
    assert synsets._parse_hierarchy(text).leaves["n02084071"] == synsets.imagenet_leaves("dog.n.01")
    with pytest.raises(WordNetError, match="made from WordNet 3.1"):
        synsets._parse_hierarchy(text.replace("# WordNet version: 3.0", "# WordNet version: 3.1"))
    with pytest.raises(WordNetError, match="unstated"):
        synsets._parse_hierarchy(text.replace("# WordNet version: 3.0\n", ""))


# --- CLI ------------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_leaves_json_real_console_script() -> None:
    script = shutil.which("imagenet-prep")
    assert script, "the imagenet-prep console script is not installed (pip install -e .)"
    result = subprocess.run(
        [script, "synsets", "leaves", "dog.n.01", "--json"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == list(synsets.imagenet_leaves("dog.n.01"))
    assert len(json.loads(result.stdout)) == 118


def test_cli_leaves_text() -> None:
    result = runner.invoke(app, ["synsets", "leaves", "bird.n.01", "cat.n.01", "--long"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    union = sorted(set(synsets.imagenet_leaves("bird.n.01")) | set(synsets.imagenet_leaves("cat.n.01")))
    assert [line.split("\t")[0] for line in lines] == union
    assert lines[0].split("\t")[1:] == [str(classes.by_wnid(union[0]).index), classes.by_wnid(union[0]).name]


def test_cli_show_crane_lists_both_senses() -> None:
    result = runner.invoke(app, ["synsets", "show", "crane"])
    assert result.exit_code == 0, result.output
    assert "ambiguous" in result.stdout
    for wnid in ("n02012849", "n03126707"):
        info = classes.by_wnid(wnid)
        assert wnid in result.stdout and info.gloss in result.stdout and info.name in result.stdout
    result = runner.invoke(app, ["synsets", "show", "crane", "--json"])
    records = json.loads(result.stdout)
    assert {r["wnid"] for r in records if r["is_imagenet1k"]} == {"n02012849", "n03126707"}
    assert len(records) == len(synsets.senses("crane"))


def test_cli_show_json() -> None:
    result = runner.invoke(app, ["synsets", "show", "n01440764", "dog", "--json"])
    assert result.exit_code == 0, result.output
    tench, dog = json.loads(result.stdout)
    assert (tench["name"], tench["imagenet1k_index"], tench["ilsvrc2012_id"]) == ("tench.n.01", 0, 449)
    assert (dog["wnid"], dog["is_imagenet1k"], dog["imagenet1k_leaves"]) == ("n02084071", False, 118)


def test_cli_search_and_tree() -> None:
    result = runner.invoke(app, ["synsets", "search", "terrier", "--json", "--limit", "0"])
    assert result.exit_code == 0, result.output
    assert [r["wnid"] for r in json.loads(result.stdout)] == [s.wnid for s in synsets.search("terrier")]

    result = runner.invoke(app, ["synsets", "tree", "tabby", "--depth", "0"])
    assert result.exit_code == 0, result.output
    paths = [line for line in result.stdout.splitlines() if " > " in line]
    assert paths == [" > ".join(s.name for s in p) for p in synsets.hypernym_paths("tabby")]

    result = runner.invoke(app, ["synsets", "tree", "dog.n.01", "--json"])
    payload = json.loads(result.stdout)
    assert payload["tree"]["imagenet1k_leaves"] == 118
    assert payload["paths"][0][0] == "entity.n.01" and payload["paths"][0][-1] == "dog.n.01"

    result = runner.invoke(app, ["synsets", "tree", "corgi.n.01"])
    assert "cardigan.n.02" in result.stdout and "pembroke.n.01" in result.stdout
