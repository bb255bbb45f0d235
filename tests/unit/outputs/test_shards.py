"""Shard planning on columns (SampleRows): the same shards as the Sample-based planning it replaced (kept
below as the reference), with the same unit ids, samples in order and fingerprints, for train and val,
shuffled or not, several seeds, shard sizes in samples and in bytes; a shard travels alone and compact; a
real build writes the same bytes as one planned by the reference."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import pickle
import random
import re
from pathlib import Path

import pytest
from support import tars

from imagenet_prep.build import STATE_DIR, build
from imagenet_prep.columns import (
    PackedFiles,
    SampleBlock,
    SampleRows,
    SampleTable,
    sample_bytes,
    sample_classes,
    sample_locators,
)
from imagenet_prep.config import build_config
from imagenet_prep.outputs import shard_writer as shard_writer_module
from imagenet_prep.outputs import shards as shards_module
from imagenet_prep.outputs import writer_for
from imagenet_prep.outputs.shards import ShardSize, plan_shards
from imagenet_prep.plan import make_plan
from imagenet_prep.records import SourceFile, WorkUnit
from imagenet_prep.sample import SampleSpec, write_sample


# ------------------------------------------------------------------------- the reference (the code replaced)
def _natural_ref(key: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key))


def _shard_order_ref(split, samples, shuffle, seed):
    if split == "train":
        ordered = sorted(samples, key=lambda s: (s.wnid, _natural_ref(s.key)))
        if shuffle:
            random.Random(f"{seed}:{split}").shuffle(ordered)
        return ordered
    return sorted(samples, key=lambda s: (_natural_ref(s.key), s.wnid))


def _cut_shards_ref(samples, size):
    if not size.in_bytes:
        return [tuple(samples[i : i + size.count]) for i in range(0, len(samples), size.count)]
    shards, current, total = [], [], 0
    for sample in samples:
        if current and total + sample.location.size > size.count:
            shards.append(tuple(current))
            current, total = [], 0
        current.append(sample)
        total += sample.location.size
    if current:
        shards.append(tuple(current))
    return shards


def plan_shards_ref(split, groups, size, shuffle, seed, name_of):
    samples = [sample for _, group in groups for sample in group]
    shards = _cut_shards_ref(_shard_order_ref(split, samples, shuffle, seed), size)
    return [(name_of(split, index, len(shards)), shard) for index, shard in enumerate(shards)]


# ---------------------------------------------------------------------------------------------- the release
@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample release whose train tar is re-packed: members out of natural order, numbers that tie in the
    natural order (_010 / _10, _7 / _07), names clashing by case or extension (refused by the plan)."""
    base = write_sample(
        tmp_path_factory.mktemp("sc-base"), SampleSpec(classes=5, train_per_class=7, val_per_class=4, seed=9)
    )
    root = tmp_path_factory.mktemp("sc-release")
    rng = random.Random(4)
    packed: dict[str, tars.Segments] = {}
    for i, (wnid, images) in enumerate(tars.class_tars(base.train_tar).items()):
        blobs = [data for _, data in images]
        names = [f"{wnid}_{n}.JPEG" for n in rng.sample(range(1, 3000), len(blobs))]
        if i in (0, 3):  # ties in the natural order: kept in their input order by a stable sort
            names += [f"{wnid}_010.JPEG", f"{wnid}_10.JPEG", f"{wnid}_07.JPEG", f"{wnid}_7.JPEG"]
            blobs += blobs[:4]
        if i == 1:
            names += [f"{wnid}_77.png", f"{wnid}_77.JPEG"]  # a clash: refused
            blobs += blobs[:2]
        order = list(range(len(names)))
        rng.shuffle(order)
        packed[wnid] = tars.tar(*(tars.member(names[k], blobs[k]) for k in order))
    return tars.release_with(root, base, train=tars.train_tar(packed))


@pytest.fixture(scope="module")
def captured(release, tmp_path_factory) -> dict[str, list]:
    """The groups the plan hands the shard writer, per split (what plan_shards receives)."""
    seen: dict[str, list] = {}

    def spy(split, groups, size, shuffle, seed, name_of):
        seen[split] = list(groups)
        return plan_shards(split, groups, size, shuffle, seed, name_of)

    mp = pytest.MonkeyPatch()
    mp.setattr(shard_writer_module, "plan_shards", spy)  # where the shard writers call it
    try:
        config = build_config({}, {"source": release, "out": release.parent / "unused", "output": "wds"})
        make_plan(config, writer=writer_for(config), cache_dir=tmp_path_factory.mktemp("sc-cache"))
    finally:
        mp.undo()
    return seen


@pytest.fixture(params=["stdlib", "numpy"])
def gather(request, monkeypatch) -> str:
    """Both ways of gathering a split's shards: stdlib loops (small splits) and numpy (large ones)."""
    if request.param == "numpy":
        monkeypatch.setattr(shards_module, "NUMPY_ROWS", 0)
    return request.param


def _name(split: str, index: int, total: int) -> str:
    return f"{split}-{index:06d}-of-{total}"


def _compare(split: str, groups: list, size: ShardSize, shuffle: bool, seed: int) -> list:
    new = plan_shards(split, groups, size, shuffle, seed, _name)
    old = plan_shards_ref(split, groups, size, shuffle, seed, _name)
    assert [unit_id for unit_id, _ in new] == [unit_id for unit_id, _ in old]
    for (unit_id, got), (_, want) in zip(new, old, strict=True):
        assert tuple(got) == want  # the same samples, in the same order
        assert got == want and len(got) == len(want)
        ours, theirs = WorkUnit(split, unit_id, "ilsvrc", got), WorkUnit(split, unit_id, "ilsvrc", want)
        assert ours.fingerprint == theirs.fingerprint
        assert sample_bytes(got) == sample_bytes(want)
        assert sample_locators(got) == sample_locators(want)
        assert sample_classes(got) == sample_classes(want)
    return new


SIZES = [ShardSize(1, False), ShardSize(4, False), ShardSize(9, False), ShardSize(10_000, False)]


def test_the_release_has_what_the_comparison_needs(captured):
    train, val = captured["train"], captured["val"]
    assert all(isinstance(group, SampleTable) for _, group in train)  # columns from the plan
    assert all(isinstance(group, SampleRows) for _, group in val)  # val in storage order: row columns
    assert all(isinstance(group, tuple) for _, group in _scrambled(val, 1))  # and Samples, scrambled
    keys = [(sample.wnid, sample.key) for _, group in train for sample in group]
    naturals = [(wnid, _natural_ref(key)) for wnid, key in keys]
    assert len(set(naturals)) <= len(keys) - 4  # the ties made it in (_010 / _10, _07 / _7, twice)
    scrambled = [(sample.wnid, sample.key) for _, group in _scrambled(train, 1) for sample in group]
    assert scrambled != sorted(scrambled, key=lambda k: (k[0], _natural_ref(k[1])))  # out of order
    sizes = sorted(sample.location.size for _, group in train for sample in group)
    assert sizes[0] < sizes[-1]  # byte sizes cut at different counts


def _scrambled(groups: list, seed: int) -> list:
    """The groups in reverse, each one's samples in a random order (tables stay tables)."""
    rng = random.Random(seed)
    scrambled = []
    for group_id, group in reversed(groups):
        positions = list(range(len(group)))
        rng.shuffle(positions)
        if isinstance(group, SampleTable):
            scrambled.append((group_id, group.take(positions)))
        else:
            scrambled.append((group_id, tuple(group[p] for p in positions)))
    return scrambled


def _as_tables(split: str, groups: list) -> list:
    """Each group as a SampleTable: a block per run of samples of one class (what a source of columns gives)."""
    tables = []
    for group_id, group in groups:
        blocks = []
        for (wnid, label), run in itertools.groupby(group, key=lambda s: (s.wnid, s.label)):
            files = PackedFiles.of([SourceFile(s.name, s.key, s.location) for s in run])
            assert files is not None
            blocks.append(SampleBlock(wnid, label, files))
        tables.append((group_id, SampleTable(split, blocks)))
    return tables


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("arrangement", ["plan", "scrambled", "tables"])
def test_columns_plan_the_shards_the_samples_did(captured, split, shuffle, arrangement, gather):
    groups = captured[split]
    if arrangement == "scrambled":  # the stable sort's ties keep this input order
        groups = _scrambled(groups, 5)
    elif arrangement == "tables":
        groups = _as_tables(split, _scrambled(groups, 6))
    sizes = [sample.location.size for _, group in groups for sample in group]
    average = sum(sizes) // len(sizes)
    byte_sizes = [
        ShardSize(min(sizes) - 1, True),  # smaller than any image: one image a shard
        ShardSize(max(sizes), True),
        ShardSize(3 * average, True),
        ShardSize(7 * average + 1, True),
        ShardSize(10**9, True),
    ]
    for seed in (0, 1, 7, 12345):
        samples = [sample for _, group in groups for sample in group]
        ordered = _shard_order_ref(split, samples, shuffle, seed)
        exact = ShardSize(sum(s.location.size for s in ordered[:3]), True)  # a shard that fills it exactly
        for size in [*SIZES, *byte_sizes, exact]:
            shards = _compare(split, groups, size, shuffle, seed)
            assert all(isinstance(shard, SampleRows) for _, shard in shards)
            if size.in_bytes and size.count < min(sizes):
                assert all(len(shard) == 1 for _, shard in shards)
            if not shuffle:
                break  # the seed changes nothing


def test_other_groupings_and_names_give_the_same_shards(captured, gather):
    """Train as Samples (a source without columns), a mix of tables and Samples, names that are not the
    key + one suffix, samples without a tar header: still columns, still the same shards."""
    train = captured["train"]
    samples = [sample for _, group in train for sample in group]
    as_samples = [(f"g{i}", tuple(samples[i : i + 5])) for i in range(0, len(samples), 5)]
    mixed = [train[0], *_scrambled(as_samples[3:], 2), train[-1]]
    renamed = [
        dataclasses.replace(s, name=s.name.lower() if i % 3 else s.name) for i, s in enumerate(samples)
    ]
    headerless = [
        dataclasses.replace(s, location=dataclasses.replace(s.location, header_offset=None)) if i % 2 else s
        for i, s in enumerate(samples)
    ]
    for groups in (as_samples, mixed, [("all", tuple(renamed))], [("all", tuple(headerless))]):
        for shuffle, size in ((True, ShardSize(4, False)), (False, ShardSize(5000, True))):
            shards = _compare("train", groups, size, shuffle, 3)
            assert all(isinstance(shard, SampleRows) for _, shard in shards)
    names = plan_shards("train", [("all", tuple(renamed))], ShardSize(100, False), True, 0, _name)
    assert names[0][1].names() == [s.name for s in names[0][1]]


def test_annotated_or_compressed_samples_keep_the_sample_path(captured):
    train = captured["train"]
    samples = [sample for _, group in train for sample in group]
    boxed = dataclasses.replace(samples[2], boxes=(("n01440764", 1.0, 2.0, 30.0, 40.0),), boxes_size=(64, 48))
    extra = dataclasses.replace(samples[5], extra=(("real_labels", "3 4"),))
    deflated = dataclasses.replace(
        samples[7], location=dataclasses.replace(samples[7].location, compression="deflate")
    )
    for odd in (boxed, extra, deflated):
        changed = [odd if s.key == odd.key else s for s in samples]
        shards = _compare("train", [("all", tuple(changed))], ShardSize(4, False), True, 5)
        assert all(isinstance(shard, tuple) for _, shard in shards)
        assert any(odd in shard for _, shard in shards)  # the annotations are intact


def test_a_shard_travels_alone_and_compact(captured, gather):
    train = captured["train"]
    whole = plan_shards("train", train, ShardSize(10**6, False), True, 0, _name)[0][1]
    small = plan_shards("train", train, ShardSize(3, False), True, 0, _name)
    for unit_id, shard in small:
        unit = WorkUnit("train", unit_id, "ilsvrc", shard)
        again = pickle.loads(pickle.dumps(unit))
        assert isinstance(again.samples, SampleRows) and again.samples == shard
        assert tuple(again.samples) == tuple(shard) and again.fingerprint == unit.fingerprint
        assert len(shard.sources) <= len(shard)  # only the classes and files it reads
    sizes = [len(pickle.dumps(shard)) for _, shard in small]
    whole_size = len(pickle.dumps(whole))
    assert max(sizes) < whole_size / 3  # a shard carries its own rows, never the split's
    # per row: a few numbers and a key (~50 bytes), less than the records' pickle even with its memo
    assert (whole_size - max(sizes)) / (len(whole) - 3) < 64
    assert whole_size < len(pickle.dumps(tuple(whole)))
    rows = small[0][1]
    listed = tuple(rows)
    assert rows[0] == listed[0] and rows[-1] == listed[-1] and rows[1:] == listed[1:]
    assert hash(rows) == hash(listed) and rows.keys() == [s.key for s in listed]
    with pytest.raises(IndexError):
        rows[len(rows)]


def test_a_byte_size_past_every_byte_is_one_shard(captured, gather):
    for size in (ShardSize(10**19, True), ShardSize(2**80, True), ShardSize(10**19, False)):
        shards = _compare("train", captured["train"], size, True, 0)
        assert len(shards) == 1


def test_an_empty_split_plans_no_shards(gather):
    assert plan_shards("val", [], ShardSize(4, False), True, 0, _name) == []
    assert plan_shards("train", [], ShardSize(10, True), True, 0, _name) == []


# --------------------------------------------------------------------------------------------- real builds
def _snapshot(out: Path) -> dict[str, str]:
    return {
        str(path.relative_to(out)): hashlib.md5(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file() and STATE_DIR not in path.relative_to(out).parts and path.name != "build.json"
    }


def _fingerprints(out: Path) -> dict[str, str]:
    done = out / STATE_DIR / "done"
    return {path.stem: json.loads(path.read_text())["fingerprint"] for path in sorted(done.glob("*.json"))}


@pytest.mark.slow  # real builds of every sample
@pytest.mark.parametrize(("output", "shard_size"), [("wds", "7"), ("parquet", "20KB")])
def test_a_build_writes_the_bytes_the_sample_planning_wrote(
    release, tmp_path, monkeypatch, gather, output, shard_size
):
    def run(out: Path):
        values = {"source": release, "out": out, "size": 32, "workers": 2, "output": output}
        return build(build_config({}, {**values, "shard_size": shard_size, "shuffle_seed": 4}))

    ours = run(tmp_path / "ours")
    with monkeypatch.context() as patched:
        patched.setattr(shard_writer_module, "plan_shards", plan_shards_ref)  # wds and parquet call it there
        theirs = run(tmp_path / "theirs")
    assert ours.units_total == theirs.units_total > 2
    assert _snapshot(tmp_path / "ours") == _snapshot(tmp_path / "theirs")
    assert _fingerprints(tmp_path / "ours") == _fingerprints(tmp_path / "theirs")
    # the reference's done markers count for the columns' units: a re-run there redoes nothing
    again = run(tmp_path / "theirs")
    assert again.units_resumed == again.units_total == theirs.units_total and again.units_rebuilt == 0


def test_name_suffix_only_when_every_name_is_its_key_and_one_suffix():
    def suffix(names: list[str], keys: list[str]) -> str | None:
        return PackedFiles("x.tar", names, keys, range(len(names)), [1] * len(names)).name_suffix()

    assert suffix(["a_1.JPEG", "a_2.JPEG"], ["a_1", "a_2"]) == ".JPEG"
    assert suffix(["a_1", "a_2"], ["a_1", "a_2"]) == ""
    assert suffix(["a_1.JPEG"], ["a_1"]) == ".JPEG"
    assert suffix(["b", "a.JPEG"], ["b", "a"]) is None  # the first without it
    assert suffix(["a.JPEG", "b"], ["a", "b"]) is None  # the last without it
    assert suffix(["a.JPEG", "b.jpeg"], ["a", "b"]) is None
    assert suffix(["a.JPEG", "c.JPEG"], ["a", "b"]) is None  # another key
    assert suffix(["a.JPEG.JPEG", "b.JPEG"], ["a", "b"]) is None
    assert suffix(["x/a.JPEG", "x/b.JPEG"], ["a", "b"]) is None  # a prefix is not a suffix
    assert suffix(["a\nz.JPEG", "b.JPEG"], ["a\nz", "b"]) is None  # names holding "\n": not packed by "\n"


def test_rows_read_in_chunks_as_at_once(captured):
    """A worker iterates a shard (and the parent fingerprints it) a chunk of rows at a time: the same rows,
    names, keys and digest whatever the chunk."""
    train = captured["train"]
    samples = [sample for _, group in train for sample in group]
    renamed = tuple(
        dataclasses.replace(s, name=s.name.lower() if i % 3 else s.name) for i, s in enumerate(samples)
    )
    for groups in (train, [("all", renamed)]):
        rows = plan_shards("train", groups, ShardSize(10**6, False), True, 2, _name)[0][1]
        assert isinstance(rows, SampleRows) and len(rows) == len(samples)
        whole = hashlib.sha256()
        rows.fingerprint_into(whole)
        for chunk in (1, 2, 7, len(rows) - 1, len(rows)):
            digest = hashlib.sha256()
            rows.fingerprint_into(digest, chunk)
            assert digest.hexdigest() == whole.hexdigest()
            chunked = [row for part in rows._chunks(chunk) for row in part]
            assert [(name, key) for name, key, *_ in chunked] == list(
                zip(rows.names(), rows.keys(), strict=True)
            )
        for start, end in ((0, 1), (3, 9), (len(rows) - 2, len(rows)), (5, 5)):
            assert rows.keys(start, end) == rows.keys()[start:end]
            assert rows.names(start, end) == rows.names()[start:end]
        listed = [sample for _, group in groups for sample in group]
        assert rows.names() == [s.name for s in rows] and sorted(rows, key=listed.index) == listed


# ------------------------------------------------------------------------------------------- --min-shards
@pytest.mark.parametrize("split", ["train", "val"])
def test_a_minimum_shard_count_cuts_evenly_and_keeps_the_order(captured, split, gather):
    groups = captured[split]
    count = sum(len(group) for _, group in groups)
    for size in (ShardSize(10**6, False), ShardSize(10**12, True), ShardSize(3, False)):
        plain = plan_shards(split, groups, size, True, 4, _name)
        for at_least in (1, 2, 5, count, count + 10):
            shards = plan_shards(
                split, groups, ShardSize(size.count, size.in_bytes, at_least), True, 4, _name
            )
            lengths = [len(shard) for _, shard in shards]
            # the same samples in the same order, only cut at other places
            assert [s for _, shard in shards for s in shard] == [s for _, shard in plain for s in shard]
            assert len(shards) == max(len(plain), min(at_least, count))
            if len(plain) >= at_least:
                assert shards == plain  # the size already gives enough shards: nothing changes
            else:
                assert max(lengths) - min(lengths) <= 1  # even
            assert [unit_id for unit_id, _ in shards] == [
                _name(split, i, len(shards)) for i in range(len(shards))
            ]


def test_the_sample_path_cuts_the_minimum_as_the_columns_do(captured):
    train = captured["train"]
    samples = [sample for _, group in train for sample in group]
    boxed = dataclasses.replace(samples[2], boxes=(("n01440764", 1.0, 2.0, 30.0, 40.0),), boxes_size=(64, 48))
    changed = tuple(boxed if s.key == boxed.key else s for s in samples)
    for size in (ShardSize(10**6, False, 7), ShardSize(10**12, True, 7), ShardSize(4, True, 7)):
        by_samples = plan_shards("train", [("all", changed)], size, True, 1, _name)
        by_columns = plan_shards("train", [("all", tuple(samples))], size, True, 1, _name)
        assert all(isinstance(shard, tuple) for _, shard in by_samples)
        assert [[s.key for s in shard] for _, shard in by_samples] == [
            [s.key for s in shard] for _, shard in by_columns
        ]


def test_few_shards_warns_per_split_and_says_what_to_do(captured):
    from imagenet_prep.outputs.shards import FEW_SHARDS, few_shards

    val = tuple(sample for _, group in captured["val"] for sample in group)
    train = tuple(sample for _, group in captured["train"] for sample in group)
    assert len(val) > 1 and len(train) >= FEW_SHARDS
    one = [WorkUnit("val", "v", "ilsvrc", val)]
    each = [WorkUnit("val", f"v{i}", "ilsvrc", (sample,)) for i, sample in enumerate(val[:5])]
    enough = [WorkUnit("train", f"t{i}", "ilsvrc", train[i::FEW_SHARDS]) for i in range(FEW_SHARDS)]
    (line,) = few_shards(one + enough)
    assert line.startswith(f"val: 1 shard, fewer than {FEW_SHARDS}:") and "--min-shards N" in line
    (line,) = few_shards(each + enough)
    assert line.startswith("val: 5 shards") and "only 5 images" in line
    assert few_shards(enough) == []
