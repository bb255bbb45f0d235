"""Planning at full scale (issue 14, item 7): the sectioned index cache (format 4), PackedFiles and SampleTable
(columns instead of a record per image) give the same plan, samples and unit fingerprints as the record-based
path; the natural order's fast path equals sorted(..., key=natural_key)."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import pytest
from support import tars

from imagenet_prep.columns import PackedFiles, SampleRows, SampleTable
from imagenet_prep.config import BuildConfig, build_config
from imagenet_prep.io import tar_index
from imagenet_prep.plan import make_plan
from imagenet_prep.plan.sampling import choose, natural_key, natural_order
from imagenet_prep.records import WorkUnit
from imagenet_prep.sample import SampleSpec, write_sample
from imagenet_prep.sources.base import SplitIndex
from imagenet_prep.sources.ilsvrc import IlsvrcSource, _stem, _stems_joined


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample release whose train tar is re-packed: members out of natural order, numbers that tie in the
    natural order (_010 / _10), names clashing by case or extension, and one member above a small cap."""
    base = write_sample(
        tmp_path_factory.mktemp("wp-base"), SampleSpec(classes=4, train_per_class=6, val_per_class=3, seed=5)
    )
    root = tmp_path_factory.mktemp("wp-release")
    classes = tars.class_tars(base.train_tar)
    rng = random.Random(3)
    packed: dict[str, tars.Segments] = {}
    for i, (wnid, images) in enumerate(classes.items()):
        blobs = [data for _, data in images]
        names = [f"{wnid}_{n}.JPEG" for n in rng.sample(range(1, 3000), len(blobs))]
        if i == 0:  # ties and clashes: the general order, and refusals
            names += [f"{wnid}_010.JPEG", f"{wnid}_10.JPEG", f"{wnid}_77.png", f"{wnid}_77.JPEG"]
            names += [f"{wnid.upper()}_5.JPEG", f"{wnid}_5.JPEG"]
            blobs += blobs[:6]
        if i == 1:
            names.append(f"{wnid}_9999.JPEG")
            blobs.append(blobs[0] + b"\0" * 40_000)  # above --max-member-size 30000
        order = list(range(len(names)))
        rng.shuffle(order)
        packed[wnid] = tars.tar(*(tars.member(names[k], blobs[k]) for k in order))
    return tars.release_with(root, base, train=tars.train_tar(packed))


def _plan(root: Path, cache: Path, **options):
    values = {"source": root, "out": root.parent / "unused", "max_member_size": 30_000, **options}
    return make_plan(build_config({}, values), cache_dir=cache)


def _summary(plan) -> list:
    return [(u.unit_id, u.fingerprint, tuple(u.samples)) for u in plan.units]


@pytest.mark.parametrize(
    "options",
    [{}, {"train_per_class": 3, "val_per_class": 1, "seed": 11}, {"subset": None, "train_per_class": 100}],
    ids=["all", "sampled", "more-than-held"],
)
def test_columns_give_the_plan_and_fingerprints_of_the_record_based_path(
    release, tmp_path, monkeypatch, options
):
    options = {k: v for k, v in options.items() if v is not None}
    columns = _plan(release, tmp_path / "cache", **options)
    # a unit per class: columns; val in storage order (classes interleaved): Samples
    assert all(isinstance(u.samples, SampleTable) == (u.split == "train") for u in columns.units)
    warm = _plan(release, tmp_path / "cache", **options)  # from the sectioned cache

    index = IlsvrcSource.index

    def records_only(self, split, wnids, runner):  # the same index, as tuples of SourceFiles
        found = index(self, split, wnids, runner)
        files = {wnid: tuple(files) for wnid, files in found.files.items()}
        return SplitIndex(found.split, files, found.refused, found.warnings, found.bytes_read)

    monkeypatch.setattr(IlsvrcSource, "index", records_only)
    records = _plan(release, tmp_path / "cache", **options)
    assert all(isinstance(u.samples, tuple) for u in records.units)

    assert _summary(columns) == _summary(warm) == _summary(records)
    assert columns.counts == records.counts and columns.available == records.available
    assert columns.refused == records.refused
    reasons = " ".join(reason for _, reason in records.refused)
    assert "clashes" in reasons and "member-size cap" in reasons  # the quirks were there to be refused
    # a unit of columns travels to a worker as itself: same samples, same fingerprint
    for unit in columns.units:
        again = pickle.loads(pickle.dumps(unit))
        assert tuple(again.samples) == tuple(unit.samples) and again.fingerprint == unit.fingerprint
        plain = WorkUnit(unit.split, unit.unit_id, unit.source, tuple(unit.samples))
        assert plain.fingerprint == unit.fingerprint and unit.samples == plain.samples


def test_a_subset_reads_only_its_classes_sections(release, tmp_path):
    cache = tmp_path / "cache"
    _plan(release, cache)
    path = next(cache.glob("ILSVRC2012_img_train.tar.*.index.json"))
    doc = tar_index.read_cache_document(path)
    first, second = list(doc["members"])[:2]
    doc["members"][second]["offsets"][0] = -512  # a malformed section: that class alone counts as absent
    tar_index.write_cache_document(path, doc)
    with tar_index.TrainArchive(release / "ILSVRC2012_img_train.tar", cache_dir=cache) as archive:
        assert archive.columns(first).names == doc["members"][first]["names"]
        assert archive.source.bytes_read == 0 and not archive.unsaved  # nothing read but the cache
        rebuilt = archive.columns(second)
        assert archive.source.bytes_read > 0 and archive.unsaved  # indexed again from the archive
        assert min(rebuilt.offsets) > 0
        archive.save()
    again = tar_index.read_cache_document(path)
    assert again["members"][second]["offsets"] == rebuilt.offsets.tolist()
    assert again["members"][first] == doc["members"][first]  # copied over unchanged


def test_natural_order_equals_sorting_by_natural_key():
    rng = random.Random(7)
    shapes = [
        lambda n: f"n01440764_{n}.JPEG",
        lambda n: f"n01440764_{n:05d}.JPEG",  # leading zeros: ties with the plain numbers
        lambda n: f"{n}",
        lambda n: f"img{n}x",
        lambda n: f"a/b_{n}.png",
    ]
    for shape in shapes:
        names = [shape(rng.randrange(200)) for _ in range(300)]
        assert natural_order(names) == sorted(range(len(names)), key=lambda i: natural_key(names[i]))
    odd = [
        "n01440764_3.JPEG",
        "n01440764_3.jpeg",
        "x٣12.JPEG",  # a non-ASCII digit
        "n01440764_" + "9" * 25 + ".JPEG",  # past int64
        "n01440764_2.JPEG",
        "N01440764_1.JPEG",
        "n01440764_.JPEG",
    ]
    for names in (odd, odd[:2], [odd[3], odd[0]], ["b_2", "b_10", "b_1"], []):
        assert natural_order(names) == sorted(range(len(names)), key=lambda i: natural_key(names[i]))


def test_natural_key_orders_one_digit_run_by_its_number():
    # A fast path for two numbers once split a lone run ("10" -> 1, 0), putting img10x before img3x.
    names = ["img10x", "img3x", "img200x", "img21x", "7", "12", "a1b2", "a1b10"]
    assert sorted(names, key=natural_key) == [
        "7",
        "12",
        "a1b2",
        "a1b10",
        "img3x",
        "img10x",
        "img21x",
        "img200x",
    ]
    assert natural_key("img10x") == ("img", 10, "x") and natural_key("n01440764_10026.JPEG")[3] == 10026


def test_choose_draws_what_it_drew_before():
    keys = [f"n01440764_{n}" for n in random.Random(1).sample(range(100_000), 1300)]
    for count, seed in ((None, 0), (5, 0), (732, 3), (1300, 1), (2000, 2)):
        ordered = sorted(keys, key=natural_key)  # the documented rule, spelled out
        if count is None or count >= len(ordered):
            expected = ordered
        else:
            expected = sorted(
                random.Random(f"{seed}:train:n01440764").sample(ordered, count), key=natural_key
            )
        assert choose(keys, count, seed, "train", "n01440764") == expected


def test_joined_stems_equal_stem_per_name():
    for names in (
        ["a.JPEG", "b_1.JPEG", "c.d.JPEG"],
        ["a.JPEG", ".JPEG"],  # a name that is only the extension
        ["a.JPEG", "b.png"],
        ["a.", "b."],
        ["dir/a.JPEG"],
        ["a"],
    ):
        joined = _stems_joined("\n".join(names), len(names))
        if joined is not None:
            assert joined.split("\n") == [_stem(n) for n in names]
    assert _stems_joined("n1_1.JPEG\nn1_2.JPEG", 2) == "n1_1\nn1_2"


def test_packed_files_are_the_source_files_they_pack(release, tmp_path):
    plan = _plan(release, tmp_path / "cache")
    samples = [s for u in plan.units for s in u.samples]
    table = next(u.samples for u in plan.units if u.split == "train")
    files = table.blocks[0].files
    assert isinstance(files, PackedFiles)
    listed = tuple(files)
    assert files[0] == listed[0] and files[-1] == listed[-1] and files[1:3] == listed[1:3]
    assert PackedFiles.of(listed) == listed and files.take([2, 0]) == (listed[2], listed[0])
    assert table[len(table) - 1] == tuple(table)[-1]
    assert len(samples) == sum(len(u.samples) for u in plan.units) and len({s.key for s in samples}) == len(
        samples
    )


def test_a_format_3_cache_is_indexed_again_and_rewritten_in_the_current_format(release, tmp_path):
    cache = tmp_path / "cache"
    train = release / "ILSVRC2012_img_train.tar"
    with tar_index.TrainArchive(train, cache_dir=cache) as archive:
        wnid = next(iter(archive.classes()))
        members = archive.members(wnid)
        path = archive.save()
    assert path is not None
    doc = tar_index.read_cache_document(path)
    old = {**doc, "format": 3}  # the one-document JSON cache main wrote before
    old["members"] = {w: {**m, "refused": []} for w, m in doc["members"].items()}
    path.write_text(json.dumps(old))
    with tar_index.TrainArchive(train, cache_dir=cache) as archive:
        assert not archive.has_members(wnid)  # not misread
        assert archive.members(wnid) == members and archive.source.bytes_read > 0
        archive.save()
    assert path.read_bytes().split(b"\n", 1)[0].startswith(b'{"format":%d' % tar_index.CACHE_FORMAT)
    with tar_index.TrainArchive(train, cache_dir=cache) as archive:
        assert archive.members(wnid) == members and archive.source.bytes_read == 0


def test_a_format_4_cache_is_indexed_again_and_rewritten_with_header_gaps(release, tmp_path):
    """Format 4 stored every header offset and [start, length, count] per section; format 5 stores a gap for
    sections whose headers all sit one gap before their data. A format 4 cache is not misread: each class is
    indexed again, and the rewritten cache stores the gap (512 for plain headers), with the same members."""
    cache = tmp_path / "cache"
    train = release / "ILSVRC2012_img_train.tar"
    with tar_index.TrainArchive(train, cache_dir=cache) as archive:
        wnids = list(archive.classes())[:3]
        members = {wnid: archive.members(wnid) for wnid in wnids}
        path = archive.save()
    assert path is not None and tar_index.CACHE_FORMAT == 5
    tar_index.write_cache_document(path, tar_index.read_cache_document(path))  # every header offset stored
    line, _, body = path.read_bytes().partition(b"\n")
    header = json.loads(line)
    header["format"] = 4
    header["sections"] = {name: entry[:3] for name, entry in header["sections"].items()}  # format 4's layout
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)
    with tar_index.TrainArchive(train, cache_dir=cache) as archive:
        assert not any(archive.has_members(wnid) for wnid in wnids)  # not misread
        assert {wnid: archive.members(wnid) for wnid in wnids} == members
        assert archive.source.bytes_read > 0
        archive.save()
    rewritten = json.loads(path.read_bytes().partition(b"\n")[0])
    assert rewritten["format"] == 5 and {entry[3] for entry in rewritten["sections"].values()} == {512}
    with tar_index.TrainArchive(train, cache_dir=cache) as archive:
        assert {wnid: archive.members(wnid) for wnid in wnids} == members
        assert archive.source.bytes_read == 0


def test_a_section_of_stored_header_offsets_reads_like_one_with_a_gap(release, tmp_path):
    """The same members whether a section stores each header offset (gap 0) or the gap; a gap that would put
    a header before its tar's start, or a section too short for its columns, is malformed (indexed again)."""
    cache = tmp_path / "cache"
    train = release / "ILSVRC2012_img_train.tar"
    with tar_index.TrainArchive(train, cache_dir=cache) as archive:
        wnid = next(iter(archive.classes()))
        tar = archive.classes()[wnid]
        members = archive.members(wnid)
    columns = tar_index.MemberColumns.of(members)
    data, count, gap = columns.section()
    assert gap == 512 and len(data) == 16 * count + len(columns.text.encode())
    stored = tar_index._le_bytes(columns.offsets + columns.sizes + columns.header_offsets)
    stored += columns.text.encode()
    for section in ((data, count, gap), (stored, count, 0)):
        decoded = tar_index._decode_section(*section, tar.offset, tar.offset + tar.size)
        assert decoded is not None and decoded.members() == members
    assert tar_index._decode_section(data, count, gap, tar.offset + 1, tar.offset + tar.size) is None
    assert (
        tar_index._decode_section(data, count, tar.offset + 4096, tar.offset, tar.offset + tar.size) is None
    )
    assert (
        tar_index._decode_section(data[: 16 * count - 8], count, gap, tar.offset, tar.offset + tar.size)
        is None
    )
    last = max(m.offset + m.size for m in members)  # data past an end before the last member's: refused
    assert tar_index._decode_section(data, count, gap, tar.offset, last) is not None
    assert tar_index._decode_section(data, count, gap, tar.offset, last - 1) is None


def test_the_dry_run_reads_the_plan_from_its_columns(release, tmp_path):
    """The dry run's byte total, locators and spread sample come from the columns (a Sample per image of the
    whole set cost ~6 s and ~500 MB) and equal what the flattened samples give."""
    from imagenet_prep.build.dryrun import _spread
    from imagenet_prep.columns import sample_bytes, sample_locators

    plan = _plan(release, tmp_path / "cache")
    # train: a class table a unit; val (classes interleaved in storage order): row columns; and the same
    # units holding tuples of Samples
    assert any(isinstance(u.samples, SampleTable) for u in plan.units)
    assert any(isinstance(u.samples, SampleRows) for u in plan.units)
    tupled = [WorkUnit(u.split, u.unit_id, u.source, tuple(u.samples)) for u in plan.units]
    assert [u.fingerprint for u in tupled] == [u.fingerprint for u in plan.units]
    flat = [sample for unit in plan.units for sample in unit.samples]
    for units in (plan.units, tupled):
        for unit in units:
            assert sample_bytes(unit.samples) == sum(s.location.size for s in unit.samples) > 0
            assert sample_locators(unit.samples) == {s.location.locator for s in unit.samples}
        for count in (1, 5, 7, len(flat) - 1, len(flat), len(flat) + 3):
            step = len(flat) / count
            expected = flat if count >= len(flat) else [flat[int(i * step + step / 2)] for i in range(count)]
            assert _spread(units, count) == expected


def test_a_builds_wordnet_holds_for_its_lookups_only(tmp_path):
    """--wordnet serves --under while the plan picks classes, and is not left behind as the process's choice
    (the plan sets nothing process-wide): a later query that needs WordNet still finds the installed one."""
    from imagenet_prep.errors import WordNetError
    from imagenet_prep.plan.selection import select_classes
    from imagenet_prep.taxonomy import classes, synsets

    empty = tmp_path / "no-wordnet"
    empty.mkdir()
    config = BuildConfig(source=tmp_path, out=tmp_path / "out", under="dog.n.01", wordnet=empty)
    every = [info.wnid for info in classes.all_classes()]
    assert len(select_classes(config, every)) == 118  # the bundled hierarchy answers dog.n.01
    with pytest.raises(WordNetError), synsets.using_wordnet(empty):
        synsets.imagenet_leaves("dog")  # a plain word needs WordNet: the build's (empty) one is refused
    assert len(synsets.imagenet_leaves("dog")) == 118  # outside the block: the installed WordNet again
    with pytest.raises(WordNetError):
        select_classes(BuildConfig(source=tmp_path, out=tmp_path / "o", under="dog", wordnet=empty), every)
    assert len(synsets.imagenet_leaves("dog")) == 118


def test_kept_files_of_keys_only_columns_are_those_of_records():
    """kept_files on a class of keys-only columns (names = key + .JPEG: the numbers' fast path, in order or
    not) keeps the files, order and refusals of the record path; ties, clashes and other shapes take the
    general path with the same result."""
    from imagenet_prep.plan.sampling import kept_files

    class Labels:
        def member_label(self, split, wnid, name):
            return f"{split}/{wnid}/{name}"

    rng = random.Random(5)
    numbers = rng.sample(range(1, 60_000), 300)
    cases = {
        "shuffled": [f"n01440764_{n}" for n in numbers],
        "in order": [f"n01440764_{n}" for n in sorted(numbers)],
        "ties": [f"n01440764_{n}" for n in (7, 10, 3)] + ["n01440764_007", "n01440764_010"],
        "case clash": ["n01440764_1", "N01440764_1", "n01440764_2"],
        "other shape": ["a1b2", "a1b10", "a2b1"],
    }
    for what, keys in cases.items():
        offsets = [4096 + 2048 * i for i in range(len(keys))]
        columns = PackedFiles.with_suffix(
            "t.tar", "\n".join(keys), ".JPEG", offsets, [100 + i for i in range(len(keys))], header_gap=512
        )
        records = tuple(columns)
        got_refused: list = []
        want_refused: list = []
        got = kept_files(Labels(), "train", "n01440764", columns, 10**6, got_refused)  # type: ignore[arg-type]
        want = kept_files(Labels(), "train", "n01440764", records, 10**6, want_refused)  # type: ignore[arg-type]
        assert isinstance(got, PackedFiles) and tuple(got) == tuple(want.values()), what
        assert got_refused == want_refused, what
        assert got.key_ordered == (what in ("shuffled", "in order")), what
