"""Emulated Flux (Deepgram ``/v2/listen`` and Workers AI ``@cf/deepgram/flux``) over WebSocket.

Turn timing comes from the audio itself: 20 ms frames above ``SPEECH_DBFS`` are speech. End-of-turn
confidence grows with trailing silence, ``conf = 0.7 * silence / eot_ms`` (capped at 0.99), so with the
default ``eot_threshold`` 0.7 EndOfTurn fires after ``eot_ms`` of silence, and ``EagerEndOfTurn`` when
``conf`` reaches ``eager_eot_threshold``. ``eot_timeout_ms`` of silence ends a turn whatever the threshold.
Transcripts come from the session's script, one per turn. Event ordering follows Flux's state rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from vani.adapters.emulator.audio import speech_frames
from vani.adapters.emulator.control import Conn, Store
from vani.adapters.emulator.faults import UnitCounter, drain, half_close

FRAME_S = 0.02
START_FRAMES = 3  # 60 ms of speech starts a turn (ignores clicks)
DG_MODELS = ("flux-general-en", "flux-general-multi")
RANGES = {"eot_threshold": (0.5, 1.0), "eager_eot_threshold": (0.3, 0.9), "eot_timeout_ms": (500, 60000)}


@dataclass
class Thresholds:
    eot_threshold: float = 0.7
    eager_eot_threshold: float | None = None
    eot_timeout_ms: int = 5000
    keyterms: list[str] = field(default_factory=list)


def check_thresholds(values: dict[str, Any]) -> str | None:
    """An error message if a threshold is out of Flux's documented range."""
    for name, (lo, hi) in RANGES.items():
        v = values.get(name)
        if v is not None and not lo <= float(v) <= hi:
            return f"{name} must be between {lo} and {hi}"
    return None


class FluxEngine:
    """Audio in, ``TurnInfo`` bodies out. Pure: no I/O, so it is easy to test and cheap per session."""

    def __init__(self, conn: Conn, sample_rate: int, th: Thresholds) -> None:
        self.conn, self.rate, self.th = conn, sample_rate, th
        self.frame_bytes = int(sample_rate * FRAME_S) * 2
        self.pending = b""
        self.frames = 0  # audio clock, in frames
        self.state = "idle"  # idle | ongoing | awaiting (after EagerEndOfTurn)
        self.turn_index = 0
        self.turn_start = 0.0
        self.speech_run = 0
        self.speech_frames = 0
        self.silence_frames = 0
        self.last_emit = 0.0
        self.shown_words = 0

    @property
    def now(self) -> float:
        return round(self.frames * FRAME_S, 3)

    def feed(self, pcm: bytes) -> list[dict[str, Any]]:
        data = self.pending + pcm
        n = len(data) // self.frame_bytes
        self.pending = data[n * self.frame_bytes :]
        if n == 0:
            return []
        out: list[dict[str, Any]] = []
        for speech in speech_frames(data[: n * self.frame_bytes], self.frame_bytes):
            self.frames += 1
            out.extend(self._frame(speech))
        return out

    def _frame(self, speech: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        lat = self.conn.latency
        if speech:
            self.speech_run += 1
            self.silence_frames = 0
            if self.state == "idle" and self.speech_run >= START_FRAMES:
                self.state, self.turn_start = "ongoing", round(self.now - START_FRAMES * FRAME_S, 3)
                self.speech_frames, self.shown_words = START_FRAMES, 0
                out.append(self._info("StartOfTurn", words=0))
            elif self.state == "awaiting":
                self.state = "ongoing"
                out.append(self._info("TurnResumed", words=self.shown_words))
            elif self.state == "ongoing":
                self.speech_frames += 1
        else:
            self.speech_run = 0
            if self.state != "idle":
                self.silence_frames += 1
                silence_ms = self.silence_frames * FRAME_S * 1000
                conf = self._confidence()
                eager = self.th.eager_eot_threshold
                if conf >= self.th.eot_threshold:
                    return [self._end("model")]
                if silence_ms >= self.th.eot_timeout_ms:
                    return [self._end("timeout")]
                if self.state == "ongoing" and eager is not None and conf >= eager:
                    self.state = "awaiting"
                    out.append(self._info("EagerEndOfTurn", words=None))
        if self.state != "idle" and not out and (self.now - self.last_emit) * 1000 >= lat.update_ms - 1e-6:
            out.append(self._info("Update", words=self._words_heard()))
        return out

    def _confidence(self) -> float:
        silence_ms = self.silence_frames * FRAME_S * 1000
        return round(min(0.99, 0.7 * silence_ms / max(self.conn.latency.eot_ms, 1.0)), 3)

    def _words_heard(self) -> int:
        # Reveal about one word per 300 ms of speech, never going backwards.
        total = len(self._transcript().split())
        self.shown_words = max(self.shown_words, min(total, int(self.speech_frames * FRAME_S / 0.3)))
        return self.shown_words

    def _transcript(self) -> str:
        return self.conn.script.transcript(self.conn.script.turns_done)

    def _info(self, event: str, words: int | None) -> dict[str, Any]:
        """A TurnInfo body; ``words=None`` means the full transcript (Eager/EndOfTurn)."""
        all_words = self._transcript().split()
        shown = all_words if words is None else all_words[:words]
        # Words cover the speech, not the trailing silence: the last word ends where the user stopped,
        # so a client's "end of speech -> EndOfTurn" (stt_latency) sees the configured eot_ms.
        speech_end = self.now - self.silence_frames * FRAME_S
        span = max(speech_end - self.turn_start, 0.02) / max(len(all_words), 1)
        self.last_emit = self.now
        return {
            "type": "TurnInfo",
            "event": event,
            "turn_index": self.turn_index,
            "audio_window_start": self.turn_start,
            "audio_window_end": self.now,
            "transcript": " ".join(shown),
            "words": [
                {
                    "word": w,
                    "confidence": round(0.9 + 0.01 * (i % 9), 2),
                    "start": round(self.turn_start + i * span, 3),
                    "end": round(self.turn_start + (i + 1) * span, 3),
                }
                for i, w in enumerate(shown)
            ],
            "end_of_turn_confidence": self._confidence() if event != "StartOfTurn" else 0.0,
        }

    def _end(self, trigger: str) -> dict[str, Any]:
        msg = self._info("EndOfTurn", words=None)
        msg["trigger"] = trigger
        self.turn_index += 1
        self.state, self.silence_frames, self.speech_run = "idle", 0, 0
        return msg

    def force_end(self) -> dict[str, Any]:
        if self.state == "idle":
            return {
                "type": "Warning",
                "code": "FORCE_END_TURN_NO_ACTIVE_TURN",
                "description": "ForceEndTurn received with no active turn",
            }
        return self._end("manual")

    def flush(self) -> list[dict[str, Any]]:
        """CloseStream: a last Update for what was heard; never an EndOfTurn."""
        if self.state != "idle" and self.now > self.last_emit:
            return [self._info("Update", words=self._words_heard())]
        return []


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
