"""The client-facing protocol through the real gateway: echo, ping, mute, bad input, limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.audio_frames import frame_seq, numbered_frame
from tests.conftest import STRICT_KEY
from vani.client.session_client import SessionRefused, VaniSession


def sid() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def test_healthz_and_unknown_route(vani_cluster):
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{vani_cluster.http}/healthz")
        assert r.status_code == 200 and r.json()["ok"] is True
        r = await http.get(f"{vani_cluster.http}/no/such/route")
        assert r.status_code == 404


async def test_session_started_then_echo_after_configured_delay(vani_cluster):
    s = await VaniSession.connect(vani_cluster.url(), sid())
    st = s.started
    assert st["resumed"] is False and st["state"] == "streaming" and st["resume_token"]
    assert st["audio"] == {"encoding": "linear16", "sample_rate": 16000, "channels": 1}
    assert st["limits"]["max_frame_bytes"] == 65536 and st["limits"]["outbound_queue_bytes"] == 131072
    assert st["limits"]["echo_delay_ms"] == 500
    sent_at = time.monotonic()
    frame = numbered_frame(7, 2560)
    await s.send_audio(frame)
    echoed = await s.recv_audio()
    assert echoed == frame
    assert time.monotonic() - sent_at >= 0.5  # the configured delay, measured at the client
    await s.close()


async def test_ping_gets_pong(vani_cluster):
    async with await VaniSession.connect(vani_cluster.url("fast"), sid()) as s:
        await s.ping(42)
        pong = await s.recv_event("pong")
        assert pong["id"] == 42 and pong["server_time"] > 0


async def test_mute_stops_taking_audio_client_still_receives(vani_cluster):
    async with await VaniSession.connect(vani_cluster.url(), sid()) as s:
        await s.send_audio(numbered_frame(1))  # echoed 500 ms later, after we mute
        await s.mute()
        assert (await s.recv_event("state", event="MUTE"))["to"] == "muted"
        await s.send_audio(numbered_frame(2))  # discarded: the mic is muted
        assert frame_seq(await s.recv_audio()) == 1  # still receiving while muted
        await s.unmute()
        assert (await s.recv_event("state", event="UNMUTE"))["to"] == "streaming"
        await s.send_audio(numbered_frame(3))
        assert frame_seq(await s.recv_audio()) == 3
        await s.send_json({"type": "unmute"})  # not valid while streaming
        err = await s.recv_event("error")
        assert err["code"] == "invalid_event" and err["event"] == "UNMUTE" and err["state"] == "streaming"


@pytest.mark.parametrize(
    "text,code",
    [
        ("not json", "bad_json"),
        ("[1,2]", "bad_message"),
        ('{"type": "dance"}', "unknown_type"),
    ],
)
async def test_bad_text_gets_error_and_connection_is_kept(vani_cluster, text, code):
    async with await VaniSession.connect(vani_cluster.url("fast"), sid()) as s:
        await s.ws.send(text)
        err = await s.recv_event("error")
        assert err["code"] == code and err["message"]
        await s.send_audio(numbered_frame(5))
        assert frame_seq(await s.recv_audio()) == 5


async def test_odd_length_pcm_gets_error_and_nothing_is_lost(vani_cluster):
    async with await VaniSession.connect(vani_cluster.url("fast"), sid()) as s:
        await s.send_audio(numbered_frame(1))
        await s.send_audio(b"\x01\x02\x03")
        await s.send_audio(numbered_frame(2))
        got = [frame_seq(await s.recv_audio()), frame_seq(await s.recv_audio())]
        assert got == [1, 2]
        assert any(e.get("code") == "odd_length" for e in s.events if e["type"] == "error")


async def test_oversized_frame_closes_1009(vani_cluster):
    s = await VaniSession.connect(vani_cluster.url("fast"), sid())
    await s.send_audio(b"\x00" * 65538)
    with pytest.raises(ConnectionClosed):
        while True:
            await s.recv()
    assert s.close_code == 1009 and "exceeds max 65536" in s.close_reason


@pytest.mark.parametrize("bad", ["has space", "x" * 65, "semi;colon", "dot.dot"])
async def test_invalid_session_id_refused_before_upgrade(vani_cluster, bad):
    with pytest.raises(InvalidStatus) as err:
        await connect(f"{vani_cluster.url()}/v1/sessions/{bad.replace(' ', '%20')}")
    assert err.value.response.status_code in (403, 404)


async def test_api_key_required_header_or_query(vani_cluster):
    url = vani_cluster.url("strict")
    with pytest.raises(InvalidStatus) as err:
        await connect(f"{url}/v1/sessions/{sid()}")
    assert err.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        await connect(f"{url}/v1/sessions/{sid()}?token=wrong")
    async with await VaniSession.connect(url, sid(), token=STRICT_KEY) as s:
        assert s.started["state"] == "streaming"
        await s.close()
    ws = await connect(f"{url}/v1/sessions/{sid()}", additional_headers={"Authorization": f"Bearer {STRICT_KEY}"})
    assert json.loads(await ws.recv())["type"] == "session.started"
    await ws.send(json.dumps({"type": "close"}))
    await ws.close()


async def test_flood_closes_1008_and_other_sessions_keep_streaming(vani_cluster):
    url = vani_cluster.url("strict")
    calm = await VaniSession.connect(url, sid(), token=STRICT_KEY)
    flood = await VaniSession.connect(url, sid(), token=STRICT_KEY)
    frame = numbered_frame(0, 3200)  # 100 ms

    async def drain(s: VaniSession) -> None:
        with pytest.raises(ConnectionClosed):
            while True:
                await s.recv()

    reader = asyncio.create_task(drain(flood))
    with contextlib.suppress(ConnectionClosed):
        for _ in range(1000):  # 100 ms of audio every 10 ms: 10x real time, for up to 10 s
            await flood.send_audio(frame)
            await asyncio.sleep(0.01)
            if reader.done():
                break
    await asyncio.wait_for(reader, 20)
    assert flood.close_code == 1008 and "flood" in flood.close_reason
    assert any(e["type"] == "error" and "flood" in e["message"] for e in flood.events)
    for i in range(5):  # the calm session is untouched
        await calm.send_audio(numbered_frame(i, 3200))
        assert frame_seq(await calm.recv_audio()) == i
        await asyncio.sleep(0.1)
    await calm.close()


async def test_session_ids_are_isolated(vani_cluster):
    url = vani_cluster.url("fast")
    a = await VaniSession.connect(url, sid())
    b = await VaniSession.connect(url, sid())
    await a.send_audio(numbered_frame(111))
    await b.send_audio(numbered_frame(222))
    assert frame_seq(await a.recv_audio()) == 111
    assert frame_seq(await b.recv_audio()) == 222
    await a.close()
    await b.close()


async def test_refused_session_raises_with_code(vani_cluster):
    url = vani_cluster.url("fast")
    s = await VaniSession.connect(url, sid())
    with pytest.raises(SessionRefused) as err:
        await VaniSession.connect(url, s.session_id)
    assert err.value.code == 4409
    await s.close()
