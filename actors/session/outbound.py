"""Per-session outbound queue: a priority lane for control messages and a byte-capped audio lane.

Control messages (state changes, errors, pongs, later ``audio.clear``) never wait behind audio and
are never dropped. Audio is capped at ``cap_bytes``: ``put_audio`` waits for space, so a slow reader
pauses the producer (the engine: echo, or an assistant turn) instead of growing memory. ``clear_audio``
drops queued audio at once (barge-in). ``hold_audio`` stops the audio lane where it is (an assistant reply
paused by user speech): queued frames stay queued, control messages still flow; ``release_audio`` sends on from the
next queued frame.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CloseRequest:
    """Ask the link's sender to close the client connection (after nothing: it is a control item)."""

    code: int
    reason: str


Message = str | bytes | CloseRequest


class OutboundQueue:
    def __init__(self, cap_bytes: int, tap: Callable[[Message, bool], None] | None = None) -> None:
        """``tap`` hears every message as it is queued (the session's event log)."""
        self.cap_bytes = cap_bytes
        self._tap = tap
        self._control: deque[str | CloseRequest] = deque()
        self._audio: deque[bytes] = deque()
        self._audio_bytes = 0
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self.waits = 0  # times a producer had to wait for space (a slow reader)
        self.audio_held = False  # driven by the conversation machine's ``paused`` state

    @property
    def audio_bytes(self) -> int:
        return self._audio_bytes

    def put_control(self, msg: str | CloseRequest, own: bool = False) -> None:
        """``own``: the session's own message, not its engine's (the tap hears which)."""
        if self._tap is not None:
            self._tap(msg, own)
        self._control.append(msg)
        self._ready.set()

    async def put_audio(self, data: bytes) -> None:
        # An empty queue always takes one chunk, so a chunk larger than the cap cannot deadlock.
        while self._audio and self._audio_bytes + len(data) > self.cap_bytes:
            self.waits += 1
            self._space.clear()
            await self._space.wait()
        if self._tap is not None:
            self._tap(data, False)
        self._audio.append(data)
        self._audio_bytes += len(data)
        self._ready.set()

    def get_nowait(self) -> Message | None:
        if self._control:
            msg: Message = self._control.popleft()
        elif self._audio and not self.audio_held:
            msg = self._audio.popleft()
            self._audio_bytes -= len(msg)
            self._space.set()
        else:
            self._ready.clear()
            return None
        return msg

    async def get(self) -> Message:
        while True:
            msg = self.get_nowait()
            if msg is not None:
                return msg
            await self._ready.wait()

    def hold_audio(self) -> None:
        self.audio_held = True

    def release_audio(self) -> None:
        self.audio_held = False
        if self._audio:
            self._ready.set()

    def clear_audio(self) -> int:
        n = len(self._audio)
        self._audio.clear()
        self._audio_bytes = 0
        self._space.set()
        return n
