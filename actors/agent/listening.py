"""What the two speech engines share: an STT link, one inbox, one decide loop, the tasks they own.

``TranscriptionEngine`` (``WS /v2/flux/{id}``: transcripts only, in Flux's schema) and ``AgentEngine`` (the
voice agent) are both ``ListeningEngine``s: audio goes from the session's ring to the STT (``Listener``),
STT events come back through one inbox consumed by one task, so everything that decides happens one event at
a time, in arrival order.

Tasks and their owner (``aclose`` cancels all of them): the audio pump (inbound ring -> STT), the STT reader
(STT events -> inbox), the decide loop, small control tasks, and (agent) each turn's own scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

from vani.actors.agent.flux_wire import FluxWire
from vani.actors.agent.listener import Listener
from vani.actors.metrics import provider_error
from vani.actors.session.engine import SessionIO
from vani.adapters.base import ProviderError
from vani.adapters.factory import Providers
from vani.cluster.config import Settings

log = logging.getLogger("vani.engine")


class ListeningEngine:
    mode = "listening"

    def __init__(self, io: SessionIO, settings: Settings, providers: Providers) -> None:
        self.io = io
        self.session_id = io.session_id
        self.settings = settings
        self.providers = providers
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.flux = FluxWire(self.send)
        self.listener = Listener(io, providers.stt, providers.stt_options, self.post, self.on_audio)
        # Final transcripts, the most recent ``transcript_history_turns`` (a resumed Flux client gets them).
        self.transcripts: deque[dict[str, Any]] = deque(maxlen=settings.transcript_history_turns or None)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def start(self) -> None:
        """Open the STT and run (the subclass has built its own parts first)."""
        self.spawn(self._run(), "pipeline")

    # ------------------------------------------------------------------ plumbing
    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A task this engine owns: cancelled by ``aclose``; a crash fails the session."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{name}:{self.session_id}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session=%s %s crashed: %r", self.session_id, task.get_name(), task.exception())
            self.io.fail_internal(f"internal error in {task.get_name().split(':')[0]}")

    def post(self, kind: str, data: Any = None) -> None:
        self.inbox.put_nowait((kind, data))

    def send(self, msg: str) -> None:
        """A JSON event to the client, on the priority lane (never behind audio)."""
        self.io.outbound.put_control(msg)

    # ------------------------------------------------------------------ the STT link and the decide loop
    async def _run(self) -> None:
        try:
            await self.listener.open()
        except ProviderError as exc:
            self.provider_failed(exc)
            return
        self.spawn(self._guarded(self.listener.pump_audio()), "stt-audio")
        self.spawn(self._guarded(self.listener.read_events()), "stt-events")
        while True:
            kind, data = await self.inbox.get()
            if kind == "stt_closed":
                self.io.close_normal("CloseStream: stream finished")
                return
            await self.decide(kind, data)

    async def _guarded(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except ProviderError as exc:
            self.provider_failed(exc)

    def provider_failed(self, exc: ProviderError) -> None:
        provider_error("stt", exc)
        log.warning("session=%s provider failed: %s", self.session_id, exc)
        self.io.fail_internal(f"speech recognition failed: {exc}")

    def on_audio(self) -> None:
        """An inbound frame went to the STT."""

    async def decide(self, kind: str, data: Any) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ the Engine protocol (shared part)
    def on_resume(self) -> None:
        pass

    def on_frame_sent(self, frame: bytes) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        return {"mode": self.mode, "transcripts": len(self.transcripts)}

    def durable_state(self) -> dict[str, Any]:
        return {"transcripts": list(self.transcripts)}

    def restore(self, state: dict[str, Any]) -> dict[str, Any]:
        self.transcripts.extend(t for t in state.get("transcripts", []) if isinstance(t, dict))
        return {}

    async def aclose(self) -> None:
        """Cancel every task this engine owns and close the providers (idempotent)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if self._closed:
            return
        self._closed = True
        if self.listener.stt is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.listener.stt.close(), 2.0)
        await self.providers.aclose()
