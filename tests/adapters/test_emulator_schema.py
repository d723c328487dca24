"""The emulators' messages match the schemas and real examples of the providers' docs (Deepgram, OpenAI, Workers AI)."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest
from websockets.asyncio.client import connect

from tests.adapters.audio import chunks, turns

# The real EndOfTurn example from the reference (DG-docs /docs/flux/force-end-turn.md).
REAL_EOT = json.loads("""{"type":"TurnInfo","request_id":"ad12514a-0d38-4f7e-8fba-cce10d8f174c","sequence_id":42,
"event":"EndOfTurn","turn_index":3,"audio_window_start":4.2,"audio_window_end":6.8,
"transcript":"I need to cancel my subscription","words":[{"word":"I","confidence":0.95}],
"end_of_turn_confidence":0.35,"trigger":"manual"}""")
WORD = {
    "type": "object",
    "required": ["word", "confidence"],
    "properties": {
        "word": {"type": "string"},
        "confidence": {"type": "number"},
        "start": {"type": "number"},
        "end": {"type": "number"},
    },
}
TURN_INFO = {
    "type": "object",
    "required": [
        "type",
        "request_id",
        "sequence_id",
        "event",
        "turn_index",
        "audio_window_start",
        "audio_window_end",
        "transcript",
        "words",
        "end_of_turn_confidence",
    ],
    "properties": {
        "type": {"const": "TurnInfo"},
        "request_id": {"type": "string"},
        "sequence_id": {"type": "integer"},
        "event": {"enum": ["Update", "StartOfTurn", "EagerEndOfTurn", "TurnResumed", "EndOfTurn"]},
        "turn_index": {"type": "integer"},
        "audio_window_start": {"type": "number"},
        "audio_window_end": {"type": "number"},
        "transcript": {"type": "string"},
        "words": {"type": "array", "items": WORD},
        "end_of_turn_confidence": {"type": "number"},
        "trigger": {"enum": ["model", "manual", "timeout"]},
    },
}
CONNECTED = {
    "type": "object",
    "required": ["type", "request_id", "sequence_id"],
    "properties": {"type": {"const": "Connected"}, "sequence_id": {"const": 0}},
}
CHUNK = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices"],
    "properties": {
        "object": {"const": "chat.completion.chunk"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "delta", "finish_reason"],
                "properties": {"finish_reason": {"enum": [None, "stop", "length", "tool_calls", "content_filter"]}},
            },
        },
    },
}


def test_reference_example_matches_schema():
    jsonschema.validate(REAL_EOT, TURN_INFO)


async def _flux_frames(emulator: str, path: str, headers: dict, query: str) -> list[dict]:
    url = emulator.replace("http", "ws") + path + "?" + query
    frames = []
    async with connect(url, additional_headers=headers) as ws:
        for c in chunks(turns((0.8, 0.6))):
            await ws.send(c)
        await ws.send(json.dumps({"type": "Configure", "thresholds": {"eot_threshold": 0.8}}))
        await ws.send(json.dumps({"type": "ForceEndTurn"}))
        await ws.send(json.dumps({"type": "CloseStream"}))
        try:
            async for raw in ws:
                frames.append(json.loads(raw))
        except Exception:
            pass  # CloseStream: the server drops the socket without a close frame
    return frames


@pytest.mark.parametrize(
    ("path", "auth", "query"),
    [
        ("/client/v4/accounts/a/ai/run/@cf/deepgram/flux", "Bearer t", "encoding=linear16&sample_rate=16000"),
        ("/v2/listen", "Token k", "model=flux-general-en&encoding=linear16&sample_rate=16000"),
    ],
)
async def test_flux_frames_match_schema(emulator, path, auth, query):
    frames = await _flux_frames(emulator, path, {"Authorization": auth}, query)
    jsonschema.validate(frames[0], CONNECTED)
    assert [f["sequence_id"] for f in frames] == list(range(len(frames)))  # one counter for all types
    infos = [f for f in frames if f["type"] == "TurnInfo"]
    for f in infos:
        jsonschema.validate(f, TURN_INFO)
        assert ("trigger" in f) == (f["event"] == "EndOfTurn")
    eot = next(f for f in infos if f["event"] == "EndOfTurn")
    assert set(REAL_EOT) <= set(eot)  # at least every field of the real example
    kinds = [f["type"] for f in frames]
    assert "ConfigureSuccess" in kinds and "Warning" in kinds  # ForceEndTurn with no active turn
    warning = next(f for f in frames if f["type"] == "Warning")
    assert warning["code"] == "FORCE_END_TURN_NO_ACTIVE_TURN"


async def test_flux_handshake_error_shapes(emulator):
    ws = emulator.replace("http", "ws")
    with pytest.raises(Exception) as err:
        async with connect(
            ws + "/client/v4/accounts/a/ai/run/@cf/deepgram/flux?encoding=mulaw&sample_rate=8000",
            additional_headers={"Authorization": "Bearer t"},
        ):
            pass
    resp = err.value.response
    assert resp.status_code == 400
    body = json.loads(resp.body)
    assert body["success"] is False and body["result"] == {} and body["errors"][0]["message"]
    with pytest.raises(Exception) as err:
        async with connect(ws + "/v2/listen?model=flux-general-en&encoding=linear16&sample_rate=16000"):
            pass
    assert err.value.response.status_code == 401


async def test_openai_sse_chunks_match_schema(emulator):
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with httpx.AsyncClient() as c:
        r = await c.post(emulator + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    objs = [json.loads(e[6:]) for e in events[:-1]]
    for o in objs[:-1]:
        jsonschema.validate(o, CHUNK)
    assert objs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert objs[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert objs[-1]["choices"] == [] and set(objs[-1]["usage"]) == {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
    }
    async with httpx.AsyncClient() as c:
        r = await c.post(emulator + "/v1/chat/completions", json=body)
    assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "code"}


async def test_workers_ai_native_sse_and_envelope(emulator):
    url = emulator + "/client/v4/accounts/a/ai/run/@cf/meta/llama-3.1-8b-instruct-fast"
    msgs = [{"role": "user", "content": "hi"}]
    async with httpx.AsyncClient() as c:
        r = await c.post(url, json={"messages": msgs, "stream": True}, headers={"Authorization": "Bearer t"})
        events = [e for e in r.text.split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        frames = [json.loads(e[6:]) for e in events[:-1]]
        assert all(isinstance(f["response"], str) for f in frames) and "usage" in frames[-1]
        r = await c.post(url, json={"messages": msgs}, headers={"Authorization": "Bearer t"})
        env = r.json()
        assert env["success"] is True and env["errors"] == [] and isinstance(env["result"]["response"], str)
        r = await c.post(url, json={}, headers={"Authorization": "Bearer t"})
        assert r.status_code == 400 and r.json()["success"] is False


async def test_speak_ws_messages(emulator):
    url = emulator.replace("http", "ws") + "/v1/speak?model=aura-2-luna-en&encoding=linear16&sample_rate=24000"
    async with connect(url, additional_headers={"Authorization": "Token k"}) as ws:
        meta = json.loads(await ws.recv())
        assert meta["type"] == "Metadata" and {"request_id", "model_name", "model_version", "model_uuid"} <= set(meta)
        await ws.send(json.dumps({"type": "Speak", "text": "Hi."}))
        await ws.send(json.dumps({"type": "Flush"}))
        audio, msg = 0, None
        while True:
            m = await ws.recv()
            if isinstance(m, bytes):
                audio += len(m)
            else:
                msg = json.loads(m)
                break
        assert audio > 0 and msg == {"type": "Flushed", "sequence_id": 0}
        await ws.send(json.dumps({"type": "Clear"}))
        assert json.loads(await ws.recv()) == {"type": "Cleared", "sequence_id": 1}
        await ws.send(json.dumps({"type": "Close"}))
        await ws.wait_closed()
        assert ws.close_code == 1000


async def test_speak_rest_headers(emulator):
    async with httpx.AsyncClient() as c:
        r = await c.post(
            emulator + "/v1/speak?model=aura-2-thalia-en", json={"text": "Hello"}, headers={"Authorization": "Token k"}
        )
    assert r.headers["content-type"] == "audio/mpeg" and r.headers["x-dg-model-name"] == "aura-2-thalia-en"
    assert r.headers["x-dg-characters"] == "5" and "x-dg-request-id" in r.headers
