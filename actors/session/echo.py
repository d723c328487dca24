"""Echo engine (phase 1): replay each inbound frame to the client ``delay_s`` after it arrived.

It reads the session's inbound ring in order and writes to the outbound audio lane; when that lane is
full (slow reader) it waits, the ring fills, and the session stops reading its link: backpressure all
the way to the client, nothing dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from vani.actors.session.outbound import OutboundQueue
from vani.actors.session.ring_buffer import FrameMeta, RingBuffer


async def run_echo(
    ring: RingBuffer,
    frames_ready: asyncio.Event,
    space_freed: Callable[[], None],
    outbound: OutboundQueue,
    delay_s: float,
    on_echo: Callable[[FrameMeta, float], None],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run until cancelled. ``on_echo(meta, lateness_s)`` is called after each frame is queued."""
    while True:
        meta = ring.peek()
        if meta is None:
            frames_ready.clear()
            await frames_ready.wait()
            continue
        due = meta.arrived + delay_s
        wait = due - time.monotonic()
        if wait > 0:
            await sleep(wait)
        meta, pcm = ring.pop()
        space_freed()
        await outbound.put_audio(pcm)
        on_echo(meta, max(0.0, time.monotonic() - due))
