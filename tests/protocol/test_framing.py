"""The framer finds the end of each reply as soon as its last byte arrives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecrlink import ReplyTooLarge
from ecrlink.protocol import JsonFramer
from tests.conftest import FIXTURES

REPLIES = [p.read_bytes() for p in sorted(FIXTURES.glob("*.json"))]


@pytest.mark.parametrize("raw", REPLIES)
def test_byte_by_byte_completes_exactly_on_the_last_byte(raw: bytes) -> None:
    framer = JsonFramer()
    for i in range(len(raw) - 1):
        assert framer.feed(raw[i : i + 1]) == []
    assert framer.feed(raw[-1:]) == [raw]
    assert framer.pending == b""


def test_braces_and_escapes_inside_strings() -> None:
    raw = rb'{"a":"}{\"}","b":"\\","c":{"d":"\\\"}"}}'
    for split in range(1, len(raw)):
        framer = JsonFramer()
        frames = framer.feed(raw[:split]) + framer.feed(raw[split:])
        assert frames == [raw], split


def test_noise_before_a_reply_is_dropped_and_counted() -> None:
    framer = JsonFramer()
    assert framer.feed(b"\x00\r\nxx") == []
    assert framer.feed(b'{"a":1}') == [b'{"a":1}']
    assert framer.discarded == 5


def test_back_to_back_replies_in_one_chunk() -> None:
    framer = JsonFramer()
    assert framer.feed(b'{"a":1}{"b":{"c":2}}{"d"') == [b'{"a":1}', b'{"b":{"c":2}}']
    assert framer.feed(b":3}") == [b'{"d":3}']


def test_a_reply_that_never_ends_is_refused_past_the_limit() -> None:
    framer = JsonFramer(max_size=100)
    framer.feed(b'{"a":"' + b"x" * 90)
    with pytest.raises(ReplyTooLarge):
        framer.feed(b"x" * 20)
    assert framer.feed(b'{"ok":1}') == [b'{"ok":1}']  # and it starts afresh


@given(st.lists(st.integers(min_value=0, max_value=2000), max_size=10))
def test_any_chunking_of_the_fixtures_gives_the_same_frames(cuts: list[int]) -> None:
    stream = b"".join(REPLIES)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    framer = JsonFramer()
    frames: list[bytes] = []
    start = 0
    for point in [*points, len(stream)]:
        frames += framer.feed(stream[start:point])
        start = point
    assert frames == REPLIES


@given(st.lists(st.binary(max_size=200), max_size=20))
def test_arbitrary_bytes_only_ever_raise_our_error(chunks: list[bytes]) -> None:
    framer = JsonFramer(max_size=512)
    for chunk in chunks:
        try:
            frames = framer.feed(chunk)
        except ReplyTooLarge:
            continue
        for frame in frames:
            assert frame.startswith(b"{") and frame.endswith(b"}")
