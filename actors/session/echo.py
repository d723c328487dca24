"""The echo engine: replay each inbound frame to the client ``delay_s`` after it arrived.

It reads the session's inbound ring in order and writes to the outbound audio lane; when that lane is
full (slow reader) it waits, the ring fills, and the session stops reading its link: backpressure all
the way to the client, nothing dropped. It speaks vani's session schema and handles no client messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from vani.actors.session.engine import SessionIO
from vani.actors.session.ring_buffer import FrameMeta

log = logging.getLogger("vani.echo")


class EchoEngine:
    client_types: frozenset[str] = frozenset()
    vani_schema = True

    def __init__(self, io: SessionIO, delay_s: float, on_echo: Callable[[FrameMeta, float], None]) -> None:
        """``on_echo(meta, lateness_s)`` is called after each frame is queued (metrics)."""
        self.io, self.delay_s, self.on_echo = io, delay_s, on_echo
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"echo:{io.session_id}")
        self._task.add_done_callback(self._died)

    async def _run(self) -> None:
        io, clock = self.io, self.io.clock
        while True:
            meta = io.ring.peek()
            if meta is None:
                io.frames_ready.clear()
                await io.frames_ready.wait()
                continue
            due = meta.arrived + self.delay_s
            wait = due - clock.now()
            if wait > 0:
                await clock.sleep(wait)
            meta, pcm = io.ring.pop()
            io.space_freed()
            await io.outbound.put_audio(pcm)
            self.on_echo(meta, max(0.0, clock.now() - due))

    def _died(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("session=%s echo crashed: %r", self.io.session_id, task.exception())
            self.io.fail_internal("internal error in echo")

    def greeting(self, started: dict[str, Any], resumed: bool) -> dict[str, Any]:
        return started

    def on_client(self, msg: dict[str, Any]) -> None:  # no client messages of its own
        pass

    def on_resume(self) -> None:
        pass

    def on_frame_sent(self, frame: bytes) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        return {"kind": "echo", "delay_s": self.delay_s}

    def durable_state(self) -> dict[str, Any]:
        return {}  # echo keeps nothing beyond the session's own counters

    def restore(self, state: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
