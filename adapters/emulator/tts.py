"""Emulated Aura-2 TTS: REST (Deepgram ``/v1/speak``, Workers AI ``/ai/run/@cf/deepgram/aura-2-en``) and
the Deepgram speak WebSocket (Speak / Flush / Clear / Close), which Workers AI also serves.

Audio is real (see ``audio.speech_pcm``), sent after ``ttfb_ms`` in ``chunk_ms`` chunks paced at ``rtf``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from vani.adapters.emulator.audio import CONTENT_TYPES, encode, speech_pcm, to_alaw, to_mulaw
from vani.adapters.emulator.control import Conn, Store
from vani.adapters.emulator.faults import UnitCounter, half_close
from vani.adapters.emulator.stream import DROP, LiveStream

VOICES = (
    "amalthea andromeda apollo arcas aries asteria athena atlas aurora callista cora cordelia delia draco "
    "electra harmonia helena hera hermes hyperion iris janus juno jupiter luna mars minerva neptune odysseus "
    "ophelia orion orpheus pandora phoebe pluto saturn thalia theia vesta zeus"
).split()
WS_RATES = (8000, 16000, 24000, 32000, 48000)
FLUSH_LIMIT = 20  # per 60 s (Deepgram docs)
MAX_CHARS = 2000


def _err(status: int, msg: str, cf: bool, retry_after: float | None = None) -> Response:
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    if cf:
        return JSONResponse(
            {"errors": [{"code": 5000 + status, "message": msg}], "success": False, "result": {}},
            status_code=status,
            headers=headers,
        )
    headers["dg-error"] = msg
    return JSONResponse(
        {
            "err_code": "INVALID_AUTH" if status == 401 else "Bad Request",
            "err_msg": msg,
            "request_id": str(uuid.uuid4()),
        },
        status_code=status,
        headers=headers,
    )


def _auth_ok(headers: Any, cf: bool) -> bool:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return bool(token) and scheme in (("Bearer",) if cf else ("Token", "Bearer"))


def _voice(model: str | None, speaker: str | None) -> str | None:
    if speaker:
        return speaker
    parts = (model or "aura-2-luna-en").split("-")  # aura-2-<voice>-<lang>
    return parts[2] if len(parts) == 4 and parts[:2] == ["aura", "2"] else None


async def speak_rest(request: Request, store: Store, cf: bool) -> Response:
    try:
        conn = store.conn("tts", request.headers, request.query_params)
    except ValueError as e:
        return _err(400, f"emulator: {e}", cf)
    if conn.fault.slow_start_ms:
        await asyncio.sleep(conn.fault.slow_start_ms / 1000)
    if not _auth_ok(request.headers, cf):
        return _err(401, "Invalid credentials.", cf)
    if conn.fault.status:
        conn.script.record("tts", "rejected", status=conn.fault.status)
        return _err(conn.fault.status, "injected fault", cf, conn.fault.retry_after)
    try:
        body = json.loads(await request.body())
    except ValueError:
        return _err(400, "body is not valid JSON", cf)
    params: dict[str, Any] = body if cf else dict(request.query_params)
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        return _err(400, "text is required", cf)
    if len(text) > MAX_CHARS:
        return _err(400, f"text is longer than {MAX_CHARS} characters", cf)
    voice = _voice(params.get("model"), params.get("speaker"))
    if voice not in VOICES:
        return _err(400, f"unknown speaker/model {params.get('speaker') or params.get('model')}", cf)
    encoding = str(params.get("encoding") or "mp3")
    default_container = "wav" if encoding in ("linear16", "mulaw", "alaw") and not cf else "none"
    container = str(params.get("container") or default_container)
    rate = int(params.get("sample_rate") or 24000)
    bit_rate = int(params["bit_rate"]) if params.get("bit_rate") else None
    if conn.fault.mp3_quirk:
        encoding, container = "mp3", "none"
    try:
        audio = encode(speech_pcm(text, rate), rate, encoding, container, bit_rate)
    except ValueError as e:
        return _err(400, str(e), cf)
    conn.script.record("tts", "request", chars=len(text), encoding=encoding, voice=voice)
    headers = {}
    if not cf:
        headers = {
            "x-dg-request-id": str(uuid.uuid4()),
            "x-dg-model-name": f"aura-2-{voice}-en",
            "x-dg-characters": str(len(text)),
        }
    duration_s = len(speech_pcm(text, rate)) / (2 * rate)
    return LiveStream(
        _paced(conn, audio, duration_s),
        CONTENT_TYPES[(encoding, container)],
        headers,
        lambda: conn.script.record("tts", "disconnect"),
    )


async def _paced(conn: Conn, audio: bytes, duration_s: float) -> AsyncIterator[bytes]:
    lat, counter = conn.latency, UnitCounter(conn.fault)
    n = max(1, round(duration_s * 1000 / lat.chunk_ms))
    size = max(64, -(-len(audio) // n))
    await asyncio.sleep(lat.ttfb_ms / 1000)
    for i in range(0, len(audio), size):
        action = counter.action()
        if action == "drop":
            yield DROP
            return
        if action == "stall":
            await counter.stall()
        counter.sent += 1
        yield audio[i : i + size]
        await asyncio.sleep(lat.chunk_ms * lat.rtf / 1000)


def _ws_pcm(text: str, rate: int, encoding: str) -> bytes:
    pcm = speech_pcm(text, rate)
    return pcm if encoding == "linear16" else to_mulaw(pcm) if encoding == "mulaw" else to_alaw(pcm)


async def speak_ws(ws: WebSocket, store: Store, cf: bool) -> None:
    """One speak WebSocket: Metadata first, then audio per Flush, Flushed / Cleared replies."""
    try:
        conn = store.conn("tts_ws", ws.headers, ws.query_params)
    except ValueError as e:
        await ws.send_denial_response(_err(400, f"emulator: {e}", cf))
        return
    if conn.fault.slow_start_ms:
        await asyncio.sleep(conn.fault.slow_start_ms / 1000)
    q = ws.query_params
    encoding, rate = q.get("encoding", "linear16"), int(q.get("sample_rate") or 24000)
    voice = _voice(q.get("model"), q.get("speaker"))
    problem = None
    if not _auth_ok(ws.headers, cf):
        problem = (401, "Invalid credentials.")
    elif encoding not in ("linear16", "mulaw", "alaw") or rate not in WS_RATES or voice not in VOICES:
        problem = (400, "unsupported encoding, sample_rate or model")
    elif conn.fault.status:
        problem = (conn.fault.status, "injected fault")
    if problem:
        await ws.send_denial_response(_err(problem[0], problem[1], cf))
        return
    await ws.accept()
    session = _SpeakSession(ws, conn, encoding, rate)
    conn.script.record("tts_ws", "connect")
    await session.send_json(
        {
            "type": "Metadata",
            "request_id": str(uuid.uuid4()),
            "model_name": f"aura-2-{voice}-en",
            "model_version": "emulated",
            "model_uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, voice)),
        }
    )
    sender = asyncio.create_task(session.sender())
    try:
        await session.receiver()
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


class _SpeakSession:
    def __init__(self, ws: WebSocket, conn: Conn, encoding: str, rate: int) -> None:
        self.ws, self.conn, self.encoding, self.rate = ws, conn, encoding, rate
        self.text: list[str] = []
        self.flushes = 0
        self.flush_times: collections.deque[float] = collections.deque()
        self.jobs: asyncio.Queue[tuple[int, int, bytes]] = asyncio.Queue()
        self.generation = 0  # bumped by Clear: audio of older generations is not sent
        self.counter = UnitCounter(conn.fault)
        self.lock = asyncio.Lock()
        self.idle = asyncio.Event()
        self.idle.set()

    async def send_json(self, obj: dict[str, Any]) -> None:
        async with self.lock:
            await self.ws.send_text(json.dumps(obj))

    async def receiver(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("text") is None:
                await self.ws.close(1003, "MESSAGE-0000")
                return
            try:
                data = json.loads(msg["text"])
                kind = data["type"]
            except (ValueError, KeyError, TypeError):
                await self.ws.close(1008, "DATA-0000")
                return
            if kind == "Speak":
                self.text.append(str(data.get("text", "")))
            elif kind == "Flush":
                await self._flush()
            elif kind == "Clear":
                self.generation += 1
                self.text.clear()
                while not self.jobs.empty():
                    self.jobs.get_nowait()
                self.conn.script.record("tts_ws", "clear")
                await self.send_json({"type": "Cleared", "sequence_id": self.flushes})
            elif kind == "Close":
                await self._flush()
                await self.jobs.join()
                await self.ws.close(1000)
                return
            else:
                await self.ws.close(1003, "MESSAGE-0000")
                return

    async def _flush(self) -> None:
        now = time.monotonic()
        while self.flush_times and now - self.flush_times[0] > 60:
            self.flush_times.popleft()
        if len(self.flush_times) >= FLUSH_LIMIT:
            await self.send_json(
                {
                    "type": "Warning",
                    "code": "FLUSH_LIMIT",
                    "description": "Flush limit of 20 per 60 seconds exceeded; flush ignored",
                }
            )
            return
        self.flush_times.append(now)
        text = " ".join(t.strip() for t in self.text if t.strip())
        self.text.clear()
        seq = self.flushes
        self.flushes += 1
        await self.jobs.put((self.generation, seq, _ws_pcm(text, self.rate, self.encoding) if text else b""))

    async def sender(self) -> None:
        lat = self.conn.latency
        chunk = max(2, int(self.rate * lat.chunk_ms / 1000) * (2 if self.encoding == "linear16" else 1))
        while True:
            gen, seq, audio = await self.jobs.get()
            try:
                if audio:
                    await asyncio.sleep(lat.ttfb_ms / 1000)
                for i in range(0, len(audio), chunk):
                    if gen != self.generation:
                        break  # Cleared: stop within one chunk
                    action = self.counter.action()
                    if action == "drop":
                        half_close(self.ws._receive)  # the receiver keeps reading until the client leaves
                        return
                    if action == "stall":
                        await self.counter.stall()
                    if action == "malformed":
                        async with self.lock:
                            await self.ws.send_text('{"type": "Flushed", ')
                    self.counter.sent += 1
                    async with self.lock:
                        await self.ws.send_bytes(audio[i : i + chunk])
                    await asyncio.sleep(lat.chunk_ms * lat.rtf / 1000)
                if gen == self.generation:
                    await self.send_json({"type": "Flushed", "sequence_id": seq})
            finally:
                self.jobs.task_done()
