"""Flux streaming STT client (Workers AI ``@cf/deepgram/flux`` and Deepgram ``/v2/listen``).

One client serves both services (``flux_endpoint``). A dropped socket or a fatal server ``Error`` is
survived by reconnecting and replaying the unacknowledged audio; ``flux_continuity`` keeps the caller's
view one continuous stream across connections. This module owns the sockets: connect, read, send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from vani.adapters.base import ErrorKind, ProviderError, SttOptions, TurnEvent
from vani.adapters.errors import transport_error
from vani.adapters.stt.flux_continuity import StreamContinuity
from vani.adapters.stt.flux_endpoint import FluxEndpoint, deepgram_endpoint, dial, workers_ai_endpoint

__all__ = ["FluxEndpoint", "FluxStream", "FluxStt", "deepgram_endpoint", "workers_ai_endpoint"]

log = logging.getLogger(__name__)
_DONE = object()


@dataclass
class FluxStt:
    """``SttProvider`` for Flux. One instance can open many streams."""

    endpoint: FluxEndpoint
    name: str = "flux"
    connect_timeout_s: float = 5.0
    max_reconnects: int = 3
    replay_max_s: float = 30.0
    keepalive_s: float = 4.0  # send silence after this long without audio (v2 has no KeepAlive message)
    extra_headers: dict[str, str] = field(default_factory=dict)

    async def open(self, session_id: str, options: SttOptions) -> FluxStream:
        """Connect and return a stream; raises ``ProviderError`` if no connection could be made."""
        stream = FluxStream(self, session_id, options)
        await stream._start()
        return stream


class FluxStream:
    def __init__(self, cfg: FluxStt, session_id: str, options: SttOptions) -> None:
        self.cfg, self.session_id = cfg, session_id
        self.opts = SttOptions(**{**options.__dict__, "keyterms": list(options.keyterms)})
        self.bytes_per_s = 2 * options.sample_rate
        self._ws: ClientConnection | None = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._send_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._configure_waiters: list[asyncio.Future[dict[str, Any]]] = []
        self._closing = False
        self._closed = False
        self._flow = StreamContinuity(self.bytes_per_s, cfg.replay_max_s)
        self._last_audio = 0.0
        self.reconnects = 0

    # ---- connection ------------------------------------------------------------------------
    async def _connect_with_retry(self) -> ClientConnection:
        c = self.cfg
        url = c.endpoint.stream_url(self.opts, self.session_id)  # current options: a reconnect keeps Configure's
        return await dial(
            c.endpoint,
            url,
            name=c.name,
            extra_headers=c.extra_headers,
            connect_timeout_s=c.connect_timeout_s,
            max_retries=c.max_reconnects,
        )

    async def _start(self) -> None:
        self._ws = await self._connect_with_retry()
        self._last_audio = asyncio.get_running_loop().time()
        self._reader = asyncio.create_task(self._read_loop(), name=f"flux-read-{self.session_id}")
        self._keepalive = asyncio.create_task(self._keepalive_loop(), name=f"flux-keepalive-{self.session_id}")

    async def _reconnect(self, reason: str) -> None:
        """New connection, then replay unacknowledged audio; raises ProviderError when out of attempts."""
        if self.reconnects >= self.cfg.max_reconnects:
            raise ProviderError(
                self.cfg.name,
                ErrorKind.UNAVAILABLE,
                f"connection lost ({reason}) and {self.reconnects} reconnect(s) failed",
                retryable=True,
            )
        self.reconnects += 1
        log.warning(
            "flux %s: reconnecting (%s), replaying %.2f s",
            self.session_id,
            reason,
            self._flow.replay_s,
        )
        self._ws = None  # send_audio only buffers until the replay below is done
        ws = await self._connect_with_retry()
        async with self._send_lock:  # replay snapshot and switch-over are atomic w.r.t. send_audio
            resumed, replay = self._flow.switch_over()
            if resumed is not None:
                self._queue.put_nowait(resumed)
            for i in range(0, len(replay), 2560 * 4):
                await ws.send(replay[i : i + 2560 * 4])
            self._ws = ws

    # ---- reading ---------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        try:
            while True:
                ws = self._ws
                assert ws is not None
                reason = "socket closed"
                try:
                    async for raw in ws:
                        if isinstance(raw, bytes):
                            continue
                        err = self._handle(raw)
                        if err:
                            reason = err
                            break
                except ConnectionClosed as e:
                    reason = f"socket closed ({e.rcvd.code if e.rcvd else 'no close frame'})"
                if self._closing:
                    return
                with contextlib.suppress(Exception):
                    await ws.close()
                self._flow.connection_lost()
                await self._reconnect(reason)
        except ProviderError as e:
            self._queue.put_nowait(e)
        except Exception as e:  # a bug or an unexpected transport error: surface it typed
            self._queue.put_nowait(transport_error(self.cfg.name, e, self.cfg.endpoint.secret))
        finally:
            self._queue.put_nowait(_DONE)
            for fut in self._configure_waiters:
                if not fut.done():
                    fut.set_exception(ProviderError(self.cfg.name, ErrorKind.UNAVAILABLE, "stream closed"))

    def _handle(self, raw: str) -> str | None:
        """Process one server frame; returns a reason string if the connection must be replaced."""
        try:
            msg = json.loads(raw)
            if not isinstance(msg, dict):
                raise ValueError("not an object")
        except ValueError:
            log.warning("flux %s: ignoring malformed frame %r", self.session_id, raw[:80])
            return None
        kind = msg.get("type") or ("TurnInfo" if "event" in msg else None)  # Workers AI may omit type
        if kind == "TurnInfo":
            try:
                ev = TurnEvent.from_flux(msg)
            except (KeyError, ValueError, TypeError):
                log.warning("flux %s: ignoring bad TurnInfo %r", self.session_id, raw[:80])
                return None
            if (shown := self._flow.on_turn(ev)) is not None:
                self._queue.put_nowait(shown)
        elif kind in ("ConfigureSuccess", "ConfigureFailure"):
            if self._configure_waiters:
                fut = self._configure_waiters.pop(0)
                if not fut.done():
                    fut.set_result(msg)
        elif kind == "Error":
            return f"server error {msg.get('code')}: {str(msg.get('description', ''))[:200]}"
        elif kind == "Warning":
            log.info("flux %s: warning %s %s", self.session_id, msg.get("code"), msg.get("description", ""))
        return None  # Connected and unknown types need nothing

    # ---- SttStream API ---------------------------------------------------------------------
    async def send_audio(self, pcm: bytes) -> None:
        """Send PCM16 audio; while reconnecting it is only buffered (the replay will carry it)."""
        if self._closing:
            raise ProviderError(self.cfg.name, ErrorKind.BAD_REQUEST, "send_audio after close")
        if self._reader is not None and self._reader.done():
            raise ProviderError(self.cfg.name, ErrorKind.UNAVAILABLE, "stream has failed; see events()")
        async with self._send_lock:
            self._flow.accept(pcm)
            self._last_audio = asyncio.get_running_loop().time()
            if self._ws is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self._ws.send(pcm)  # on failure the reader reconnects and replays

    async def _keepalive_loop(self) -> None:
        silence = bytes(int(0.08 * self.bytes_per_s))
        loop = asyncio.get_running_loop()
        while not self._closing:
            await asyncio.sleep(self.cfg.keepalive_s / 2)
            if loop.time() - self._last_audio >= self.cfg.keepalive_s and not self._closing:
                with contextlib.suppress(ProviderError):
                    await self.send_audio(silence)

    async def configure(
        self,
        *,
        eot_threshold: float | None = None,
        eager_eot_threshold: float | None = None,
        eot_timeout_ms: int | None = None,
        keyterms: list[str] | None = None,
    ) -> None:
        """Flux ``Configure``; waits for ``ConfigureSuccess`` (raises ``ProviderError`` on failure)."""
        thresholds = {
            k: v
            for k, v in {
                "eot_threshold": eot_threshold,
                "eager_eot_threshold": eager_eot_threshold,
                "eot_timeout_ms": eot_timeout_ms,
            }.items()
            if v is not None
        }
        msg: dict[str, Any] = {"type": "Configure"}
        if thresholds:
            msg["thresholds"] = thresholds
        if keyterms is not None:
            msg["keyterms"] = keyterms
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._configure_waiters.append(fut)
        await self._send_control(msg)
        try:
            reply = await asyncio.wait_for(fut, timeout=self.cfg.connect_timeout_s)
        except TimeoutError:
            raise ProviderError(self.cfg.name, ErrorKind.TIMEOUT, "no reply to Configure") from None
        if reply.get("type") != "ConfigureSuccess":
            raise ProviderError(
                self.cfg.name,
                ErrorKind.BAD_REQUEST,
                f"Configure rejected: {reply.get('description') or reply.get('code') or 'no reason'}",
            )
        # Remember, so a reconnect opens with the same thresholds.
        for k, v in thresholds.items():
            setattr(self.opts, k, v)
        if keyterms is not None:
            self.opts.keyterms = list(keyterms)

    async def force_end_turn(self) -> None:
        await self._send_control({"type": "ForceEndTurn"})

    async def _send_control(self, msg: dict[str, Any]) -> None:
        async with self._send_lock:
            if self._ws is None:
                raise ProviderError(self.cfg.name, ErrorKind.UNAVAILABLE, "not connected")
            try:
                await self._ws.send(json.dumps(msg))
            except ConnectionClosed:
                raise ProviderError(self.cfg.name, ErrorKind.UNAVAILABLE, "connection lost", retryable=True) from None

    async def events(self) -> AsyncIterator[TurnEvent]:
        """Turn events in order; ends after ``close()``; raises ``ProviderError`` on fatal failure."""
        while True:
            item = await self._queue.get()
            if item is _DONE:
                self._queue.put_nowait(_DONE)  # later callers end too
                return
            if isinstance(item, ProviderError):
                raise item
            yield item

    async def close(self) -> None:
        """``CloseStream``: the server flushes its last Updates and drops the socket. Idempotent."""
        if self._closed:
            return
        self._closed = self._closing = True
        if self._keepalive:
            self._keepalive.cancel()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.send(json.dumps({"type": "CloseStream"}))
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), timeout=self.cfg.connect_timeout_s)
            except (TimeoutError, asyncio.CancelledError):
                self._reader.cancel()
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        self._queue.put_nowait(_DONE)
