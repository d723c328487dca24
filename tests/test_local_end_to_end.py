"""The embedded offline default end to end: real speech in, through the real gateway, real models.

The `/local` app runs what `vani up` runs with no keys: Silero VAD + pocketsphinx partials + Smart Turn +
Whisper (STT, Flux-ordered turn events), the deterministic reply engine (LLM) and Piper (TTS). Audio is
sent at real time, as a microphone would, so the turn ends on the user's silence, not on a watchdog.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from websockets.asyncio.client import connect

from tests.agent_helpers import CLIENT_CHUNK, AgentClient
from tests.local.conftest import TRANSCRIPTS, read_wav
from tests.support.wer import wer

WAV = "booking_espeak.wav"
FIRST_SESSION_S = 180.0  # the first session of the app loads the models, on a shared 2-core box


async def stream_real_time(send, pcm: bytes, tail_silence_s: float, stop: asyncio.Event | None = None) -> None:
    """Send ``pcm`` then silence in 256 ms chunks paced at real time (until ``stop`` is set)."""
    pcm = pcm + bytes(2 * int(16000 * tail_silence_s))
    step = CLIENT_CHUNK / 32000
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for n, i in enumerate(range(0, len(pcm), CLIENT_CHUNK)):
        if stop is not None and stop.is_set():
            return
        await send(pcm[i : i + CLIENT_CHUNK])
        await asyncio.sleep(max(0.0, t0 + (n + 1) * step - loop.time()))


async def test_agent_turn_on_embedded_models(vani_cluster):
    sid = f"loc-{uuid.uuid4().hex[:10]}"
    c = await AgentClient.connect(f"{vani_cluster.url('local')}/v1/sessions/{sid}")
    assert c.first["type"] == "session.started" and c.first["mode"] == "agent"
    done = asyncio.Event()
    sender = asyncio.create_task(stream_real_time(c.ws.send, read_wav(WAV), tail_silence_s=8.0, stop=done))
    try:
        eot = await c.wait_for(lambda e: e.get("type") == "TurnInfo" and e["event"] == "EndOfTurn", FIRST_SESSION_S)
        assert wer(TRANSCRIPTS[WAV], eot["transcript"]) <= 0.25, eot["transcript"]
        # Ended by the turn detector on the user's silence, not by the no-audio watchdog.
        assert not c.of_type("watchdog"), c.of_type("watchdog")
        msg = await c.wait_type("assistant.message", 60.0, turn_id=1)
        done.set()
        assert msg["outcome"] == "done" and not msg["interrupted"]
        assert "booked" in msg["full_text"] and "7 pm" in msg["full_text"], msg["full_text"]
        # The booking is a real tool call, executed once by the session's tool executor.
        calls, results = c.of_type("tool.call", turn_id=1), c.of_type("tool.result", turn_id=1)
        assert [(e["name"], e["arguments"]["party_size"], e["arguments"]["time"]) for e in calls] == [
            ("book_table", 2, "19:00")
        ], calls
        assert [(r["call_id"], r["executions"]) for r in results] == [(calls[0]["call_id"], 1)], results
        booking = json.loads(results[0]["result"])
        assert booking["status"] == "booked" and booking["reference"] in msg["full_text"]
        assert "".join(e["text"] for e in c.of_type("assistant.text", turn_id=1)) == msg["full_text"]
        start = c.of_type("audio.start", turn_id=1)[0]
        rate = start["format"]["sample_rate"]
        assert start["format"]["encoding"] == "linear16"
        assert c.audio[1] > 2 * rate * 2.0, "at least 2 s of synthesized speech"
        report = await c.wait_type("LatencyReport", 30.0, turn_id=1)
        assert report["outcome"] == "done" and report["total_latency"] > 0
        await c.wait_type("conversation", 30.0, to="listening", event="REPLY_DONE")
        states = [(e["from"], e["to"]) for e in c.of_type("conversation")]
        assert states[:5] == [
            ("idle", "listening"),
            ("listening", "transcribing"),
            ("transcribing", "thinking"),
            ("thinking", "speaking"),
            ("speaking", "listening"),
        ], states
        assert c.violations == []
    finally:
        done.set()
        await sender
        await c.close()


async def test_flux_route_on_embedded_models(vani_cluster):
    """`/v2/flux` on the offline STT: Flux's schema, its event order, the real words."""
    sid = f"locflux-{uuid.uuid4().hex[:10]}"
    url = f"{vani_cluster.url('local')}/v2/flux/{sid}?encoding=linear16&sample_rate=16000"
    async with connect(url, open_timeout=60) as ws:
        connected = json.loads(await ws.recv())
        assert connected["type"] == "Connected" and connected["session_id"] == sid
        events: list[dict] = []

        async def read() -> None:
            async for raw in ws:
                ev = json.loads(raw)
                events.append(ev)
                if ev.get("event") == "EndOfTurn":
                    return

        reader = asyncio.create_task(read())
        sender = asyncio.create_task(stream_real_time(ws.send, read_wav(WAV), tail_silence_s=8.0))
        await asyncio.wait_for(reader, FIRST_SESSION_S)
        sender.cancel()
        await ws.send(json.dumps({"type": "CloseStream"}))
    turn = [e["event"] for e in events if e["type"] == "TurnInfo"]
    assert turn[0] == "StartOfTurn" and turn[-1] == "EndOfTurn"
    assert set(turn) <= {"StartOfTurn", "Update", "EagerEndOfTurn", "TurnResumed", "EndOfTurn"}
    seq = [e["sequence_id"] for e in events]
    assert seq == sorted(seq) and len(set(seq)) == len(seq)
    assert wer(TRANSCRIPTS[WAV], events[-1]["transcript"]) <= 0.25, events[-1]["transcript"]
