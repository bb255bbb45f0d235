"""plan/sampling.py's one-shape numbers (the natural order of a class's ILSVRC2012 names without a key tuple
each) against the rule spelled out with a regular expression per name."""

from __future__ import annotations

import re

from hypothesis import event, given, settings
from hypothesis import strategies as st

from imagenet_prep.plan.sampling import _SHAPE_RE, _shared_shape_numbers, natural_key, natural_order


def _spelled_out(names: list[str]) -> list[int] | None:
    """Each name's number when every name is the first's head + ASCII digits + the first's tail."""
    shape = _SHAPE_RE.fullmatch(names[0])
    if shape is None:
        return None
    head, _, tail = shape.groups()
    one = re.compile(re.escape(head) + "([0-9]+)" + re.escape(tail), re.DOTALL)
    matches = [one.fullmatch(name) for name in names]
    if None in matches:
        return None
    return [int(m.group(1)) for m in matches if m is not None]


_PIECES = st.sampled_from(["n01440764_", "_", "n", "x1", ".JPEG", "JPEG", "٣", "0", "00", "a_b", ""])
_NUMBERS = st.one_of(st.integers(0, 10**6).map(str), st.sampled_from(["", "007", "1٣", "12"]))


@st.composite
def _names(draw: st.DrawFn) -> list[str]:
    """Names of one head and tail (a class's), some of them given another head or tail."""
    head, tail = draw(_PIECES), draw(_PIECES)
    names = [f"{head}{number}{tail}" for number in draw(st.lists(_NUMBERS, min_size=1, max_size=12))]
    for position, other_head, other_tail in draw(st.lists(st.tuples(st.integers(0, 11), _PIECES, _PIECES))):
        if position < len(names):
            names[position] = f"{other_head}{draw(_NUMBERS)}{other_tail}"
    return names


@settings(max_examples=400, deadline=None)
@given(_names())
def test_shape_numbers_are_the_spelled_out_rule(names):
    got = _shared_shape_numbers(names)
    assert got == _spelled_out(names)
    event("one shape" if got is not None else "not one shape")
    if got is not None:  # and those numbers order the names as natural_key does
        assert [names[i] for i in natural_order(names)] == sorted(names, key=natural_key)


def test_shape_numbers_refuse_a_head_or_tail_seen_only_in_some_names():
    assert _shared_shape_numbers(["n1_5.JPEG", "n1_10.JPEG"]) == [5, 10]
    assert _shared_shape_numbers(["n1_5.JPEG", "m1_10.JPEG"]) is None  # another head
    assert _shared_shape_numbers(["n1_5.JPEG", "n1_10.JPG"]) is None  # another tail
    assert _shared_shape_numbers(["n1_5.JPEG", "n1_.JPEG"]) is None  # no number
    assert _shared_shape_numbers(["n1_5.JPEG", "n1_٣.JPEG"]) is None  # a digit, not an ASCII one
    assert _shared_shape_numbers(["a1a", "a"]) is None  # the head and the tail overlap in one name
    assert _shared_shape_numbers(["n5", "7"]) is None  # a name without the head, digits only
    assert _shared_shape_numbers(["5x", "7"]) is None  # a name without the tail, digits only
    assert _shared_shape_numbers(["n5x", "n7", "8x"]) is None
    assert _shared_shape_numbers(["n1_5.JPEG", "n1_007.JPEG"]) == [5, 7]  # leading zeros: int() per number
