"""The session's speech-to-text link: inbound ring -> STT, STT events -> the engine's inbox.

A slow STT fills the ring and the session stops reading its link (backpressure to the client). The listener
also keeps the audio clock: for each inbound chunk, the stream byte offset where it ends and when it arrived,
so a point on the audio timeline (a word's end, a speech start) maps to the moment the user said it
(``actors/agent/speech_clock.py``). ``CloseStream`` closes the STT once the audio before it has been sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from vani.actors.agent import speech_clock
from vani.actors.session.engine import SessionIO
from vani.actors.session.event_log import STT
from vani.adapters.base import ProviderError, SttOptions, SttProvider, SttStream

BYTES_PER_S = 32000  # inbound audio: 16 kHz mono PCM16


class Listener:
    def __init__(
        self,
        io: SessionIO,
        provider: SttProvider,
        options: SttOptions,
        post: Callable[[str, Any], None],
        on_audio: Callable[[], None],
    ) -> None:
        self.io, self.provider, self.options = io, provider, options
        self._post, self._on_audio = post, on_audio
        self.stt: SttStream | None = None
        self.audio_clock: deque[tuple[int, float]] = deque(maxlen=4096)  # (stream byte end, arrival)
        self._audio_bytes = 0
        self._close_requested = False  # the client sent CloseStream (a request, not a conversation state)
        self.opened = asyncio.Event()  # set once ``open`` has the STT stream

    async def open(self) -> None:
        self.stt = await self.provider.open(self.io.session_id, self.options)
        self.opened.set()

    async def wait_open(self, timeout: float) -> SttStream | None:
        """The STT stream once it is open (a client may ask for it first), None if not within ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.opened.wait(), timeout)
        return self.stt

    @property
    def audio_bytes(self) -> int:
        """Client audio streamed to the STT so far."""
        return self._audio_bytes

    async def pump_audio(self) -> None:
        """Inbound ring -> STT, until ``close_stream`` and the ring is empty (raises ``ProviderError``)."""
        io, stt = self.io, self.stt
        assert stt is not None
        while True:
            meta = io.ring.peek()
            if meta is None:
                if self._close_requested:
                    # CloseStream after the audio before it (Flux handles messages in order); the reader
                    # forwards the last Updates, then posts stt_closed.
                    await stt.close()
                    return
                io.frames_ready.clear()
                await io.frames_ready.wait()
                continue
            meta, pcm = io.ring.pop()
            io.space_freed()
            self._audio_bytes += len(pcm)
            self.audio_clock.append((self._audio_bytes, meta.arrived))
            self._on_audio()
            await stt.send_audio(pcm)

    async def read_events(self) -> None:
        """STT events -> ``("stt", (event, arrival))`` on the inbox; ``stt_closed`` at the end."""
        assert self.stt is not None
        events = self.io.events
        async for ev in self.stt.events():
            if events.enabled:
                events.add(STT, {"event": ev.to_flux()})
            self._post("stt", (ev, self.io.clock.now()))
        self._post("stt_closed", None)

    async def force_end_turn(self) -> None:
        """Flux ``ForceEndTurn`` (a failure is the STT reader's to report)."""
        if self.stt is not None:
            with contextlib.suppress(ProviderError):
                await self.stt.force_end_turn()

    def close_stream(self) -> None:
        self._close_requested = True
        self.io.frames_ready.set()  # wake the pump: it closes STT once the ring is empty

    def arrival_of(self, audio_s: float, *, starts: bool = False) -> float | None:
        """When the user's real-time audio reached stream time ``audio_s`` (``starts``: speech starting there)."""
        return speech_clock.moment_of(self.audio_clock, audio_s, BYTES_PER_S, starts=starts)
