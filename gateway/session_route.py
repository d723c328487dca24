"""``WS /v1/sessions/{session_id}``: validate, place, link to the session's host, pump both ways.

The gateway holds no session state: everything that must survive a reconnect lives in the session
on its host. What the gateway does own is input validation (frame size, PCM alignment, JSON shape),
authentication, and numbering inbound frames so the session can enforce their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from vani.actors.control.handle import link_secret
from vani.actors.metrics import session_metrics
from vani.actors.session.loop_lag import LoopLag
from vani.actors.wire import client_json, link_auth, protocol
from vani.actors.wire.protocol import CLIENT_TYPES, Close
from vani.actors.wire.session_request import SessionRequest
from vani.cluster.config import SESSION_ID_PATTERN, Settings
from vani.cluster.logs import log_context
from vani.gateway.connect_trace import ConnectTrace
from vani.gateway.dialect import Dialect, dialect_for, session_request
from vani.gateway.flood import FloodGuard

log = logging.getLogger("vani.gateway")

SESSION_ID_RE = re.compile(SESSION_ID_PATTERN)
LINK_MAX_BYTES = 1 << 20


@dataclass
class Refusal:
    code: int
    reason: str


def gateway_id() -> str:
    """Which gateway replica served this connection (diagnostics; replicas hold no session state)."""
    try:
        from ray import serve

        return serve.get_replica_context().replica_id.unique_id
    except Exception:
        return "unknown"


@functools.cache
def replica_lag() -> LoopLag:
    """This gateway replica's event-loop lag (one per process; started by the first connection)."""
    gauge, tags = session_metrics().loop_lag_ms, {"process": f"gateway-{gateway_id()}"}
    return LoopLag(lambda lag_ms: gauge.set(lag_ms, tags=tags))


def authorized(settings: Settings, ws: HTTPConnection) -> bool:
    if not settings.api_key:
        return True
    tokens = ws.query_params.getlist("token")
    if len(tokens) > 1:  # ambiguous: refused, never "the last one wins"
        return False
    # ``Bearer <key>``, or ``Token <key>`` (the scheme Deepgram's SDKs send), else ``?token=``.
    scheme, _, credential = ws.headers.get("authorization", "").partition(" ")
    token = credential if scheme.lower() in ("bearer", "token") else (tokens or [""])[0]
    return secrets.compare_digest(token.encode(), settings.api_key.encode())


async def open_link(
    registry: Any,
    session_id: str,
    resume_token: str | None,
    request: SessionRequest,
    new_ok: bool = True,
    trace: ConnectTrace | None = None,
):
    """Place the session and open its link. Returns ``(link, opened_msg)`` or a ``Refusal``.

    ``new_ok=False`` (this replica is behind real time): existing sessions only, a new one gets 1013.
    ``trace``: the connection's span, which gets the steps as events and sends the client's traceparent on.
    """
    secret = await link_secret(registry)
    placed = await registry.place.remote(session_id, new_ok)
    if trace is not None:
        trace.mark("placed", host=str(placed.get("host", "")), ok=bool(placed["ok"]))
    for attempt in range(2):
        if not placed["ok"]:
            return Refusal(placed["code"], placed["reason"])
        try:
            link = await connect(
                f"{placed['address']}/s/{session_id}",
                max_size=LINK_MAX_BYTES,
                compression=None,
                open_timeout=20,  # a busy host may take a while to accept; a dead one fails fast
                ping_interval=None,  # see actors/session/host.py: no keepalive on links
            )
            break
        except (OSError, TimeoutError, ConnectionClosed) as exc:
            log.warning("link to %s failed (%r), refreshing placement", placed.get("host"), exc)
            if attempt == 1:
                return Refusal(Close.INTERNAL, "session host unreachable")
            placed = await registry.refresh.remote(session_id)
    # The host challenges every link with a fresh nonce; the answer proves this replica holds the secret.
    challenge = json.loads(await link.recv())
    if challenge.get("type") != "link.challenge" or not isinstance(challenge.get("nonce"), str):
        await link.close()
        return Refusal(Close.INTERNAL, "session host handshake failed")
    opening = {"type": "link.open", "session_id": session_id, "resume_token": resume_token, **request.to_link()}
    if trace is not None and trace.client_parent:
        opening["traceparent"] = trace.client_parent
    await link.send(link_auth.sign(secret, challenge["nonce"], opening))
    reply = json.loads(await link.recv())
    if reply.get("type") != "link.opened":
        await link.close()
        return Refusal(int(reply.get("code", Close.INTERNAL)), reply.get("reason", "refused"))
    return link, reply


async def session_socket(
    ws: WebSocket, session_id: str, settings: Settings, registry: Any, closes: Any, mode: str | None = None
) -> None:
    """Serve one client connection for its whole life (``mode`` defaults to ``settings.session_mode``)."""
    mode = mode or settings.session_mode
    if SESSION_ID_RE.fullmatch(session_id):
        log_context(session_id=session_id)  # this connection's log lines (cluster/logs.py)
    request = session_request(settings, mode, ws.query_params)
    ambiguous = len(ws.query_params.getlist("resume_token")) > 1
    if not SESSION_ID_RE.fullmatch(session_id) or not authorized(settings, ws) or isinstance(request, str) or ambiguous:
        # Refused before upgrade: the client gets HTTP 403 and no websocket.
        await ws.close(code=Close.POLICY)
        closes.inc(tags={"code": "403"})
        return
    resume = ws.query_params.get("resume_token") or ws.headers.get("x-resume-token")
    lag = replica_lag()
    lag.ensure_started()
    trace = ConnectTrace(ws, session_id, gateway_id())
    try:
        new_ok = not lag.overloaded(settings.overload_lag_ms)
        result = await open_link(registry, session_id, resume, request, new_ok, trace)
    except Exception:
        log.exception("opening session %s failed", session_id)
        result = Refusal(Close.INTERNAL, "session unavailable")
    if isinstance(result, Refusal):
        trace.end(None, (result.code, result.reason), **{"vani.mode": mode})
    else:
        trace.end(
            result[1].get("trace"), **{"vani.mode": mode, "vani.resumed": bool(result[1]["started"].get("resumed"))}
        )
    # The client's timeline starts here: it cannot send audio before the accept reaches it.
    flood = FloodGuard(settings.flood_burst_s, settings.flood_rate, time.monotonic())
    await ws.accept()
    if isinstance(result, Refusal):
        await ws.close(code=result.code, reason=result.reason)
        closes.inc(tags={"code": str(result.code)})
        return
    link, opened = result
    started = opened["started"]
    started["gateway"] = gateway_id()
    await ws.send_text(protocol.dumps(started))
    outcome: dict[str, Any] = {}
    try:
        await _pump(ws, link, opened["next_seq"], settings, dialect_for(mode), flood, outcome)
    finally:  # counted also when Serve cancels this request on the client's disconnect (no close code read)
        closes.inc(tags={"code": str(outcome.get("close", (Close.GOING_AWAY, ""))[0])})


async def _pump(
    ws: WebSocket,
    link: ClientConnection,
    next_seq: int,
    settings: Settings,
    dialect: Dialect,
    flood: FloodGuard,
    outcome: dict[str, Any],
) -> None:
    """Run both directions until one ends; ``outcome["close"]`` says the code/reason given to the client."""
    upstream = asyncio.create_task(_client_to_link(ws, link, next_seq, settings, outcome, dialect, flood))
    downstream = asyncio.create_task(_link_to_client(ws, link, outcome, dialect))
    try:
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        code, reason = outcome.setdefault("close", (Close.NORMAL, ""))
        # Close first, then reap: under Serve's proxy a pending ws.receive() can take long to
        # notice cancellation, and the client must get its close code now, not then.
        if not outcome.get("client_gone"):
            with contextlib.suppress(Exception):
                await ws.close(code=code, reason=reason)
        if outcome.get("end_session"):  # a flood ends the session for good, not just this connection
            with contextlib.suppress(Exception):
                await link.send(protocol.dumps({"type": "close"}))
        with contextlib.suppress(Exception):
            await link.close(Close.GOING_AWAY if outcome.get("client_gone") else Close.NORMAL, "client gone")
    finally:
        for t in (upstream, downstream):
            t.cancel()
        if link.state is not State.CLOSED:
            # Serve (HAProxy / direct ingress) cancels this request as soon as it reads the client's
            # disconnect, often before the close above: the link must still close, or the host keeps the
            # session attached to a connection that is gone (no suspend, no TTL, a resume is a takeover).
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(link.close(Close.GOING_AWAY, "client gone"))
        await asyncio.wait({upstream, downstream}, timeout=5)


async def _client_to_link(
    ws: WebSocket,
    link: ClientConnection,
    seq: int,
    settings: Settings,
    outcome: dict[str, Any],
    dialect: Dialect,
    flood: FloodGuard,
) -> None:
    max_frame = settings.max_frame_bytes
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            outcome["client_gone"] = True
            outcome.setdefault("close", (int(msg.get("code") or Close.NORMAL), "client disconnected"))
            return
        data = msg.get("bytes")
        if data is not None:
            if len(data) > max_frame:
                outcome["close"] = (Close.TOO_BIG, f"frame of {len(data)} bytes exceeds max {max_frame}")
                return
            if len(data) % 2:
                await ws.send_text(
                    dialect.error("odd_length", f"PCM16 frame of {len(data)} bytes is not a whole number of samples")
                )
                continue
            if not data:  # nothing to play, but say so: a client that sends it has a bug
                await ws.send_text(dialect.error("empty_frame", "binary frames must hold at least one PCM16 sample"))
                continue
            if not flood.admit(len(data), time.monotonic()):
                reason = flood.reason()
                with contextlib.suppress(Exception):
                    await ws.send_text(dialect.error("session_failed", reason, close_code=Close.POLICY))
                outcome["close"] = (Close.POLICY, reason)
                outcome["end_session"] = True
                return
            try:
                await link.send(protocol.encode_frame(seq, data))
            except ConnectionClosed:
                await _link_closed(ws, link, outcome)
                return
            seq += 1
            continue
        text = msg.get("text") or ""
        problem = _check_text(text, dialect.client_types)
        if problem:
            await ws.send_text(dialect.error(*problem))
            continue
        try:
            await link.send(text)
        except ConnectionClosed:
            await _link_closed(ws, link, outcome)
            return


def _check_text(text: str, client_types: frozenset[str] = CLIENT_TYPES) -> tuple[str, str] | None:
    """Bounded size, depth and finite numbers (actors/wire/client_json.py), then the route's message types."""
    return client_json.check(text, client_types)


async def _link_to_client(ws: WebSocket, link: ClientConnection, outcome: dict[str, Any], dialect: Dialect) -> None:
    gate = dialect.gate
    try:
        async for message in link:
            if isinstance(message, bytes):
                if gate is None or gate.admit(message):
                    await ws.send_bytes(message)
            else:
                if gate is not None:
                    gate.observe(message)
                await ws.send_text(message)
    except ConnectionClosed:
        pass
    except (WebSocketDisconnect, RuntimeError):
        outcome["client_gone"] = True
        return
    await _link_closed(ws, link, outcome)


async def _link_closed(ws: WebSocket, link: ClientConnection, outcome: dict[str, Any]) -> None:
    """The host closed the link: pass its close code on, or report a crash if it just vanished.

    Both pump directions may see the same end; the first one decides and reports it, once.
    """
    if "close" in outcome:
        return
    rcvd = link.protocol.close_rcvd
    if rcvd is not None and rcvd.code not in (1005, 1006):
        outcome["close"] = (rcvd.code, rcvd.reason)
        return
    outcome["close"] = (Close.INTERNAL, "session host lost")  # before the await: the other pump sees it
    with contextlib.suppress(Exception):
        await ws.send_text(protocol.error("session_lost", "the session's host stopped unexpectedly"))
