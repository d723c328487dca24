"""Flux streaming STT client (Workers AI ``@cf/deepgram/flux`` and Deepgram ``/v2/listen``).

The two differ only in URL, auth header and one query param (``model``), so one client serves both.

Resilience: if the socket drops (or the server sends a fatal ``Error``), the stream reconnects and
replays the audio not yet *acknowledged*. Flux has no explicit acks; audio counts as acknowledged once
an ``EndOfTurn`` covers it (or an ``Update`` outside any turn), because everything before that point has
been fully transcribed and delivered. Replayed audio re-creates the open turn on the new connection; the
client shifts the new connection's audio clock and ``turn_index`` so consumers see one continuous stream,
and suppresses the repeated ``StartOfTurn``. If the lost connection had sent ``EagerEndOfTurn``, a
``TurnResumed`` is emitted, because the new connection re-decides that turn from scratch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection, connect

from vani.adapters.base import ErrorKind, ProviderError, SttOptions, TurnEvent, TurnEventType
from vani.adapters.credentials import redact
from vani.adapters.errors import http_error, transport_error
from vani.adapters.retry import Backoff

log = logging.getLogger(__name__)
_DONE = object()


@dataclass
class FluxEndpoint:
    """Where and how to connect. ``secret`` is only used for redaction."""

    provider: str  # "workers-ai" | "deepgram"
    url: str  # ws(s)://... without query
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)  # fixed params, e.g. {"model": "flux-general-en"}
    secret: str | None = None


def workers_ai_endpoint(base_url: str, account_id: str, token: str) -> FluxEndpoint:
    url = _ws(base_url) + f"/accounts/{account_id}/ai/run/@cf/deepgram/flux"
    return FluxEndpoint("workers-ai", url, {"Authorization": f"Bearer {token}"}, secret=token)


def deepgram_endpoint(base_url: str, api_key: str, model: str = "flux-general-en") -> FluxEndpoint:
    url = _ws(base_url) + "/v2/listen"
    return FluxEndpoint("deepgram", url, {"Authorization": f"Token {api_key}"}, {"model": model}, secret=api_key)


def _ws(base: str) -> str:
    base = base.rstrip("/")
    return (
        "wss://" + base[8:]
        if base.startswith("https://")
        else "ws://" + base[7:]
        if base.startswith("http://")
        else base
    )


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
        # Audio bookkeeping, in bytes of the whole stream (across connections).
        self._sent = 0  # total audio accepted from the caller
        self._acked = 0  # audio fully transcribed and delivered
        self._replay = bytearray()  # audio from _acked to _sent
        self._conn_base = 0  # stream offset where the current connection's audio clock starts
        self._last_audio = 0.0
        # Turn bookkeeping for a continuous view across reconnects.
        self._turns_before_conn = 0
        self._conn_turns = 0  # EndOfTurns received on the current connection
        self._turn_active = False
        self._eager_pending = False
        self._last_end = 0.0  # latest audio_window_end delivered
        self._last_start = 0.0
        self.reconnects = 0

    # ---- connection ------------------------------------------------------------------------
    def _url(self) -> str:
        o = self.opts
        params: list[tuple[str, str]] = [
            *self.cfg.endpoint.params.items(),
            ("encoding", o.encoding),
            ("sample_rate", str(o.sample_rate)),
            ("eot_threshold", str(o.eot_threshold)),
            ("eot_timeout_ms", str(o.eot_timeout_ms)),
        ]
        if o.eager_eot_threshold is not None:
            params.append(("eager_eot_threshold", str(o.eager_eot_threshold)))
        params += [("keyterm", k) for k in o.keyterms]
        params.append(("tag", self.session_id))
        return f"{self.cfg.endpoint.url}?{urlencode(params)}"

    async def _connect(self) -> ClientConnection:
        ep = self.cfg.endpoint
        try:
            return await connect(
                self._url(),
                additional_headers={**ep.headers, **self.cfg.extra_headers},
                open_timeout=self.cfg.connect_timeout_s,
                ping_interval=10,
                ping_timeout=20,
                max_size=2**22,
                compression=None,  # PCM does not compress; deflate only costs CPU on both ends
            )
        except websockets.InvalidStatus as e:
            raise http_error(self.cfg.name, e.response.status_code, e.response.body or b"", ep.secret) from None
        except (OSError, TimeoutError, websockets.InvalidHandshake) as e:
            raise transport_error(self.cfg.name, e, ep.secret) from None

    async def _connect_with_retry(self) -> ClientConnection:
        backoff = Backoff(base_s=0.1, max_s=2.0)
        for attempt in range(self.cfg.max_reconnects + 1):
            try:
                return await self._connect()
            except ProviderError as e:
                if not e.retryable or attempt == self.cfg.max_reconnects:
                    raise
                await asyncio.sleep(backoff.delay(attempt))
        raise AssertionError("unreachable")

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
            len(self._replay) / self.bytes_per_s,
        )
        self._ws = None  # send_audio only buffers until the replay below is done
        ws = await self._connect_with_retry()
        async with self._send_lock:  # replay snapshot and switch-over are atomic w.r.t. send_audio
            self._conn_base = self._acked
            if self._eager_pending:
                resumed = TurnEvent(
                    TurnEventType.TURN_RESUMED,
                    self._turns_done,
                    audio_window_start=self._last_start,
                    audio_window_end=self._last_end,
                )
                self._emit(resumed)
                self._eager_pending = False
            replay = bytes(self._replay)
            for i in range(0, len(replay), 2560 * 4):
                await ws.send(replay[i : i + 2560 * 4])
            self._ws = ws

    @property
    def _turns_done(self) -> int:
        return self._turns_before_conn + self._conn_turns

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
                except websockets.ConnectionClosed as e:
                    reason = f"socket closed ({e.rcvd.code if e.rcvd else 'no close frame'})"
                if self._closing:
                    return
                with contextlib.suppress(Exception):
                    await ws.close()
                self._turns_before_conn += self._conn_turns
                self._conn_turns = 0
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
            self._on_turn(ev)
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

    def _on_turn(self, ev: TurnEvent) -> None:
        base_s = self._conn_base / self.bytes_per_s
        ev.audio_window_start = round(ev.audio_window_start + base_s, 3)
        ev.audio_window_end = round(ev.audio_window_end + base_s, 3)
        for w in ev.words:
            w.start = None if w.start is None else round(w.start + base_s, 3)
            w.end = None if w.end is None else round(w.end + base_s, 3)
        ev.turn_index += self._turns_before_conn
        t = ev.event
        if t is not TurnEventType.END_OF_TURN and ev.audio_window_end < self._last_end - 1e-6:
            return  # the replay re-describes audio the caller has already had events for
        if t is TurnEventType.START_OF_TURN:
            if self._turn_active:
                return  # the replay re-opened a turn the caller already knows about
            self._turn_active = True
        elif t is TurnEventType.EAGER_END_OF_TURN:
            self._eager_pending = True
        elif t is TurnEventType.TURN_RESUMED:
            self._eager_pending = False
        elif t is TurnEventType.END_OF_TURN:
            self._turn_active = self._eager_pending = False
            self._conn_turns += 1
            self._ack(ev.audio_window_end)
        elif t is TurnEventType.UPDATE and not self._turn_active:
            self._ack(ev.audio_window_end)
        self._last_end = max(self._last_end, ev.audio_window_end)
        self._last_start = ev.audio_window_start
        self._emit(ev)

    def _ack(self, until_s: float) -> None:
        until = min(self._sent, int(until_s * self.bytes_per_s) // 2 * 2)
        if until > self._acked:
            del self._replay[: until - self._acked]
            self._acked = until

    def _emit(self, ev: TurnEvent) -> None:
        self._queue.put_nowait(ev)

    # ---- SttStream API ---------------------------------------------------------------------
    async def send_audio(self, pcm: bytes) -> None:
        """Send PCM16 audio; while reconnecting it is only buffered (the replay will carry it)."""
        if self._closing:
            raise ProviderError(self.cfg.name, ErrorKind.BAD_REQUEST, "send_audio after close")
        if self._reader is not None and self._reader.done():
            raise ProviderError(self.cfg.name, ErrorKind.UNAVAILABLE, "stream has failed; see events()")
        async with self._send_lock:
            self._replay += pcm
            self._sent += len(pcm)
            limit = int(self.cfg.replay_max_s * self.bytes_per_s)
            if len(self._replay) > limit:  # bound memory: oldest unacknowledged audio is given up
                drop = len(self._replay) - limit
                del self._replay[:drop]
                self._acked += drop
            self._last_audio = asyncio.get_running_loop().time()
            if self._ws is not None:
                with contextlib.suppress(websockets.ConnectionClosed):
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
            except websockets.ConnectionClosed:
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

    def diagnostics(self) -> dict[str, Any]:
        return {
            "sent_bytes": self._sent,
            "acked_bytes": self._acked,
            "reconnects": self.reconnects,
            "replay_bytes": len(self._replay),
        }


def safe(text: str, ep: FluxEndpoint) -> str:
    return redact(text, ep.secret)
