"""The session hosts are no back door: links are authenticated, settings come from the deployment, status is closed.

A raw websocket client at a session host's link address plays the attacker (the address comes from the
registry over Ray, as an attacker on the node network could find it by scanning). It is refused without
the deployment's secret, with a wrong one and with a replayed ``link.open``; a link that tries to choose
provider URLs or settings is refused and the host never contacts the URL; ``/v1/status`` needs the API key
when one is set and never shows session ids without it, nor any host address.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest
import ray
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.agent_helpers import emulator_log, script
from tests.audio_frames import numbered_frame
from tests.conftest import STRICT_KEY
from vani.actors.control.placement import registry_name, session_actor_name
from vani.actors.wire import link_auth, protocol
from vani.client.session_client import VaniSession

POLICY = 1008
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # subprocesses run from the repository


def sid(prefix: str = "sec") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def registry(app: str) -> Any:
    return ray.get_actor(registry_name(app), namespace="vani")


async def host_of(app: str, name: str | None = None) -> tuple[str, str]:
    """(name, link address) of one of ``app``'s session hosts, from the registry over Ray."""
    hosts = (await registry(app).status.remote())["hosts"]
    return next((h["name"], h["address"]) for h in hosts if h["address"] and name in (None, h["name"]))


async def host_address(app: str, name: str | None = None) -> str:
    return (await host_of(app, name))[1]


async def challenge_of(ws: ClientConnection) -> str:
    msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert msg["type"] == "link.challenge", msg
    return msg["nonce"]


async def reply_of(ws: ClientConnection) -> dict[str, Any]:
    """The host's answer to a link.open (link.opened or link.refused)."""
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if msg["type"] != "link.challenge":
            return msg


def link_open(session_id: str, mode: str = "echo", **extra: Any) -> dict[str, Any]:
    return {"type": "link.open", "session_id": session_id, "resume_token": None, "mode": mode, "options": {}, **extra}


async def assert_refused(ws: ClientConnection, reason: str) -> None:
    reply = await reply_of(ws)
    assert reply["type"] == "link.refused" and reply["code"] == POLICY, reply
    assert reason in reply["reason"], reply
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 30)


async def test_link_without_the_secret_is_refused(vani_cluster):
    name, address = await host_of("fast")
    s = sid()
    # An attacker's link.open: limits of its choosing (flood guard off), no MAC, sent at once.
    async with connect(f"{address}/s/{s}") as ws:
        await ws.send(protocol.dumps({**link_open(s), "limits": {"flood_burst_s": 0}}))
        await assert_refused(ws, "not authenticated")
    # Answering the challenge without a MAC does not help either.
    async with connect(f"{address}/s/{s}") as ws:
        nonce = await challenge_of(ws)
        await ws.send(protocol.dumps({**link_open(s), "nonce": nonce}))
        await assert_refused(ws, "not authenticated")
    assert s not in await ray.get_actor(name, namespace="vani").session_ids.remote()


async def test_link_with_a_wrong_secret_is_refused(vani_cluster):
    address = await host_address("fast")
    s = sid()
    secret = await registry("fast").link_secret.remote()
    for wrong in (link_auth.new_secret(), secret[:-1] + bytes([secret[-1] ^ 1]), b""):
        async with connect(f"{address}/s/{s}") as ws:
            await ws.send(link_auth.sign(wrong, await challenge_of(ws), link_open(s)))
            await assert_refused(ws, "not authenticated")
    # Another deployment's secret (the "strict" app's) is a wrong secret here too.
    other = await registry("strict").link_secret.remote()
    assert other != secret
    async with connect(f"{address}/s/{s}") as ws:
        await ws.send(link_auth.sign(other, await challenge_of(ws), link_open(s)))
        await assert_refused(ws, "not authenticated")


async def test_replayed_link_open_is_refused(vani_cluster):
    address = await host_address("fast")
    secret = await registry("fast").link_secret.remote()
    s = sid()
    async with connect(f"{address}/s/{s}") as first:
        captured = link_auth.sign(secret, await challenge_of(first), link_open(s))
        await first.send(captured)
        opened = await reply_of(first)
        assert opened["type"] == "link.opened" and opened["started"]["session_id"] == s  # the genuine article works
        # Replayed on a new connection (a new nonce): refused as unauthenticated, not as a 4409 conflict.
        async with connect(f"{address}/s/{s}") as replay:
            await challenge_of(replay)
            await replay.send(captured)
            await assert_refused(replay, "not authenticated")
        await first.send(protocol.dumps({"type": "close"}))
    # A captured link.open that was never used is worthless too: it answers another connection's nonce.
    fresh = sid()
    async with connect(f"{address}/s/{fresh}") as sniffed:
        unused = link_auth.sign(secret, await challenge_of(sniffed), link_open(fresh))
    async with connect(f"{address}/s/{fresh}") as replay:
        await challenge_of(replay)
        await replay.send(unused)
        await assert_refused(replay, "not authenticated")
    # And a valid MAC does not survive an edit of what it covers.
    async with connect(f"{address}/s/{fresh}") as ws:
        signed = json.loads(link_auth.sign(secret, await challenge_of(ws), link_open(fresh)))
        signed["session_id"] = sid()
        await ws.send(json.dumps(signed))
        await assert_refused(ws, "not authenticated")


async def test_a_slow_handshake_is_refused(vani_cluster):
    address = await host_address("fast")
    async with connect(f"{address}/s/slow") as ws:
        await challenge_of(ws)
        await asyncio.sleep(link_auth.HANDSHAKE_TIMEOUT_S + 1)
        await assert_refused(ws, "too slow")


async def test_actor_mode_hosts_refuse_unauthenticated_links(vani_cluster):
    s = sid("secact")
    session = await VaniSession.connect(vani_cluster.url("actor"), s, open_timeout=120)
    try:
        address = await host_address("actor", session_actor_name("actor", s))
        async with connect(f"{address}/s/{s}") as ws:
            await ws.send(protocol.dumps({**link_open(s), "resume_token": session.resume_token}))
            await assert_refused(ws, "not authenticated")  # not taken over (4000), not even a 4409
        async with connect(f"{address}/s/{s}") as ws:
            opening = {**link_open(s), "resume_token": session.resume_token}
            await ws.send(link_auth.sign(link_auth.new_secret(), await challenge_of(ws), opening))
            await assert_refused(ws, "not authenticated")
        await session.send_audio(numbered_frame(1))  # the real client's session is untouched
        while not isinstance(item := await asyncio.wait_for(session.recv(), 60), bytes):
            pass
        assert item == numbered_frame(1)
    finally:
        await session.close()


class Listener:
    """A TCP listener standing in for an attacker's URL: counts every connection made to it."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        async def seen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(seen, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


async def open_raw(address: str, session_id: str, app: str, body: dict[str, Any]) -> tuple[ClientConnection, dict]:
    """Open a link as an insider would (with the secret); tolerates a host that sends no challenge."""
    ws = await connect(f"{address}/s/{session_id}")
    try:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    except TimeoutError:  # a host without link authentication: it waits for link.open
        await ws.send(protocol.dumps(body))
        return ws, json.loads(await asyncio.wait_for(ws.recv(), 30))
    secret = await registry(app).link_secret.remote()
    await ws.send(link_auth.sign(secret, first["nonce"], body))
    return ws, await reply_of(ws)


async def test_a_link_cannot_choose_provider_urls_or_settings(vani_cluster, provider_emulator):
    address = await host_address("agent")
    async with Listener() as evil:
        chosen = dict(
            session_mode="agent",
            stt_provider="deepgram",
            llm_provider="openai",
            tts_provider="deepgram",
            deepgram_base_url=evil.url,
            openai_base_url=f"{evil.url}/v1",
            cf_base_url=evil.url,
            flood_burst_s=0,
        )
        attempts = [
            # The old shape: settings inside the limits (and beside them), flood guard off.
            link_open(sid(), "flux", limits={"mode": "flux", "flood_burst_s": 0, "settings": chosen}, settings=chosen),
            # Provider URLs dressed as client options.
            link_open(sid(), "flux", options={"deepgram_base_url": evil.url}),
            link_open(sid(), "flux", options={"flux_eot_threshold": 0.7, "openai_base_url": evil.url}),
            # An option out of its range, and a mode the deployment does not serve.
            link_open(sid(), "flux", options={"flux_eot_timeout_ms": 10**9}),
            link_open(sid(), "echo"),
        ]
        for body in attempts:
            ws, reply = await open_raw(address, body["session_id"], "agent", body)
            try:
                assert reply["type"] == "link.refused" and reply["code"] == POLICY, (body, reply)
                assert "bad link.open" in reply["reason"], reply
            finally:
                await ws.close()
        # A well-formed link gets a session built from the deployment's settings: its STT is the
        # deployment's provider (the emulator, which logs the connection under the session id).
        s = sid()
        await script(provider_emulator, s, transcripts=["hello there"])
        ws, reply = await open_raw(address, s, "agent", link_open(s, "flux", options={"flux_eot_threshold": 0.8}))
        try:
            assert reply["type"] == "link.opened", reply
            await ws.send(protocol.encode_frame(0, numbered_frame(0)))
            for _ in range(300):
                log = await emulator_log(provider_emulator, s)
                if any(e["service"] == "flux" and e["event"] == "connect" for e in log):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the session never reached the deployment's STT provider")
            await ws.send(protocol.dumps({"type": "CloseStream"}))
        finally:
            await ws.close()
        await asyncio.sleep(1.0)  # give a wrongly built session time to dial out
        assert evil.connections == 0, "a session host contacted a URL chosen by a link"


def no_addresses(obj: Any) -> bool:
    if isinstance(obj, dict):
        return "address" not in obj and all(no_addresses(v) for v in obj.values())
    if isinstance(obj, list):
        return all(no_addresses(v) for v in obj)
    return not (isinstance(obj, str) and obj.startswith("ws://"))


async def link_addresses(app: str) -> list[str]:
    hosts = (await registry(app).status.remote())["hosts"]
    return [h["address"].removeprefix("ws://") for h in hosts if h["address"]]


async def test_status_needs_the_api_key_when_one_is_set(vani_cluster):
    url = f"{vani_cluster.http_url('strict')}/v1/status"
    s = sid()
    session = await VaniSession.connect(vani_cluster.url("strict"), s, token=STRICT_KEY, open_timeout=120)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            missing = await http.get(url)
            assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
            wrong = [
                await http.get(url, headers={"Authorization": "Bearer nope"}),
                await http.get(url, params={"token": "nope"}),
                await http.get(url, headers={"Authorization": f"Basic {STRICT_KEY}"}),
            ]
            assert [r.status_code for r in wrong] == [403, 403, 403]
            for r in (missing, *wrong):
                assert s not in r.text and not any(a in r.text for a in await link_addresses("strict"))
            for ok in (
                await http.get(url, headers={"Authorization": f"Bearer {STRICT_KEY}"}),
                await http.get(url, params={"token": STRICT_KEY}),
            ):
                assert ok.status_code == 200
                body = ok.json()
                assert body["sessions"] >= 1
                assert s in [x["session_id"] for h in body["host_stats"] for x in h["sessions"]]
                assert no_addresses(body) and not any(a in ok.text for a in await link_addresses("strict"))
        vani = os.path.join(os.path.dirname(sys.executable), "vani")
        env = {k: v for k, v in os.environ.items() if k != "VANI_API_KEY"}

        def status(*args: str, **more_env: str) -> subprocess.CompletedProcess:
            cmd = [vani, "status", "--url", vani_cluster.http_url("strict"), *args]
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**env, **more_env}, cwd=ROOT)

        refused = await asyncio.to_thread(status)
        assert refused.returncode == 1 and "API key" in refused.stderr
        with_flag = await asyncio.to_thread(status, "--token", STRICT_KEY)
        with_env = await asyncio.to_thread(status, VANI_API_KEY=STRICT_KEY)
        for run in (with_flag, with_env):
            assert run.returncode == 0, run.stderr
            assert s in run.stdout and "ws://" not in run.stdout
    finally:
        await session.close()


async def test_status_without_a_key_shows_no_session_ids_and_no_addresses(vani_cluster):
    s = sid()
    session = await VaniSession.connect(vani_cluster.url("fast"), s, open_timeout=120)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.get(f"{vani_cluster.http_url('fast')}/v1/status")
        assert r.status_code == 200
        body = r.json()
        assert body["sessions"] >= 1 and sum(h["sessions"] for h in body["hosts"]) == body["sessions"]
        assert s not in r.text
        assert no_addresses(body) and not any(a in r.text for a in await link_addresses("fast"))
    finally:
        await session.close()


# ---------------------------------------------------------------------- units (no Ray)
def test_link_mac_covers_the_nonce_and_every_field():
    secret, nonce = link_auth.new_secret(), link_auth.new_nonce()
    body = link_open("u1", "flux", options={"flux_eot_threshold": 0.75})
    signed = link_auth.sign(secret, nonce, body)
    assert link_auth.verify(secret, nonce, signed) == body
    assert link_auth.verify(secret, link_auth.new_nonce(), signed) is None  # another connection's nonce
    assert link_auth.verify(link_auth.new_secret(), nonce, signed) is None
    for field, value in (("session_id", "u2"), ("mode", "agent"), ("options", {}), ("extra", 1)):
        assert link_auth.verify(secret, nonce, json.dumps({**json.loads(signed), field: value})) is None
    for junk in ("", "[]", "{", '{"type":"link.open","nonce":NaN,"mac":"00"}', b"\x00", "[" * 5000):
        assert link_auth.verify(secret, nonce, junk) is None
    assert secret.hex() not in signed  # the secret itself never travels


def test_a_link_open_may_ask_only_for_a_served_mode_and_client_options():
    from vani.actors.wire.session_request import SessionRequest
    from vani.cluster.config import Settings

    agent = Settings(session_mode="agent")
    ok = SessionRequest.from_link(
        link_open("a", "flux", options={"flux_eot_timeout_ms": 800, "flux_keyterms": "x"}), agent
    )
    assert (
        ok.settings_for(agent).flux_eot_timeout_ms == 800
        and ok.settings_for(agent).deepgram_base_url == agent.deepgram_base_url
    )
    bad = [
        link_open("a", "flux", settings={"deepgram_base_url": "http://evil"}),
        link_open("a", "flux", limits={"flood_burst_s": 0}),
        link_open("a", "flux", options={"deepgram_base_url": "http://evil"}),
        link_open("a", "flux", options={"flood_burst_s": 0}),
        link_open("a", "flux", options={"flux_eot_threshold": 2.0}),
        link_open("a", "flux", options={"flux_eot_threshold": True}),
        link_open("a", "flux", options={"flux_eot_timeout_ms": 800.5}),
        link_open("a", "flux", options={"flux_keyterms": 7}),
        link_open("a", "echo"),  # not one of this deployment's routes
        link_open("a", "agent", options=[]),
        {**link_open("a"), "session_id": 5},
    ]
    for body in bad:
        with pytest.raises(ValueError):
            SessionRequest.from_link(body, agent)
    with pytest.raises(ValueError):
        SessionRequest.from_link(
            link_open("e", "echo", options={"flux_eot_threshold": 0.7}), Settings(session_mode="echo")
        )
