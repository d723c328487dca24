"""Aura-2 over the Deepgram speak WebSocket (``/v1/speak``; Workers AI serves the same protocol).

One connection per provider instance, kept open across utterances (the session's voice). An utterance
is ``Speak`` + ``Flush``; its audio ends at the matching ``Flushed``. Barge-in: cancelling an utterance
sends ``Clear``; audio still in flight before ``Cleared`` is discarded, so the next utterance never
starts with stale audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection, connect

from vani.adapters.base import AudioFormat, ErrorKind, ProviderError, TtsChunk, TtsOptions
from vani.adapters.errors import http_error, transport_error

log = logging.getLogger(__name__)
FLUSH_LIMIT = 20  # per 60 s; past it the server ignores flushes


@dataclass
class DeepgramWsTts:
    url: str  # ws(s)://host/v1/speak, or the Workers AI .../ai/run/@cf/deepgram/aura-2-en
    auth_header: str  # "Token <key>" or "Bearer <token>"
    secret: str
    name: str = "deepgram-ws"
    workers_ai: bool = False  # Workers AI takes ``speaker`` instead of ``model``
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    extra_headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._ws: ClientConnection | None = None
        self._key: tuple[Any, ...] | None = None
        self._lock = asyncio.Lock()  # one utterance at a time on the socket
        self._flushes = 0  # Flush messages sent on this connection (== server's next sequence_id)
        self._flush_times: deque[float] = deque()
        self._pending_clear = False

    def _query(self, o: TtsOptions) -> str:
        enc = o.encoding if o.encoding in ("linear16", "mulaw", "alaw") else "linear16"
        q: dict[str, Any] = {"encoding": enc, "sample_rate": o.sample_rate}
        q["speaker" if self.workers_ai else "model"] = o.speaker if self.workers_ai else f"aura-2-{o.speaker}-en"
        return urlencode(q)

    async def _connection(self, o: TtsOptions) -> ClientConnection:
        key = (o.speaker, o.encoding, o.sample_rate)
        if self._ws is not None and (self._key != key or self._ws.close_code is not None):
            await self._drop()
        if self._ws is None:
            try:
                self._ws = await connect(
                    f"{self.url}?{self._query(o)}",
                    additional_headers={"Authorization": self.auth_header, **self.extra_headers},
                    open_timeout=self.connect_timeout_s,
                    max_size=2**22,
                    compression=None,
                )
            except websockets.InvalidStatus as e:
                raise http_error(self.name, e.response.status_code, e.response.body or b"", self.secret) from None
            except (OSError, TimeoutError, websockets.InvalidHandshake) as e:
                raise transport_error(self.name, e, self.secret) from None
            self._key, self._flushes, self._pending_clear = key, 0, False
        return self._ws

    async def _drop(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        self._ws = None

    async def _recv(self, ws: ClientConnection) -> str | bytes:
        try:
            return await asyncio.wait_for(ws.recv(), timeout=self.read_timeout_s)
        except TimeoutError:
            await self._drop()
            raise ProviderError(
                self.name, ErrorKind.TIMEOUT, f"no data for {self.read_timeout_s:g} s", retryable=True
            ) from None
        except websockets.ConnectionClosed as e:
            await self._drop()
            code = e.rcvd.code if e.rcvd else "none"
            reason = e.rcvd.reason if e.rcvd else "dropped"
            raise ProviderError(
                self.name, ErrorKind.UNAVAILABLE, f"socket closed (code {code}, {reason})", retryable=True
            ) from None

    def _may_flush(self) -> bool:
        now = time.monotonic()
        while self._flush_times and now - self._flush_times[0] > 60:
            self._flush_times.popleft()
        return len(self._flush_times) < FLUSH_LIMIT

    async def synthesize(self, text: str, options: TtsOptions) -> AsyncIterator[TtsChunk]:
        """Audio for ``text``. Cancelling it mid-way sends ``Clear`` (barge-in)."""
        async for chunk in self.synthesize_stream(_one(text), options):
            yield chunk

    async def synthesize_stream(self, sentences: AsyncIterator[str], options: TtsOptions) -> AsyncIterator[TtsChunk]:
        """Speak sentences as they arrive (an LLM reply); one Flush per sentence within the rate limit."""
        fmt = AudioFormat(
            options.encoding if options.encoding in ("linear16", "mulaw", "alaw") else "linear16",
            options.sample_rate,
            "none",
        )
        async with self._lock:
            ws = await self._connection(options)
            if self._pending_clear:
                await self._await_cleared(ws)
            done = False
            outstanding: deque[int] = deque()  # sequence ids of our flushes not yet Flushed
            try:
                unflushed = False
                async for text in sentences:
                    if not text.strip():
                        continue
                    await self._send(ws, {"type": "Speak", "text": text})
                    unflushed = True
                    if self._may_flush():  # else the text waits for the next allowed Flush
                        await self._flush(ws, outstanding)
                        unflushed = False
                        async for chunk in self._drain(ws, outstanding, fmt):
                            yield chunk
                if unflushed:
                    if not self._may_flush():  # wait for the oldest flush to leave the 60 s window
                        await asyncio.sleep(max(0.0, 60.0 - (time.monotonic() - self._flush_times[0])))
                    await self._flush(ws, outstanding)
                async for chunk in self._drain(ws, outstanding, fmt):
                    yield chunk
                done = True
            finally:
                if not done and self._ws is not None:
                    # Barge-in (or failure): stop the server's audio and discard what is in flight.
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ws.send(json.dumps({"type": "Clear"})), 1.0)
                        self._pending_clear = True

    async def _flush(self, ws: ClientConnection, outstanding: deque[int]) -> None:
        self._flush_times.append(time.monotonic())
        await self._send(ws, {"type": "Flush"})
        outstanding.append(self._flushes)
        self._flushes += 1

    async def _drain(self, ws: ClientConnection, outstanding: deque[int], fmt: AudioFormat) -> AsyncIterator[TtsChunk]:
        while outstanding:
            msg = await self._recv(ws)
            if isinstance(msg, bytes):
                yield TtsChunk(msg, fmt)
            else:
                self._control(msg, outstanding)

    def _control(self, raw: str, outstanding: deque[int]) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            log.warning("tts ws: ignoring malformed frame %r", raw[:80])
            return
        kind = msg.get("type")
        if kind == "Flushed":
            seq = int(msg.get("sequence_id", -1))
            while outstanding and outstanding[0] <= seq:
                outstanding.popleft()
        elif kind == "Warning":
            log.warning("tts ws warning: %s %s", msg.get("code"), msg.get("description"))
        elif kind == "Error":
            raise ProviderError(self.name, ErrorKind.UNAVAILABLE, str(msg.get("description") or msg)[:200])

    async def _await_cleared(self, ws: ClientConnection) -> None:
        while True:
            msg = await self._recv(ws)
            if isinstance(msg, str) and '"Cleared"' in msg:
                self._pending_clear = False
                return

    async def _send(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        try:
            await ws.send(json.dumps(msg))
        except websockets.ConnectionClosed:
            await self._drop()
            raise ProviderError(self.name, ErrorKind.UNAVAILABLE, "socket closed", retryable=True) from None

    async def aclose(self) -> None:
        """``Close`` the socket (the server finishes and closes)."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.send(json.dumps({"type": "Close"}))
            await self._drop()


async def _one(text: str) -> AsyncIterator[str]:
    yield text
