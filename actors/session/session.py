"""One voice session: the Durable Object's state, whichever actor hosts it.

A ``Session`` owns transport and lifecycle: its state machine, inbound ring, outbound queue, counters and
tasks (link sender, TTL timer). What it does with the audio is its engine's (``actors/session/engine.py``:
echo, agent or transcription, built by the factory the host passes in); the session knows nothing of turns,
Flux or providers. It outlives client connections: a link (the gateway's websocket for one client
connection) attaches and detaches; within the TTL the same id and resume token get the same object back,
counters and all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from vani.actors.clock import Clock, LoopClock, Timer
from vani.actors.session.engine import EngineFactory
from vani.actors.session.event_log import CLIENT, RESTORED, RESUME, EventLog
from vani.actors.session.inbound import InboundAudio
from vani.actors.session.machine import InvalidEvent, SessionMachine
from vani.actors.session.outbound import CloseRequest, OutboundQueue
from vani.actors.store.record import SessionRecord
from vani.actors.tracing.session_trace import SessionTrace
from vani.actors.wire import client_json, protocol
from vani.actors.wire.protocol import Close, Limits
from vani.cluster.config import SessionLimits

log = logging.getLogger("vani.session")

_CLOSING: set[asyncio.Task] = set()  # engines shutting down after their session closed


class LinkSocket(Protocol):
    async def send(self, message: str | bytes) -> None: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


@dataclass
class Counters:
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    muted_dropped: int = 0
    duplicates: int = 0
    reordered: int = 0
    ring_waits: int = 0
    connections: int = 0


@dataclass
class Hooks:
    """What the host wants to hear about (metrics, registry release)."""

    on_closed: Callable[[Session, int], None]
    on_drop: Callable[[Session, str], None] = lambda s, reason: None
    on_checkpoint: Callable[[Session], None] = lambda s: None  # the session's durable state changed


class Session:
    def __init__(
        self,
        session_id: str,
        limits: SessionLimits,
        hooks: Hooks,
        make_engine: EngineFactory,
        clock: Clock | None = None,
        restored: SessionRecord | None = None,
        resume_token: str | None = None,
        recovery: str | None = None,
        trace: SessionTrace | None = None,
    ) -> None:
        """``restored``: the session's stored state (its host was lost), taken back by a client that proved
        ``resume_token``. ``recovery``: why a client that presented a token gets a fresh session instead.
        ``trace``: its spans (the host makes it, with the client's traceparent); else a trace of its own."""
        self.session_id = session_id
        self.clock: Clock = clock or LoopClock()
        self.trace = trace or SessionTrace(session_id, self.clock)
        self.limits = limits
        self.hooks = hooks
        self.resume_token = resume_token if restored is not None and resume_token else secrets.token_urlsafe(18)
        known = {f.name for f in fields(Counters)}
        self.counters = Counters(**{k: v for k, v in (restored.counters if restored else {}).items() if k in known})
        self.inbound = InboundAudio(
            max(limits.inbound_ring_bytes, limits.max_frame_bytes),
            self.counters,
            on_drop=lambda reason: hooks.on_drop(self, reason),
            on_gap=lambda reason: self.fail(Close.INTERNAL, reason),
            deliver=self._deliver,
        )
        # The engine's view of the inbound audio (``SessionIO``).
        self.ring, self.frames_ready, self.space_freed = (
            self.inbound.ring,
            self.inbound.frames_ready,
            self.inbound.space_freed,
        )
        # Inputs and outputs of the engine, for export and replay (actors/session/event_log.py).
        self.events = EventLog(self.clock, limits.event_log_entries, limits.record_audio)
        self.outbound = OutboundQueue(limits.outbound_cap_bytes, self.events.output if self.events.enabled else None)
        self.link: LinkSocket | None = None  # the client connection bound now (None: suspended)
        self.link_released = asyncio.Event()  # set when the bound link is let go (host.py: takeover grace)
        self._sender: asyncio.Task | None = None
        self._ttl: Timer | None = None
        self.close_code: int | None = None
        self.state = "connected"  # set by the machine; declared for readers and type checkers
        self.machine = SessionMachine(self, session_id)
        self.engine = make_engine(self)  # the engine may start its tasks at once
        # What the first connection is told about recovery (``session.started``), then forgotten.
        self._recovery: dict[str, Any] | None = None
        if restored is not None:
            self.events.add(RESTORED, {"state": restored.engine})
            self._recovery = {"recovered": True, **self.engine.restore(restored.engine)}
        elif recovery is not None:
            self._recovery = {"recovered": False, "recovery": recovery}

    # ---------------------------------------------------------------- link lifecycle
    def attach(self, link: LinkSocket) -> dict[str, Any]:
        """Bind a client connection; returns the ``session.started`` payload."""
        recovered = self._recovery is not None and self._recovery["recovered"]
        resumed = self.machine.state == "suspended" or recovered
        if self.link is not None:  # takeover by a connection that presented the resume token
            self._unbind(Close.REPLACED, "session taken over by a newer connection")
        self._ttl = cancelled(self._ttl)
        self.link = link
        self.link_released = asyncio.Event()
        self.counters.connections += 1
        self._sender = asyncio.get_running_loop().create_task(self._send_loop(link), name=f"sender:{self.session_id}")
        limits = public_limits(self.limits, self.ring.capacity)
        started = protocol.session_started(self.session_id, self.resume_token, resumed, "", limits)
        if self.machine.state == "connected":
            self.machine.fire("START")
        elif resumed:
            self.machine.fire("RESUME")
            self.events.add(RESUME, {})
            self.engine.on_resume()
        started["state"] = self.machine.state
        started["counters"] = asdict(self.counters)
        self.trace.event("connected", resumed=resumed, connection=self.counters.connections)
        if self._recovery is not None:
            started.update(self._recovery)
            self._recovery = None
        self.checkpoint()  # a session exists (and its token) from its first connection on
        return self.engine.greeting(started, resumed)

    def detach(self, link: LinkSocket) -> None:
        """The client connection ``link`` is gone; keep the session for the TTL."""
        if link is not self.link:
            return  # an old connection that was already replaced
        self._unbind(None, "")
        self.trace.event("disconnected")
        if self.machine.can("DISCONNECT"):
            self.machine.fire("DISCONNECT")
            self.checkpoint()

    def checkpoint(self) -> None:
        """The session's durable state changed (a turn boundary, suspend): the host writes it to the store."""
        if self.machine.state != "closed":
            self.hooks.on_checkpoint(self)

    def _unbind(self, code: int | None, reason: str) -> None:
        link, self.link = self.link, None
        self.link_released.set()
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
        if link is not None and code is not None:
            asyncio.get_running_loop().create_task(link.close(code, reason))

    async def _send_loop(self, link: LinkSocket) -> None:
        while True:
            msg = await self.outbound.get()
            if isinstance(msg, CloseRequest):
                await link.close(msg.code, msg.reason)
                return
            await link.send(msg)
            if isinstance(msg, bytes):
                self.counters.frames_out += 1
                self.counters.bytes_out += len(msg)
                self.engine.on_frame_sent(msg)

    # ---------------------------------------------------------------- inbound
    async def on_frame(self, seq: int, pcm: bytes) -> None:
        """Audio from the link, numbered by the gateway; enforces order, applies backpressure."""
        await self.inbound.on_frame(seq, pcm)

    def _deliver(self, pcm: bytes) -> None:
        """The next frame in order, with room for it in the ring: the machine decides what happens to it."""
        try:
            self.machine.fire("AUDIO_FRAME", pcm, self.clock.now())
        except InvalidEvent as exc:
            self.hooks.on_drop(self, "state")
            self.outbound.put_control(protocol.error("invalid_event", str(exc)), own=True)

    def on_control(self, raw: str) -> None:
        """A validated client JSON message (the gateway already checked it parses and its type)."""
        try:  # same bounds as the gateway's: a bad message must never end the link's read loop
            msg = client_json.parse_message(raw)
        except client_json.ClientJsonError as exc:
            self.outbound.put_control(protocol.error(exc.code, exc.message), own=True)
            return
        kind = msg.get("type")
        try:
            if kind in self.engine.client_types:
                self.events.add(CLIENT, {"msg": msg})
                self.engine.on_client(msg)
            elif kind == "ping":
                self.outbound.put_control(protocol.pong(msg), own=True)
            elif kind == "mute":
                self.machine.fire("MUTE")
            elif kind == "unmute":
                self.machine.fire("UNMUTE")
            elif kind == "close":
                self.close(Close.NORMAL, "closed by client")
            else:
                self.outbound.put_control(protocol.error("unknown_type", f"unknown message type {kind!r}"), own=True)
        except InvalidEvent as exc:
            self.outbound.put_control(
                protocol.error("invalid_event", str(exc), event=exc.event, state=exc.state), own=True
            )

    # ---------------------------------------------------------------- state machine callbacks
    def on_audio_frame(self, pcm: bytes, arrived: float) -> None:
        self.events.frame(pcm)
        self.inbound.push(pcm, arrived)

    def on_muted_frame(self, pcm: bytes, arrived: float) -> None:
        self.counters.muted_dropped += 1
        self.hooks.on_drop(self, "muted")

    def on_state_change(self, source: str, dest: str, event: str) -> None:
        if self.engine.vani_schema:  # e.g. Flux clients get only Flux's schema
            self.outbound.put_control(protocol.state_changed(source, dest, event), own=True)
        if dest == "suspended":
            self._ttl = self.clock.call_later(self.limits.session_ttl_s, self._ttl_expired)
        elif dest == "closed":
            self._teardown()

    # ---------------------------------------------------------------- ending
    def close(self, code: int, reason: str) -> None:
        """Close the session for good (client `close`, shutdown)."""
        if self.machine.can("CLOSE"):
            self.close_code = code
            self.outbound.put_control(CloseRequest(code, reason), own=True)
            self.machine.fire("CLOSE")

    def fail(self, code: int, reason: str) -> None:
        """Fatal error: tell the client why, close with ``code``, destroy the session."""
        if self.machine.can("ERROR"):
            log.warning("session=%s failing: %s", self.session_id, reason)
            self.close_code = code
            if self.engine.vani_schema:  # else the engine told its client in its own schema
                self.outbound.put_control(protocol.error("session_failed", reason, close_code=code), own=True)
            self.outbound.put_control(CloseRequest(code, reason), own=True)
            self.machine.fire("ERROR")

    def fail_internal(self, reason: str) -> None:
        """The engine failed (provider gone, a task crashed)."""
        self.fail(Close.INTERNAL, reason)

    def close_normal(self, reason: str) -> None:
        """The engine finished the session (Flux ``CloseStream`` done)."""
        self.close(Close.NORMAL, reason)

    def _ttl_expired(self) -> None:
        self._ttl = None
        if self.machine.can("TIMEOUT"):
            self.close_code = Close.NORMAL
            self.machine.fire("TIMEOUT")

    def _teardown(self) -> None:
        self._ttl = cancelled(self._ttl)
        closer = asyncio.get_running_loop().create_task(close_engine(self), name=f"close:{self.session_id}")
        _CLOSING.add(closer)  # the loop keeps only weak references to tasks
        closer.add_done_callback(_CLOSING.discard)
        if self.link is not None and self._sender is not None:
            # Let the sender deliver the queued error/close request, then it returns by itself.
            self.clock.call_later(2.0, self._sender.cancel)
        self.hooks.on_closed(self, self.close_code or Close.NORMAL)

    # ---------------------------------------------------------------- views
    def snapshot(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "state": self.machine.state,
            "connected": self.link is not None,
            "counters": asdict(self.counters),
            "ring_used": self.ring.used,
            "outbound_bytes": self.outbound.audio_bytes,
            "engine": self.engine.snapshot(),
        }

    async def aclose(self) -> None:
        """Cancel every task this session owns (host shutdown)."""
        self.close(Close.GOING_AWAY, "server shutting down")
        await close_engine(self)
        self._ttl = cancelled(self._ttl)
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(BaseException):
                await self._sender


async def close_engine(session: Session) -> None:
    """The engine lets go of its tasks and providers; then the session's trace ends (its turns' first)."""
    try:
        await session.engine.aclose()
    finally:
        code = session.close_code or Close.NORMAL
        error = None if code in (Close.NORMAL, Close.GOING_AWAY) else f"closed {code}"
        session.trace.end(error, **{"vani.close_code": code})


def cancelled(timer: Timer | None) -> None:
    """Cancel ``timer`` if set; returns None for the attribute that held it."""
    if timer is not None:
        timer.cancel()


def public_limits(lim: SessionLimits, ring_capacity: int) -> Limits:
    """The limits a client is told in ``session.started``."""
    return Limits(
        max_frame_bytes=lim.max_frame_bytes,
        outbound_queue_bytes=lim.outbound_cap_bytes,
        inbound_buffer_bytes=ring_capacity,
        session_ttl_s=lim.session_ttl_s,
        echo_delay_ms=lim.echo_delay_ms,
        flood_burst_s=lim.flood_burst_s,
        flood_rate=lim.flood_rate,
    )
