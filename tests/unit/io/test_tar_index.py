"""io/tar_index.py's section check on hand-made sections: what it refuses, and the largest size it reports
(the plan's member-size cap then needs no pass of its own)."""

from __future__ import annotations

from array import array

from imagenet_prep.io import tar_index

START, END = 10 * 512, 10 * 512 + 100 * 512  # a class tar spanning [START, END) of the archive


def _section(offsets: list[int], sizes: list[int], names: list[str]) -> tuple[bytes, int, int]:
    data = tar_index._le_bytes(array("q", offsets) + array("q", sizes)) + "\n".join(names).encode()
    return data, len(names), 512


def test_a_well_formed_section_reads_with_its_largest_size():
    offsets, sizes = [START + 512, START + 2048, START + 4096], [700, 1300, 5]
    columns = tar_index._decode_section(*_section(offsets, sizes, ["a.JPEG", "b.JPEG", "c.JPEG"]), START, END)
    assert columns is not None and columns.largest == 1300
    assert list(columns.offsets) == offsets and list(columns.sizes) == sizes
    assert list(columns.header_offsets) == [o - 512 for o in offsets]


def test_a_negative_size_or_data_past_the_end_is_refused():
    names = ["a.JPEG", "b.JPEG"]
    offsets = [START + 512, START + 2048]
    assert tar_index._decode_section(*_section(offsets, [10, 10], names), START, END) is not None
    for sizes in ([10, -1], [-(2**63), 10], [10, -512]):  # the sign bit of a size, in any row
        assert tar_index._decode_section(*_section(offsets, sizes, names), START, END) is None, sizes
    assert tar_index._decode_section(*_section(offsets, [10, END - offsets[1]], names), START, END)
    assert (
        tar_index._decode_section(*_section(offsets, [10, END - offsets[1] + 1], names), START, END) is None
    )
    # a size large enough to wrap an int64 sum is still past the end
    assert tar_index._decode_section(*_section(offsets, [2**62, 10], names), START, END) is None


def test_offsets_out_of_archive_order_are_checked_at_their_extremes():
    """Members in archive order are checked at their first and last offsets; in any other order the smallest
    and the largest offset are found and checked all the same."""
    names = ["a.JPEG", "b.JPEG", "c.JPEG"]
    inside = [START + 4096, START + 512, START + 8192]
    columns = tar_index._decode_section(*_section(inside, [1, 2, 3], names), START, END)
    assert columns is not None and list(columns.offsets) == inside
    before_start = [START + 4096, START, START + 8192]  # its header would sit before the tar's start
    assert tar_index._decode_section(*_section(before_start, [1, 2, 3], names), START, END) is None
    past_end = [
        START + 4096,
        END - 512,
        START + 8192,
    ]  # the largest offset in the middle, its data past the end
    assert tar_index._decode_section(*_section(past_end, [1, 600, 3], names), START, END) is None
    assert tar_index._decode_section(*_section(past_end, [1, 512, 3], names), START, END) is not None
    tied = [START + 512, START + 512]  # not strictly ascending: the min/max path
    assert tar_index._decode_section(*_section(tied, [1, 1], names[:2]), START, END) is not None
