"""Server-sent events parser that buffers across network chunks.

Frames may be split anywhere (mid-line, mid-JSON, between ``\\r`` and ``\\n``), so the parser keeps
partial data until a blank line ends an event. Only ``data:`` lines matter to our providers; ``event:``,
``id:``, ``retry:`` and comments are kept or skipped per the SSE spec.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass
class SseEvent:
    data: str
    event: str = "message"


class SseParser:
    """Feed bytes, get complete events. One instance per HTTP response."""

    def __init__(self) -> None:
        self._buf = ""
        self._data: list[str] = []
        self._event = "message"
        self._dec_pending = b""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        # A chunk can end inside a multi-byte UTF-8 character: keep the tail bytes for the next feed.
        raw = self._dec_pending + chunk
        try:
            text = raw.decode("utf-8")
            self._dec_pending = b""
        except UnicodeDecodeError as e:
            if e.start < len(raw) - 3:
                raise
            text = raw[: e.start].decode("utf-8")
            self._dec_pending = raw[e.start :]
        self._buf += text
        out: list[SseEvent] = []
        while True:
            idx = _line_end(self._buf)
            if idx is None:
                break
            line, sep_len = idx
            text_line = self._buf[:line]
            self._buf = self._buf[line + sep_len :]
            ev = self._line(text_line)
            if ev is not None:
                out.append(ev)
        return out

    def _line(self, line: str) -> SseEvent | None:
        if line == "":
            if not self._data:
                self._event = "message"
                return None
            ev = SseEvent("\n".join(self._data), self._event)
            self._data, self._event = [], "message"
            return ev
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


def _line_end(buf: str) -> tuple[int, int] | None:
    """Index and length of the first line terminator (\\r\\n, \\n or \\r), or None if incomplete.

    ``str.find`` (C) instead of a Python loop over characters: a buffer holds whole JSON events."""
    n, r = buf.find("\n"), buf.find("\r")
    if r < 0 or (0 <= n < r):
        return None if n < 0 else (n, 1)
    if r + 1 == len(buf):
        return None  # could be the first half of \\r\\n
    return r, 2 if buf[r + 1] == "\n" else 1


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SseEvent]:
    """Events from an async byte stream (e.g. ``aiohttp``'s ``response.content.iter_any()``)."""
    parser = SseParser()
    async for chunk in chunks:
        for ev in parser.feed(chunk):
            yield ev
