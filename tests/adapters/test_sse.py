"""The SSE parser: events survive any split of the byte stream (mid-line, mid-character, inside \\r\\n)."""

from __future__ import annotations

import pytest

from vani.adapters.sse import SseEvent, SseParser

STREAM = (
    'data: {"a": "héllo"}\r\n\r\n'
    ": a comment\n"
    "event: ping\ndata: one\ndata: two\n\n"
    "data: cr only\r\r"
    "id: 7\nretry: 10\ndata: [DONE]\n\n"
).encode()
EVENTS = [
    SseEvent('{"a": "héllo"}'),
    SseEvent("one\ntwo", "ping"),
    SseEvent("cr only"),
    SseEvent("[DONE]"),
]


def feed_all(pieces: list[bytes]) -> list[SseEvent]:
    parser = SseParser()
    return [ev for piece in pieces for ev in parser.feed(piece)]


def test_whole_stream_in_one_piece() -> None:
    assert feed_all([STREAM]) == EVENTS


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_any_split_in_two(cut: int) -> None:
    assert feed_all([STREAM[:cut], STREAM[cut:]]) == EVENTS


def test_byte_by_byte() -> None:
    assert feed_all([STREAM[i : i + 1] for i in range(len(STREAM))]) == EVENTS
