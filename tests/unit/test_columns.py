"""The compact column forms: PackedFiles holding keys only (names = key + one suffix) and a header gap instead
of header offsets, and a SampleTable cut in storage order into SampleRows, are the same records, in the same
order, with the same fingerprints, as the plain forms."""

from __future__ import annotations

import pickle
from array import array

import pytest

from imagenet_prep.columns import PackedFiles, SampleBlock, SampleRows, SampleTable
from imagenet_prep.records import (
    ZIP_DEFLATED_AT_HEADER,
    ZIP_STORED_AT_HEADER,
    ByteLocation,
    Sample,
    SourceFile,
    WorkUnit,
)
from imagenet_prep.sources.base import group_in_storage_order

LOCATOR = "/data/ILSVRC2012_img_train.tar"


def _files(numbers: list[int], start: int = 4096, suffix: str = ".JPEG", wnid: str = "n01440764") -> list:
    """Tar members behind plain 512-byte headers, 1536 bytes apart."""
    return [
        SourceFile(
            f"{wnid}_{n}{suffix}",
            f"{wnid}_{n}",
            ByteLocation(LOCATOR, start + 2048 * i, 100 + n, header_offset=start + 2048 * i - 512),
        )
        for i, n in enumerate(numbers)
    ]


def _compact(files: list[SourceFile], suffix: str = ".JPEG") -> PackedFiles:
    return PackedFiles.with_suffix(
        LOCATOR,
        "\n".join(f.key for f in files),
        suffix,
        array("q", [f.location.offset for f in files]),
        array("q", [f.location.size for f in files]),
        header_gap=512,
    )


def test_keys_only_and_a_header_gap_hold_the_same_files():
    files = _files([7, 10026, 3, 42])
    compact, plain = _compact(files), PackedFiles.of(files)
    assert plain is not None and plain.name_suffix() == ".JPEG"
    assert compact == plain == tuple(files)
    assert [compact[i] for i in range(len(files))] == files and compact[-1] == files[-1]
    assert compact.names() == [f.name for f in files] and compact.keys() == [f.key for f in files]
    assert (
        compact.header_offsets == plain.header_offsets == array("q", [f.location.offset - 512 for f in files])
    )
    assert compact.name_suffix() == ".JPEG"
    for rows in ([2, 0], [3], [], [0, 1, 2, 3]):
        assert compact.take(rows) == plain.take(rows) == tuple(files[r] for r in rows)
    assert compact.take([1, 3]).names() == [files[1].name, files[3].name]  # still keys only, made on asking
    copied = pickle.loads(pickle.dumps(compact))
    assert copied == tuple(files) and copied.header_offsets == compact.header_offsets
    empty = _compact([])
    assert len(empty) == 0 and empty.names() == [] and tuple(empty) == () and empty.name_suffix() is None


def test_a_header_gap_and_header_offsets_cannot_both_be_given():
    with pytest.raises(ValueError):
        PackedFiles(LOCATOR, None, ["a"], [1024], [1], [512], name_suffix=".JPEG", header_gap=512)
    with pytest.raises(ValueError):
        PackedFiles(LOCATOR, None, ["a"], [1024], [1])  # no names and no suffix


def _tables() -> list[SampleTable]:
    """Val-like tables: classes interleaved in the archive, in compact and plain forms, and a mix of both
    (another suffix, a class without tar headers) that the rows must store names and -1 headers for."""
    a = _files([1, 4, 7], start=4096, wnid="n01440764")
    b = _files([2, 5], start=4096 + 1024, wnid="n01443537")
    c = [
        SourceFile(f.name.replace(".JPEG", ".png"), f.key, ByteLocation(LOCATOR, f.location.offset + 512, 9))
        for f in _files([3], start=4096 + 100_000, wnid="n01484850")
    ]
    compact = SampleTable(
        "val", [SampleBlock("n01440764", 0, _compact(a)), SampleBlock("n01443537", 1, _compact(b))]
    )
    plain = SampleTable(
        "val",
        [SampleBlock("n01440764", 0, PackedFiles.of(a)), SampleBlock("n01443537", 1, PackedFiles.of(b))],
    )
    mixed = SampleTable("val", [*compact.blocks, SampleBlock("n01484850", 2, PackedFiles.of(c))])
    return [compact, plain, mixed]


@pytest.mark.parametrize("chunk", [1, 2, 4, 100])
def test_storage_chunks_are_the_samples_in_storage_order_as_rows(chunk):
    for table in _tables():
        ordered = sorted(table, key=lambda s: (s.location.locator, s.location.offset))
        pieces = table.storage_chunks(chunk)
        assert all(isinstance(piece, SampleRows) for piece in pieces)
        assert [len(piece) for piece in pieces] == [
            len(ordered[i : i + chunk]) for i in range(0, len(ordered), chunk)
        ]
        flat: list[Sample] = [sample for piece in pieces for sample in piece]
        assert flat == ordered
        for number, piece in enumerate(pieces):
            want = tuple(ordered[number * chunk : (number + 1) * chunk])
            assert piece == want and pickle.loads(pickle.dumps(piece)) == want
            ours, theirs = (
                WorkUnit("val", f"val-{number:04d}", "ilsvrc", piece),
                WorkUnit("val", f"val-{number:04d}", "ilsvrc", want),
            )
            assert ours.fingerprint == theirs.fingerprint
            assert len(piece.sources) == len({(s.wnid, s.location.locator) for s in want})  # only its own
    assert SampleTable("val", []).storage_chunks(3) == []


def _zip_files() -> list[SourceFile]:
    """Zip members located at their local headers: one stored, one deflated (larger declared size), one
    deflated that grew (compressed larger than declared)."""
    rows = [(30, 500, 500, 0, 0x1234), (600, 200, 900, 8, 0xFFFFFFFF), (900, 120, 100, 8, 7)]
    return [
        SourceFile(
            f"n01440764_{i}.JPEG",
            f"n01440764_{i}",
            ByteLocation(
                LOCATOR,
                at,
                size,
                ZIP_DEFLATED_AT_HEADER if method == 8 else ZIP_STORED_AT_HEADER,
                raw_size=raw,
                crc32=crc,
            ),
        )
        for i, (at, size, raw, method, crc) in enumerate(rows)
    ]


def _zip_packed(files: list[SourceFile]) -> PackedFiles:
    return PackedFiles(
        LOCATOR,
        None,
        [f.key for f in files],
        [f.location.offset for f in files],
        [f.location.size for f in files],
        name_suffix=".JPEG",
        zip_columns=(
            bytes(8 if f.location.compression == ZIP_DEFLATED_AT_HEADER else 0 for f in files),
            array("q", [f.location.raw_size or 0 for f in files]),
            array("I", [f.location.crc32 or 0 for f in files]),
        ),
    )


def test_zip_columns_hold_the_same_members_and_fingerprint_as_records():
    files = _zip_files()
    packed = _zip_packed(files)
    assert packed.is_zip and packed == tuple(files) and [packed[i] for i in range(3)] == files
    assert list(packed.declared_sizes()) == [500, 900, 120]  # the cap sees the larger size
    for rows in ([2, 0], [1], []):
        taken = packed.take(rows)
        assert taken == tuple(files[r] for r in rows) and (taken.is_zip or not rows)
    assert pickle.loads(pickle.dumps(packed)) == tuple(files)
    table = SampleTable("train", [SampleBlock("n01440764", 0, packed)])
    samples = tuple(Sample("train", f.key, "n01440764", 0, f.name, f.location) for f in files)
    assert table == samples
    ours = WorkUnit("train", "train-n01440764", "kaggle-zip", table)
    assert ours.fingerprint == WorkUnit("train", "train-n01440764", "kaggle-zip", samples).fingerprint


def test_a_table_of_zip_columns_is_cut_in_storage_order_as_samples_not_rows():
    files = _zip_files()
    table = SampleTable("val", [SampleBlock("n01440764", 0, _zip_packed(files[::-1]))])
    units = group_in_storage_order("val", table, chunk=2)
    assert [type(samples) for _, samples in units] == [tuple, tuple]  # SampleRows would drop the zip columns
    assert [s.location for _, samples in units for s in samples] == [f.location for f in files]


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_storage_chunks_order_ties_and_several_files_as_sorted_does(chunk):
    """One file: the rows are ordered by offset alone (ties keep table order, as a stable sort of the samples
    does); several files: by file, then offset. Either way the pieces are sorted()'s samples, chunked."""
    a = _files([1, 4, 7], start=4096, wnid="n01440764")
    b = _files([2, 5], start=4096, wnid="n01443537")  # the same offsets as a's first two: ties
    other = [
        SourceFile(f.name, f.key, ByteLocation("/data/other.tar", f.location.offset, f.location.size))
        for f in _files([9, 8], start=4096, wnid="n01484850")
    ]
    one_file = SampleTable(
        "val", [SampleBlock("n01440764", 0, _compact(a)), SampleBlock("n01443537", 1, _compact(b))]
    )
    two_files = SampleTable("val", [*one_file.blocks, SampleBlock("n01484850", 2, PackedFiles.of(other))])
    for table in (one_file, two_files):
        ordered = sorted(table, key=lambda s: (s.location.locator, s.location.offset))
        pieces = table.storage_chunks(chunk)
        assert [tuple(piece) for piece in pieces] == [
            tuple(ordered[i : i + chunk]) for i in range(0, len(ordered), chunk)
        ]
        assert [s.wnid for s in pieces[0]][:2] == ["n01440764", "n01443537"][: min(chunk, 2)]


def test_take_of_every_row_as_a_range_is_the_files_themselves():
    files = _files([7, 10026, 3])
    compact = _compact(files)
    assert compact.take(range(3)) is compact and compact.take([0, 1, 2]) is compact
    assert compact.take(range(1, 3)) == tuple(files[1:]) and compact.take(range(0)) == ()
    assert compact.take(range(2, -1, -1)) == tuple(reversed(files))


def test_the_largest_declared_size_is_the_given_one_or_the_columns_max():
    files = _files([7, 10026, 3])
    compact = _compact(files)
    assert compact.largest_declared() == max(f.location.size for f in files)
    given = PackedFiles.with_suffix(
        LOCATOR, "\n".join(f.key for f in files), ".JPEG", compact.offsets, compact.sizes, header_gap=512,
        largest=max(compact.sizes),
    )  # fmt: skip
    assert given.largest_declared() == compact.largest_declared()
    assert _compact([]).largest_declared() == 0
