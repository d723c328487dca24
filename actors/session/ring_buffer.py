"""Fixed-capacity FIFO of inbound PCM frames in one preallocated numpy byte array.

Overflow policy: ``push`` never overwrites. When a frame does not fit it returns False and counts an
overflow; the session then stops reading from its link until its engine (echo, or the STT link) drains
space, so a fast client is slowed by TCP backpressure instead of losing audio. Memory per session is
therefore fixed at ``capacity`` bytes whatever the client does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameMeta:
    seq: int
    arrived: float  # monotonic seconds
    length: int


class RingBuffer:
    """Byte ring holding whole frames; frames are read back in the order they were pushed."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._buf = np.zeros(capacity, dtype=np.uint8)
        self._cap = capacity
        self._head = 0  # read offset
        self._used = 0
        self._frames: deque[FrameMeta] = deque()
        self.overflows = 0

    @property
    def capacity(self) -> int:
        return self._cap

    @property
    def used(self) -> int:
        return self._used

    @property
    def free(self) -> int:
        return self._cap - self._used

    def __len__(self) -> int:
        return len(self._frames)

    def fits(self, length: int) -> bool:
        return length <= self.free

    def push(self, seq: int, data: bytes, arrived: float) -> bool:
        n = len(data)
        if n > self.free:
            self.overflows += 1
            return False
        tail = (self._head + self._used) % self._cap
        src = np.frombuffer(data, dtype=np.uint8)
        first = min(n, self._cap - tail)
        self._buf[tail : tail + first] = src[:first]
        if first < n:
            self._buf[: n - first] = src[first:]
        self._used += n
        self._frames.append(FrameMeta(seq, arrived, n))
        return True

    def peek(self) -> FrameMeta | None:
        return self._frames[0] if self._frames else None

    def pop(self) -> tuple[FrameMeta, bytes]:
        meta = self._frames.popleft()
        n = meta.length
        first = min(n, self._cap - self._head)
        if first == n:
            out = self._buf[self._head : self._head + n].tobytes()
        else:
            out = self._buf[self._head :].tobytes() + self._buf[: n - first].tobytes()
        self._head = (self._head + n) % self._cap
        self._used -= n
        return meta, out

    def clear(self) -> int:
        dropped = len(self._frames)
        self._frames.clear()
        self._head = 0
        self._used = 0
        return dropped
