"""Fixed-capacity FIFO of inbound PCM frames.

Overflow policy: ``push`` never overwrites. When a frame does not fit it returns False and counts an
overflow; the session then stops reading from its link until its engine (echo, or the STT link) drains
space, so a fast client is slowed by TCP backpressure instead of losing audio. Memory per session is
therefore bounded by ``capacity`` bytes of audio whatever the client does.

Frames are kept as the immutable ``bytes`` they arrived in, not copied into a preallocated array: a copy
in and a copy out per frame was ~20 % of a session host's work per inbound frame (issue 12's profile), and
an idle session no longer holds ``capacity`` bytes it is not using.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FrameMeta:
    seq: int
    arrived: float  # monotonic seconds
    length: int


class RingBuffer:
    """Byte ring holding whole frames; frames are read back in the order they were pushed."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._cap = capacity
        self._used = 0
        self._frames: deque[FrameMeta] = deque()
        self._data: deque[bytes] = deque()
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
        self._data.append(bytes(data))  # a no-op for bytes; a copy of a view, which must not alias
        self._used += n
        self._frames.append(FrameMeta(seq, arrived, n))
        return True

    def peek(self) -> FrameMeta | None:
        return self._frames[0] if self._frames else None

    def pop(self) -> tuple[FrameMeta, bytes]:
        meta = self._frames.popleft()
        self._used -= meta.length
        return meta, self._data.popleft()

    def clear(self) -> int:
        dropped = len(self._frames)
        self._frames.clear()
        self._data.clear()
        self._used = 0
        return dropped
