"""Test audio: PCM frames that carry their own sequence number, so order and loss are checkable."""

from __future__ import annotations

import functools
import struct


@functools.cache
def _body(nbytes: int) -> bytes:
    return bytes(i % 251 for i in range(nbytes))


def numbered_frame(seq: int, nbytes: int = 640) -> bytes:
    """``nbytes`` of PCM16 (20 ms at 16 kHz by default) whose first 4 bytes are ``seq``."""
    assert nbytes % 2 == 0 and nbytes >= 4
    return struct.pack(">I", seq) + _body(nbytes - 4)


def frame_seq(frame: bytes) -> int:
    return struct.unpack_from(">I", frame)[0]
