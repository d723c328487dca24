"""Deepgram's own Python SDK (``deepgram-sdk`` 7.x), unchanged, with its base URL set to vani.

The SDK's Flux client always connects to ``{base}/v2/listen?model=...`` with ``Authorization: Token <key>``
(and an ``x-deepgram-session-id`` header of its own, which vani ignores). vani serves that path; the session
id comes from ``?session_id=`` / ``X-Vani-Session`` when given, else a fresh one announced in ``Connected``.
The ``agent`` app's STT is the provider emulator; the audio is a real recording (tests/data).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
import wave
from pathlib import Path
from typing import Any

import pytest
from deepgram import AsyncDeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.core.events import EventType
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v2.types import ListenV2Connected, ListenV2TurnInfo
from websockets.asyncio.client import connect

from tests.adapters.audio import chunks, silence
from tests.agent_helpers import emulator_log, script
from tests.conftest import STRICT_KEY
from vani.cluster.config import SESSION_ID_PATTERN

DATA = Path(__file__).parent / "data"
WORDS = "he was not an ill disposed young man"  # tests/data/librivox_0880.wav


def sid() -> str:
    return f"sdk-{uuid.uuid4().hex[:10]}"


def recording(name: str = "librivox_0880.wav") -> bytes:
    with wave.open(str(DATA / name)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        return w.readframes(w.getnframes())


def sdk_client(cluster: Any, app: str = "agent", path: str = "", **kw: Any) -> AsyncDeepgramClient:
    """The SDK pointed at vani: only its environment (base URLs) changes."""
    ws, http = cluster.url(app) + path, cluster.http_url(app) + path
    env = DeepgramClientEnvironment(base=http, production=ws, agent=ws, agent_rest=http)
    kw.setdefault("api_key", "any-key")  # the agent app has no API key: any Token is accepted
    return AsyncDeepgramClient(environment=env, **kw)


FLUX_PARAMS: dict[str, Any] = dict(model="flux-general-en", encoding="linear16", sample_rate=16000)


class Listener:
    """Runs the SDK's own ``start_listening`` loop and records what it emits."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.messages, self.errors = conn, [], []
        self.closed, self._new = asyncio.Event(), asyncio.Event()
        conn.on(EventType.MESSAGE, self._on_message)
        conn.on(EventType.ERROR, self.errors.append)
        conn.on(EventType.CLOSE, lambda _: self.closed.set())
        self.task = asyncio.get_running_loop().create_task(conn.start_listening())

    def _on_message(self, msg: Any) -> None:
        self.messages.append(msg)
        self._new.set()

    async def first(self, pred: Any, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages if pred(m)]
            if found:
                return found[0]
            self._new.clear()
            await asyncio.wait_for(self._new.wait(), max(0.01, deadline - time.monotonic()))

    def turn_infos(self) -> list[ListenV2TurnInfo]:
        return [m for m in self.messages if isinstance(m, ListenV2TurnInfo)]


async def stream(conn: Any, pcm: bytes, chunk_s: float = 0.08, speed: float = 2.0) -> None:
    """Send ``pcm`` in ``chunk_s`` chunks at ``speed`` x real time (a file streamed a little fast)."""
    t0 = time.monotonic()
    for k, piece in enumerate(chunks(pcm, int(chunk_s * 32000))):
        await asyncio.sleep(max(0.0, t0 + k * chunk_s / speed - time.monotonic()))
        await conn.send_media(piece)


async def test_sdk_streams_a_recording_on_v2_listen(vani_cluster, provider_emulator):
    s = sid()
    await script(provider_emulator, s, transcripts=[WORDS])
    audio = recording() + silence(1.0)
    client = sdk_client(vani_cluster)
    params = dict(
        FLUX_PARAMS,
        eot_threshold=0.7,
        eot_timeout_ms=5000,
        keyterm=["Dashwood"],
        mip_opt_out=True,
        tag="sdk-test",
        language_hint=["en"],
        numerals=True,
    )
    options = {"additional_query_parameters": {"session_id": s}}
    async with client.listen.v2.connect(**params, request_options=options) as conn:
        lis = Listener(conn)
        connected = await lis.first(lambda m: isinstance(m, ListenV2Connected))
        assert connected.sequence_id == 0 and connected.session_id == s
        await stream(conn, audio)
        end = await lis.first(lambda m: isinstance(m, ListenV2TurnInfo) and m.event == "EndOfTurn")
        await conn.send_close_stream()
        await asyncio.wait_for(lis.closed.wait(), 20)
        await lis.task
    assert lis.errors == []  # the SDK saw a clean close (1000), no exception
    assert end.transcript == WORDS and end.trigger == "model" and end.turn_index == 0
    assert end.words and end.words[-1].end <= len(recording()) / 32000
    events = [m.event for m in lis.turn_infos()]
    assert events[0] == "StartOfTurn" and "Update" in events and events.count("EndOfTurn") == 1
    seqs = [m.sequence_id for m in lis.messages]
    assert seqs == list(range(len(seqs)))  # every message parsed by the SDK, numbered without gaps
    closed = [e for e in await emulator_log(provider_emulator, s) if e["event"] == "closed"]
    assert closed and closed[-1]["audio_bytes"] >= len(audio)  # every byte reached the STT


async def test_sdk_fresh_session_id_and_resume(vani_cluster, provider_emulator):
    """No session id given: vani picks one, announces it with its resume token, and it can be resumed."""
    client = sdk_client(vani_cluster)
    async with client.listen.v2.connect(**FLUX_PARAMS) as conn:
        lis = Listener(conn)
        first = await lis.first(lambda m: isinstance(m, ListenV2Connected))
    await lis.task  # left without CloseStream: the session waits for a resume (within its TTL)
    assert re.fullmatch(SESSION_ID_PATTERN, first.session_id) and first.resume_token and first.resumed is False
    again = {"session_id": first.session_id, "resume_token": first.resume_token}
    async with client.listen.v2.connect(**FLUX_PARAMS, request_options={"additional_query_parameters": again}) as c2:
        lis2 = Listener(c2)
        resumed = await lis2.first(lambda m: isinstance(m, ListenV2Connected))
        assert resumed.session_id == first.session_id and resumed.resumed is True
        await c2.send_close_stream()
        await asyncio.wait_for(lis2.closed.wait(), 20)
    # Two connections without an id get two sessions.
    async with client.listen.v2.connect(**FLUX_PARAMS) as c3:
        other = await Listener(c3).first(lambda m: isinstance(m, ListenV2Connected))
        assert other.session_id != first.session_id
        await c3.send_close_stream()


async def test_sdk_session_from_header_and_from_base_path(vani_cluster, provider_emulator):
    s1, s2 = sid(), sid()
    await script(provider_emulator, s1, transcripts=[WORDS])
    by_header = sdk_client(vani_cluster, headers={"X-Vani-Session": s1})
    async with by_header.listen.v2.connect(**FLUX_PARAMS) as conn:
        lis = Listener(conn)
        assert (await lis.first(lambda m: isinstance(m, ListenV2Connected))).session_id == s1
        await stream(conn, recording() + silence(1.0), speed=4.0)
        end = await lis.first(lambda m: isinstance(m, ListenV2TurnInfo) and m.event == "EndOfTurn")
        assert end.transcript == WORDS
        await conn.send_close_stream()
    # A base URL that already names the session (/v2/flux/{id}): the SDK appends /v2/listen to it.
    by_path = sdk_client(vani_cluster, path=f"/v2/flux/{s2}")
    async with by_path.listen.v2.connect(**FLUX_PARAMS) as conn:
        assert (await Listener(conn).first(lambda m: isinstance(m, ListenV2Connected))).session_id == s2
        await conn.send_close_stream()


@pytest.mark.parametrize(
    "extra",
    [
        {"session_id": "a.b"},  # not a valid session id (same rule as the path id)
        {"session_id": ""},
        {"encoding": "mulaw"},
        {"eot_threshold": "0.2"},
        {"redact": "numbers"},  # vani cannot redact: refusing beats ignoring a privacy request
        {"profanity_filter": "true"},
    ],
)
async def test_sdk_refusals(vani_cluster, extra):
    params = dict(FLUX_PARAMS)
    query = {k: v for k, v in extra.items() if k not in params}
    params.update({k: v for k, v in extra.items() if k in params})
    with pytest.raises(ApiError) as err:
        async with sdk_client(vani_cluster).listen.v2.connect(
            **params, request_options={"additional_query_parameters": query}
        ):
            pass
    assert err.value.status_code == 403


async def test_token_authorization_is_accepted(vani_cluster):
    """``Authorization: Token <key>`` (what Deepgram's SDKs send) works like ``Bearer <key>``."""
    url = f"{vani_cluster.url('strict')}/v1/sessions/{sid()}"
    async with connect(url, additional_headers={"Authorization": f"Token {STRICT_KEY}"}) as ws:
        assert json.loads(await ws.recv())["type"] == "session.started"
    with pytest.raises(ApiError) as err:  # a wrong key through the SDK: refused before the upgrade
        async with sdk_client(vani_cluster, app="strict", api_key="wrong").listen.v2.connect(**FLUX_PARAMS):
            pass
    assert err.value.status_code == 403
