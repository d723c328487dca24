"""Session host: a named, detached Ray actor that holds sessions and serves their links.

Ray does placement, lifecycle and discovery; audio never travels as Ray calls. The host runs a
``websockets`` server on its node; the gateway opens one link per client connection to it. In
``sharded`` mode a few hosts per node each hold many sessions; in ``actor`` mode a host holds exactly
one session (the literal Durable Object) and is killed when that session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import asdict
from typing import Any

import ray
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from vani.actors.clock import LoopClock
from vani.actors.engines import engine_factory
from vani.actors.session import recovery
from vani.actors.session.checkpoints import Checkpointer
from vani.actors.session.host_metrics import HostMetrics
from vani.actors.session.loop_lag import LoopLag
from vani.actors.session.ring_buffer import FrameMeta
from vani.actors.session.session import Hooks, Session
from vani.actors.store.open_store import open_store
from vani.actors.store.record import SessionRecord, token_digest
from vani.actors.tracing import configure as configure_tracing
from vani.actors.tracing import flush as flush_spans
from vani.actors.tracing import traceparent
from vani.actors.tracing.session_trace import SessionTrace
from vani.actors.wire import link_auth, protocol
from vani.actors.wire.protocol import Close
from vani.actors.wire.session_request import SessionRequest
from vani.adapters.http_client import warm_up
from vani.cluster.config import SessionLimits, Settings
from vani.cluster.logs import configure_logging, log_context

# How long a connection that presents the resume token of an attached session waits for the old link to
# close by itself before taking it over (Session.wait_link_released; docs/protocol.md "Resume").
TAKEOVER_GRACE_S = 1.0

log = logging.getLogger("vani.host")

LINK_MAX_BYTES = 1 << 20  # the gateway enforces the client frame limit before this
_RELEASING: set[asyncio.Task] = set()  # actor mode: releases waiting for their delete to be written


@ray.remote(max_restarts=-1, max_task_retries=0)
class SessionHost:
    def __init__(
        self,
        name: str,
        registry_name: str,
        namespace: str,
        single_session: str | None,
        settings: dict[str, Any],
        link_secret: bytes,
    ):
        # Sessions are built from the deployment's settings (from the registry at spawn), never from what a
        # link says; links must prove they know the deployment's secret (actors/wire/link_auth.py).
        self.settings = Settings.from_dict(settings)
        configure_logging(self.settings.log_level, self.settings.log_format)
        self._link_secret = link_secret
        self.name = name
        self.registry_name = registry_name
        self.namespace = namespace
        self.single_session = single_session
        self.sessions: dict[str, Session] = {}
        self._server: Server | None = None
        self._address: str | None = None
        self._rss_task: asyncio.Task | None = None
        self._metrics = HostMetrics(name)  # counts batched per lag tick (actors/session/host_metrics.py)
        self._tags = {"host": name}
        self._lag = LoopLag(self._report_lag)  # started with the link server
        self._registry = None
        self._checkpoints: Checkpointer | None = None  # None: session_store=none
        self._checkpoint_task: asyncio.Task | None = None
        warm_up()  # the first session's first reply must not pay the provider client's set-up
        self._node = ray.get_runtime_context().get_node_id()
        self._clock = LoopClock()  # stateless: one for all this host's sessions
        configure_tracing(self.settings, "host", **{"vani.host": name, "vani.node": self._node})

    async def ready(self) -> dict:
        """Start the link server (once) and report where it listens."""
        if self._server is None:
            ip = ray.util.get_node_ip_address()
            self._server = await serve(
                # No keepalive pings on links: a pong queued behind backpressured audio looks like a
                # dead peer. A dead host process closes its sockets; a dead node is Ray's to detect.
                self._handle_link,
                ip,
                0,
                max_size=LINK_MAX_BYTES,
                compression=None,
                ping_interval=None,
            )
            port = self._server.sockets[0].getsockname()[1]
            self._address = f"ws://{ip}:{port}"
            self._rss_task = asyncio.get_running_loop().create_task(self._metrics.report_forever(self.sessions))
            self._lag.ensure_started()
            self._open_store()
            log.info("host %s listening on %s (pid %d)", self.name, self._address, os.getpid())
        return {
            "name": self.name,
            "address": self._address,
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
        }

    def _open_store(self) -> None:
        s, node = self.settings, ray.get_runtime_context().get_node_id()
        store = open_store(s.session_store, s.session_store_dir, s.app_name, node)
        if store is None:
            return
        self._checkpoints = Checkpointer(
            store,
            s.session_ttl_s,
            live=lambda: list(self.sessions),
            on_error=self._metrics.store_error,
            on_written=self._metrics.stored,
            log_keep=s.event_log_entries if s.event_log_store else 0,
        )
        self._checkpoint_task = asyncio.get_running_loop().create_task(self._checkpoints.run(), name="checkpoints")

    async def session_ids(self) -> list[str]:
        return list(self.sessions)

    async def event_log(self, session_id: str, stored: bool = False) -> list[str] | None:
        """For ``vani sessions export``: a live (or suspended) session's event log as JSON lines, or with
        ``stored`` its runs in the session store (also a session whose host died); None: there is none."""
        if stored:
            return None if self._checkpoints is None else (await self._checkpoints.read_log(session_id)) or None
        s = self.sessions.get(session_id)
        return None if s is None else list(s.events.lines())

    async def stats(self) -> dict:
        return {
            "name": self.name,
            "address": self._address,
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "sessions": [s.snapshot() for s in self.sessions.values()],
            "store": None if self._checkpoints is None else self._checkpoints.stats(),
        }

    async def shutdown(self) -> None:
        for s in list(self.sessions.values()):
            await s.aclose()
        if self._rss_task is not None:
            self._rss_task.cancel()
        await self._lag.stop()
        self._metrics.flush(self.sessions)
        await asyncio.to_thread(flush_spans, 5.0)  # the closed sessions' spans leave before the process does
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
        if self._checkpoints is not None:
            await self._checkpoints.aclose()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # ------------------------------------------------------------------ links
    async def _handle_link(self, ws: ServerConnection) -> None:
        opening = await self._handshake(ws)
        if opening is None:
            return
        sid, token, request, parent = opening
        log_context(session_id=sid)  # this link's log lines, and every task its session starts (cluster/logs.py)
        if self.single_session is not None and sid != self.single_session:
            await self._refuse(ws, Close.INTERNAL, "wrong session actor")
            return
        session = self.sessions.get(sid)
        found = recovery.Recovery()
        if session is None:  # its host may have died: the store may hold it (actors/session/recovery.py)
            found = await recovery.decide(self._checkpoints, sid, token)
            if found.refuse is not None:
                self._metrics.m.recoveries.inc(tags={**self._tags, "outcome": found.outcome})
                await self._refuse(ws, Close.BAD_RESUME, found.refuse)
                return
            session = self.sessions.get(sid)  # another link may have made it meanwhile
        if session is not None and token != session.resume_token:
            if session.link is not None:
                await self._refuse(ws, Close.CONFLICT, "session already has a live connection")
            else:
                await self._refuse(ws, Close.BAD_RESUME, "resume token missing or invalid")
            return
        if session is None:
            limits = SessionLimits.from_settings(self.settings)
            if found.record is not None:  # the stored session's own mode and options, not this link's
                request = SessionRequest.from_link({"session_id": sid, **found.record.request}, self.settings)
            # The deployment's settings, with only the client's validated options applied.
            make_engine = engine_factory(request.mode, request.settings_for(self.settings), self._session_echoed)
            try:
                session = Session(
                    sid,
                    limits,
                    self._hooks(request),
                    make_engine,
                    clock=self._clock,
                    restored=found.record,
                    resume_token=token,
                    recovery=found.fresh_because,
                    trace=self._session_trace(sid, request.mode, parent),
                )
                if token is not None:
                    self._metrics.m.recoveries.inc(tags={**self._tags, "outcome": found.outcome})
            except Exception as exc:  # e.g. a provider is not configured: refuse, say why
                log.exception("session %s could not start", sid)
                await self._refuse(ws, Close.INTERNAL, f"session could not start: {exc}"[:120])
                return
            self.sessions[sid] = session
            self._metrics.track(session)
            self._metrics.report(self.sessions)
        log_context(trace_id=session.trace.trace_id())  # (a resumed session's)
        if session.link is not None:
            # A client that dropped and came straight back can reach this host before its old link's close
            # does (through HAProxy a connect takes a few ms): give the drop a moment, so the client gets
            # `resumed`; a link still alive after the grace is taken over (resumed: false).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.link_released.wait(), TAKEOVER_GRACE_S)
        started = session.attach(ws)
        await ws.send(
            protocol.dumps(
                {
                    "type": "link.opened",
                    "next_seq": session.inbound.expected_seq,
                    "started": started,
                    "trace": session.trace.traceparent(),  # the gateway's connect span joins the session's trace
                }
            )
        )
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    seq, pcm = protocol.decode_frame(message)
                    await session.on_frame(seq, pcm)
                    self._metrics.frames_in += 1
                else:
                    session.on_control(message)
        except ConnectionClosed:
            pass
        finally:
            session.detach(ws)

    async def _handshake(self, ws: ServerConnection) -> tuple[str, str | None, SessionRequest, str | None] | None:
        """Challenge the link, check its answer; returns (session id, resume token, request, the client's
        traceparent) or refuses."""
        nonce = link_auth.new_nonce()
        try:
            await ws.send(link_auth.challenge(nonce))
            raw = await asyncio.wait_for(ws.recv(), timeout=link_auth.HANDSHAKE_TIMEOUT_S)
        except TimeoutError:
            await self._refuse(ws, Close.POLICY, "link handshake too slow")
            return None
        except ConnectionClosed:
            return None
        body = link_auth.verify(self._link_secret, nonce, raw)
        if body is None:
            log.warning("host %s refused an unauthenticated link from %s", self.name, ws.remote_address)
            await self._refuse(ws, Close.POLICY, "link not authenticated")
            return None
        try:
            request = SessionRequest.from_link(body, self.settings)
        except ValueError as exc:
            log.warning("host %s refused a link.open: %s", self.name, exc)
            await self._refuse(ws, Close.POLICY, f"bad link.open: {exc}"[:120])
            return None
        return body["session_id"], body.get("resume_token"), request, traceparent.valid(body.get("traceparent"))

    def _session_trace(self, sid: str, mode: str, parent: str | None) -> SessionTrace:
        """A new session's trace: a child of the client's traceparent when it sent one."""
        where = {"vani.mode": mode, "vani.node": self._node, "vani.host": self.name, "vani.app": self.settings.app_name}
        trace = SessionTrace(sid, self._clock, parent=parent, attributes=where)
        log_context(trace_id=trace.trace_id())  # before the session starts its tasks: they inherit it
        return trace

    async def _refuse(self, ws: ServerConnection, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed):  # the peer may be gone already
            await ws.send(protocol.dumps({"type": "link.refused", "code": code, "reason": reason}))
            await ws.close(Close.NORMAL, reason)

    # ------------------------------------------------------------------ session hooks
    def _hooks(self, request: SessionRequest) -> Hooks:
        def checkpoint(session: Session) -> None:
            if self._checkpoints is not None:
                self._checkpoints.save(session.session_id, lambda: self._record(session, request), session.events)

        return Hooks(on_closed=self._session_closed, on_drop=self._session_dropped, on_checkpoint=checkpoint)

    @staticmethod
    def _record(session: Session, request: SessionRequest) -> SessionRecord:
        return SessionRecord(
            session_id=session.session_id,
            token_sha256=token_digest(session.resume_token),
            mode=request.mode,
            request=request.to_link(),
            counters=asdict(session.counters),
            engine=session.engine.durable_state(),
            saved_at=time.time(),
        )

    def _session_closed(self, session: Session, code: int) -> None:
        if self.sessions.get(session.session_id) is session:
            del self.sessions[session.session_id]
            if self._checkpoints is not None:  # closed or expired: its stored state goes too
                self._checkpoints.forget(session.session_id)
        self._metrics.untrack(session)
        self._metrics.report(self.sessions)
        if self.single_session is not None and self._checkpoints is not None:
            # actor mode: the release kills this host, so the delete must be written first
            task = asyncio.get_running_loop().create_task(self._release_after_flush(session.session_id))
            _RELEASING.add(task)
            task.add_done_callback(_RELEASING.discard)
        else:
            self._release(session.session_id)

    async def _release_after_flush(self, session_id: str) -> None:
        assert self._checkpoints is not None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._checkpoints.flush(), 5.0)
        self._release(session_id)

    def _release(self, session_id: str) -> None:
        with contextlib.suppress(Exception):
            registry = ray.get_actor(self.registry_name, namespace=self.namespace)
            registry.release.remote(session_id, self.name)

    def _session_echoed(self, meta: FrameMeta, lateness: float) -> None:
        self._metrics.echoed(lateness)

    def _session_dropped(self, session: Session, reason: str) -> None:
        self._metrics.dropped(reason)

    def _report_lag(self, lag_ms: float) -> None:
        """Every lag tick: the gauge, the frame counters, and the registry (admission by load skips hosts that
        are behind)."""
        self._metrics.m.loop_lag_ms.set(lag_ms, tags={"process": self.name})
        self._metrics.flush(self.sessions)
        with contextlib.suppress(Exception):
            if self._registry is None:
                self._registry = ray.get_actor(self.registry_name, namespace=self.namespace)
            self._registry.report_load.remote(self.name, lag_ms)
