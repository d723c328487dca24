"""Emulated Flux (Deepgram ``/v2/listen`` and Workers AI ``@cf/deepgram/flux``) over WebSocket.

One connection: the handshake checks (auth, model, encoding, thresholds) with each service's error
shape, control frames (``Configure``, ``ForceEndTurn``, ``CloseStream``) and framing with the
connection's injected fault. Turn detection itself is ``flux_engine.FluxEngine``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from vani.adapters.emulator.control import Conn, Store
from vani.adapters.emulator.faults import UnitCounter, drain, half_close
from vani.adapters.emulator.flux_engine import FluxEngine, Thresholds, check_thresholds

DG_MODELS = ("flux-general-en", "flux-general-multi")


def _deny(ws: WebSocket, status: int, message: str, cf: bool) -> Any:
    body: dict[str, Any]
    if cf:
        body = {"errors": [{"code": 10000 + status, "message": message}], "success": False, "result": {}}
    else:
        body = {"err_code": "INVALID_AUTH" if status == 401 else "Bad Request", "err_msg": message}
    headers = {} if cf else {"dg-error": message}
    return ws.send_denial_response(JSONResponse(body, status_code=status, headers=headers))


def _handshake_error(ws: WebSocket, cf: bool) -> tuple[int, str] | None:
    auth = ws.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if not token or scheme not in (("Bearer",) if cf else ("Token", "Bearer")):
        return 401, "Invalid credentials."
    q = ws.query_params
    if not cf and q.get("model") not in DG_MODELS:
        return 400, f"model must be one of {', '.join(DG_MODELS)}"
    if cf and q.get("encoding") != "linear16":
        return 400, "encoding: must be equal to one of the allowed values (linear16)"
    if q.get("encoding", "linear16") != "linear16":
        return 400, "emulator supports encoding=linear16 only"
    if not q.get("sample_rate", "").isdigit():
        return 400, "sample_rate is required for raw audio"
    return (400, err) if (err := check_thresholds(dict(q))) else None


async def serve(ws: WebSocket, store: Store, cf: bool) -> None:
    """One Flux WebSocket connection."""
    try:
        conn = store.conn("flux", ws.headers, ws.query_params)
    except ValueError as e:
        await _deny(ws, 400, f"emulator: {e}", cf)
        return
    if conn.fault.slow_start_ms:
        await asyncio.sleep(conn.fault.slow_start_ms / 1000)
    bad = _handshake_error(ws, cf) or ((conn.fault.status, "injected fault") if conn.fault.status else None)
    if bad:
        await _deny(ws, bad[0], bad[1], cf)
        return
    q = ws.query_params
    th = Thresholds(
        eot_threshold=float(q.get("eot_threshold", 0.7)),
        eager_eot_threshold=float(q["eager_eot_threshold"]) if q.get("eager_eot_threshold") else None,
        eot_timeout_ms=int(q.get("eot_timeout_ms", 5000)),
        keyterms=q.getlist("keyterm"),
    )
    await ws.accept()
    out = _Outbox(ws, conn, cf)
    engine = FluxEngine(conn, int(q["sample_rate"]), th)
    conn.script.record("flux", "connect")
    dropper = None
    if conn.fault.drop_after_ms is not None:
        dropper = asyncio.create_task(_drop_later(out, conn.fault.drop_after_ms / 1000))
    received = 0
    try:
        await out.send({"type": "Connected"}, unit=False)
        if conn.fault.unknown:
            await out.send({"type": "SomethingNew", "detail": "clients must ignore unknown types"}, unit=False)
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("bytes") is not None:
                received += len(msg["bytes"])
                for m in engine.feed(msg["bytes"]):
                    await out.send(m)
            elif msg.get("text") is not None:
                if await _control(msg["text"], engine, out):
                    return
    except _Dropped:
        await drain(ws)
        return
    finally:
        conn.script.record("flux", "closed", audio_bytes=received, audio_s=engine.now)
        if dropper:
            dropper.cancel()


async def _control(text: str, engine: FluxEngine, out: _Outbox) -> bool:
    """Handle one JSON control frame; True when the connection is over."""
    try:
        data = json.loads(text)
        kind = data["type"]
    except (ValueError, KeyError, TypeError):
        await out.fatal("UNPARSABLE_CLIENT_MESSAGE", "client message is not valid JSON with a type")
        return True
    if kind == "CloseStream":
        for m in engine.flush():
            await out.send(m, unit=False)
        half_close(out.ws._receive)  # Flux closes without a close frame
        await drain(out.ws)
        return True
    if kind == "ForceEndTurn":
        await out.send(engine.force_end())
    elif kind == "Configure":
        th = data.get("thresholds") or {}
        err = check_thresholds(th)
        if err:
            await out.send({"type": "ConfigureFailure", "code": "INVALID_THRESHOLDS", "description": err})
            return False
        if th.get("eot_threshold") is not None:
            engine.th.eot_threshold = float(th["eot_threshold"])
        if th.get("eager_eot_threshold") is not None:
            engine.th.eager_eot_threshold = float(th["eager_eot_threshold"])
        if th.get("eot_timeout_ms") is not None:
            engine.th.eot_timeout_ms = int(th["eot_timeout_ms"])
        if data.get("keyterms") is not None:
            engine.th.keyterms = list(data["keyterms"])
        thresholds = {"eot_threshold": engine.th.eot_threshold, "eot_timeout_ms": engine.th.eot_timeout_ms}
        if engine.th.eager_eot_threshold is not None:
            thresholds["eager_eot_threshold"] = engine.th.eager_eot_threshold
        await out.send({"type": "ConfigureSuccess", "thresholds": thresholds, "keyterms": engine.th.keyterms})
    else:
        await out.send({"type": "Warning", "code": "UNKNOWN_MESSAGE_TYPE", "description": f"ignored {kind}"})
    return False


class _Dropped(Exception):
    pass


class _Outbox:
    """Stamps request_id / sequence_id on every frame and applies the connection's fault."""

    def __init__(self, ws: WebSocket, conn: Conn, cf: bool) -> None:
        self.ws, self.conn, self.cf = ws, conn, cf
        self.request_id = str(uuid.uuid4())
        self.seq = 0
        self.counter = UnitCounter(conn.fault)
        self.dropped = False

    def drop(self) -> None:
        self.dropped = True
        half_close(self.ws._receive)

    async def send(self, body: dict[str, Any], unit: bool = True) -> None:
        if self.dropped:
            raise _Dropped
        if unit:
            action = self.counter.action()
            if action == "drop":
                self.drop()
                raise _Dropped
            if action == "error":
                await self.fatal("INTERNAL_SERVER_ERROR", "injected fault")
                raise _Dropped
            if action == "stall":
                await self.counter.stall()
            if action == "malformed":
                await self.ws.send_text('{"type":"TurnInfo","event":')
            self.counter.sent += 1
        msg = {"type": body.pop("type"), "request_id": self.request_id, "sequence_id": self.seq, **body}
        if msg["type"] == "TurnInfo" and self.conn.fault.no_type:
            del msg["type"]
        if msg.get("type") == "TurnInfo" and self.conn.fault.unknown:
            msg["future_field"] = {"ignored": True}
        self.seq += 1
        await self.ws.send_text(json.dumps(msg))
        if body.get("event") == "EndOfTurn":  # the script's cursor moves only once the client was told
            self.conn.script.turns_done += 1
            self.conn.script.record("flux", "eot", transcript=body["transcript"], trigger=body.get("trigger"))

    async def fatal(self, code: str, description: str) -> None:
        err = {"type": "Error", "sequence_id": self.seq, "code": code, "description": description}
        self.seq += 1
        with contextlib.suppress(Exception):
            await self.ws.send_text(json.dumps(err))
            await self.ws.close(1011, code[:100])


async def _drop_later(out: _Outbox, delay: float) -> None:
    await asyncio.sleep(delay)
    out.drop()
