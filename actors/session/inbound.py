"""A session's inbound audio: frames numbered by the gateway, put back in order, held in a bounded ring.

Duplicates are dropped, frames that arrive early are held (at most ``MAX_HELD_FRAMES``; a longer gap is an
error), and a frame in order waits for room in the ring: while it waits the host stops reading the link, so a
slow engine pushes back all the way to the client and nothing is dropped. No flood check here: arrival times
at the host include every stall between the client and the host; the gateway judges floods on the client's
own timeline (``gateway/flood.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from vani.actors.session.ring_buffer import RingBuffer

MAX_HELD_FRAMES = 256  # out-of-order frames held while waiting for a gap to fill


class InboundAudio:
    def __init__(
        self,
        capacity: int,
        counters: Any,
        on_drop: Callable[[str], None],
        on_gap: Callable[[str], None],
        deliver: Callable[[bytes], None],
    ) -> None:
        """``deliver(pcm)`` gets each frame in order once the ring has room for it (it pushes it, via
        ``push``, unless the session's state says otherwise)."""
        self.ring = RingBuffer(capacity)
        self.expected_seq = 0
        self.frames_ready = asyncio.Event()  # set when the ring has frames; the reader clears it
        self._space = asyncio.Event()
        self._held: dict[int, bytes] = {}
        self._counters, self._on_drop, self._on_gap, self._deliver = counters, on_drop, on_gap, deliver

    async def on_frame(self, seq: int, pcm: bytes) -> None:
        c = self._counters
        if seq < self.expected_seq:
            c.duplicates += 1
            self._on_drop("duplicate")
            return
        if seq > self.expected_seq:
            c.reordered += 1
            if len(self._held) >= MAX_HELD_FRAMES:
                self._on_gap(f"frame gap: expected {self.expected_seq}, got {seq}")
                return
            self._held[seq] = pcm
            return
        await self._accept(pcm)
        self.expected_seq += 1
        while self.expected_seq in self._held:
            await self._accept(self._held.pop(self.expected_seq))
            self.expected_seq += 1

    async def _accept(self, pcm: bytes) -> None:
        while not self.ring.fits(len(pcm)):
            self._counters.ring_waits += 1
            self._space.clear()
            await self._space.wait()
        self._counters.frames_in += 1
        self._counters.bytes_in += len(pcm)
        self._deliver(pcm)

    def push(self, pcm: bytes, arrived: float) -> None:
        self.ring.push(self.expected_seq, pcm, arrived)  # room was awaited in _accept
        self.frames_ready.set()

    def space_freed(self) -> None:
        """The reader popped audio: a frame waiting for room may go on."""
        self._space.set()
