"""Hostile input through the real ingress (Serve's HTTP proxy) and gateway: each case gets a clear,
documented answer (docs/protocol.md, "Bad input") and the session it was sent on loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
import uuid
from urllib.parse import urlsplit

import pytest
import ray
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.audio_frames import frame_seq, numbered_frame
from tests.conftest import STRICT_KEY
from vani.client.session_client import VaniSession

# No hostile case may leave a client waiting: an answer that has not come after this long never comes.
ANSWER_TIMEOUT_S = 10.0


def sid() -> str:
    return f"h-{uuid.uuid4().hex[:12]}"


def strict_json(text: str) -> object:
    """RFC 8259 JSON only: bare NaN / Infinity are not JSON."""

    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


async def still_echoes(s: VaniSession, seq: int) -> None:
    """The same connection and session keep working after the bad input."""
    await s.send_audio(numbered_frame(seq))
    assert frame_seq(await s.recv_audio()) == seq


# ------------------------------------------------------------------ raw HTTP helpers
def upgrade_request(target: str, host: str, extra_headers: str = "") -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    ).encode("latin-1")


async def raw_exchange(http_base: str, request: bytes) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    """Send ``request`` as is; return the response's status code (and the open stream)."""
    url = urlsplit(http_base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(request)
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_TIMEOUT_S)
    except TimeoutError:
        writer.close()
        pytest.fail(f"no answer within {ANSWER_TIMEOUT_S} s to {request[:80]!r}...")
    except asyncio.IncompleteReadError as exc:
        writer.close()
        pytest.fail(f"connection closed without an HTTP answer ({exc.partial[:80]!r})")
    status = int(head.split(b" ", 2)[1])
    return status, reader, writer


async def raw_status(http_base: str, request: bytes) -> int:
    status, _reader, writer = await raw_exchange(http_base, request)
    writer.close()
    return status


async def read_text_frame(reader: asyncio.StreamReader) -> str:
    """One unmasked server -> client text frame (enough for the first message after a raw upgrade)."""
    b0, b1 = await asyncio.wait_for(reader.readexactly(2), ANSWER_TIMEOUT_S)
    assert b0 & 0x0F == 0x1, f"expected a text frame, got opcode {b0 & 0x0F}"
    size = b1 & 0x7F
    if size == 126:
        size = struct.unpack(">H", await reader.readexactly(2))[0]
    elif size == 127:
        size = struct.unpack(">Q", await reader.readexactly(8))[0]
    return (await reader.readexactly(size)).decode()


def host_of(http_base: str) -> str:
    return urlsplit(http_base).netloc


# ------------------------------------------------------------------ session ids and query params
@pytest.mark.parametrize("bad", ["a%0A", "a%0D%0A", "abc%0A", "%0A"])
async def test_session_id_with_a_trailing_newline_is_refused(vani_cluster, bad):
    with pytest.raises(InvalidStatus) as err:
        await connect(f"{vani_cluster.url()}/v1/sessions/{bad}")
    assert err.value.response.status_code == 403


async def test_repeated_token_is_refused_as_ambiguous(vani_cluster):
    url = f"{vani_cluster.url('strict')}/v1/sessions"
    # Two values are refused whichever comes last, and even when they are equal: never "the last one wins".
    for query in (
        f"token=wrong&token={STRICT_KEY}",
        f"token={STRICT_KEY}&token=wrong",
        f"token={STRICT_KEY}&token={STRICT_KEY}",
    ):
        with pytest.raises(InvalidStatus) as err:
            await connect(f"{url}/{sid()}?{query}")
        assert err.value.response.status_code == 403, query
    async with await VaniSession.connect(vani_cluster.url("strict"), sid(), token=STRICT_KEY) as s:
        await s.close()


async def test_repeated_resume_token_is_refused_as_ambiguous(vani_cluster):
    url = vani_cluster.url("fast")
    s = await VaniSession.connect(url, sid())
    await s.close(graceful=False)
    with pytest.raises(InvalidStatus) as err:
        await connect(f"{url}/v1/sessions/{s.session_id}?resume_token=wrong&resume_token={s.resume_token}")
    assert err.value.response.status_code == 403
    back = await VaniSession.connect(url, s.session_id, resume_token=s.resume_token)  # the session is intact
    assert back.started["resumed"] is True
    await back.close()


# ------------------------------------------------------------------ the HTTP request itself
@pytest.mark.parametrize("where", ["request_line", "header"])
async def test_oversized_upgrade_request_is_refused_at_once(vani_cluster, where):
    host = host_of(vani_cluster.http)
    if where == "request_line":
        request = upgrade_request(f"/v1/sessions/{'a' * 12000}", host)
        expected = {414}
    else:
        request = upgrade_request(f"/v1/sessions/{sid()}", host, f"X-Padding: {'b' * 12000}\r\n")
        expected = {431}
    assert await raw_status(vani_cluster.http, request) in expected


async def test_raw_utf8_in_the_path_is_a_bad_request(vani_cluster):
    """Raw non-ASCII bytes are not a valid request target (HTTP 400); percent-encoded they are a
    well-formed path whose session id is invalid (403)."""
    host = host_of(vani_cluster.http)
    request = upgrade_request("/v1/sessions/caf\u00c3\u00a9", host)  # the UTF-8 bytes of "café", raw
    assert await raw_status(vani_cluster.http, request) == 400
    assert await raw_status(vani_cluster.http, upgrade_request("/v1/sessions/caf%C3%A9", host)) == 403


async def test_absolute_form_target_is_served_like_origin_form(vani_cluster):
    host = host_of(vani_cluster.http)
    session_id = sid()
    target = f"http://{host}/fast/v1/sessions/{session_id}"
    status, reader, writer = await raw_exchange(vani_cluster.http, upgrade_request(target, host))
    try:
        assert status == 101
        first = json.loads(await read_text_frame(reader))
        assert first["type"] == "session.started" and first["session_id"] == session_id
    finally:
        writer.close()
    bad = upgrade_request(f"http://{host}/fast/v1/sessions/a%0A", host)
    assert await raw_status(vani_cluster.http, bad) == 403


# ------------------------------------------------------------------ frames on an open session
NESTED = 3000


@pytest.mark.parametrize(
    "text",
    [
        "[" * NESTED + "]" * NESTED,
        '{"a":' * NESTED + "1" + "}" * NESTED,
        '{"type":"ping","id":' + "[" * NESTED + "]" * NESTED + "}",
        '{"type":"ping","id":' + "[" * 40 + "]" * 40 + "}",  # deeper than vani's bound, shallow for Python
    ],
    ids=["arrays", "objects", "in_ping", "in_ping_40"],
)
async def test_deeply_nested_json_gets_bad_json_and_loses_nothing(vani_cluster, text):
    async with await VaniSession.connect(vani_cluster.url("fast"), sid()) as s:
        await still_echoes(s, 1)
        await s.ws.send(text)
        err = await s.recv_event("error")
        assert err["code"] == "bad_json" and "nest" in err["message"]
        await still_echoes(s, 2)
        assert not [e for e in s.events if e["type"] == "state" and e["to"] == "suspended"]
        await s.ping(7)
        assert (await s.recv_event("pong"))["id"] == 7


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "-1e999", "1e400"])
async def test_non_finite_numbers_are_refused_and_never_emitted(vani_cluster, number):
    async with await VaniSession.connect(vani_cluster.url("fast"), sid()) as s:
        await s.ws.send(f'{{"type":"ping","id":{number}}}')
        await s.ws.send('{"type":"ping","id":"after"}')
        texts: list[str] = []
        while True:
            msg = await asyncio.wait_for(s.ws.recv(), ANSWER_TIMEOUT_S)
            if isinstance(msg, str):
                texts.append(msg)
                if '"after"' in msg:
                    break
        events = [strict_json(t) for t in texts]  # every message the server sent is real JSON
        errors = [e for e in events if e["type"] == "error"]
        assert [e["code"] for e in errors] == ["bad_json"] and "finite" in errors[0]["message"]
        assert [e["id"] for e in events if e["type"] == "pong"] == ["after"]
        await still_echoes(s, 1)


async def test_large_text_frame_gets_an_error_and_the_session_is_kept(vani_cluster):
    async with await VaniSession.connect(vani_cluster.url("fast"), sid()) as s:
        await still_echoes(s, 1)
        await s.send_json({"type": "ping", "id": "x" * (1 << 20)})  # valid JSON, over 1 MiB
        err = await s.recv_event("error")
        assert err["code"] == "message_too_large" and "65536" in err["message"]
        await still_echoes(s, 2)
        assert not [e for e in s.events if e["type"] == "state" and e["to"] == "suspended"]


async def test_empty_binary_frame_gets_an_error_and_nothing_is_lost(vani_cluster):
    async with await VaniSession.connect(vani_cluster.url("fast"), sid()) as s:
        await s.send_audio(numbered_frame(1))
        await s.send_audio(b"")
        await s.send_audio(numbered_frame(2))
        got = [frame_seq(await s.recv_audio()), frame_seq(await s.recv_audio())]
        assert got == [1, 2]
        # The gateway answers at once, so the error may come before the echoes (recv_audio keeps it).
        assert [e["code"] for e in s.events if e["type"] == "error"] == ["empty_frame"]


# ------------------------------------------------------------------ a host that dies
async def test_killed_host_clients_get_session_lost_once(vani_cluster):
    url = vani_cluster.url("actor")
    victim = await VaniSession.connect(url, sid(), open_timeout=60)  # a new actor per session: slow on a busy box
    await still_echoes(victim, 0)
    stop = asyncio.Event()

    async def keep_talking() -> None:
        # Audio in flight while the host dies: both directions of the gateway's pump see the link end.
        seq = 1
        with contextlib.suppress(ConnectionClosed):
            while not stop.is_set():
                await victim.send_audio(numbered_frame(seq))
                seq += 1
                await asyncio.sleep(0.005)

    talker = asyncio.create_task(keep_talking())
    await asyncio.sleep(0.2)
    ray.kill(ray.get_actor(f"actor-session-{victim.session_id}", namespace="vani"), no_restart=True)
    t0 = time.monotonic()
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(victim.recv(), ANSWER_TIMEOUT_S)
    stop.set()
    await talker
    assert time.monotonic() - t0 < ANSWER_TIMEOUT_S
    assert victim.close_code == 1011
    lost = [e for e in victim.events if e["type"] == "error" and e["code"] == "session_lost"]
    assert len(lost) == 1, victim.events[-5:]
