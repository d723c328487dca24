"""Sessions survive their host: a session host killed with SIGKILL mid-conversation, its clients come back
with their resume tokens and get their sessions back from the store, history intact.

The killed host's event log is in the store too: ``vani sessions export`` finds it there, and the session's two
lives replay. On the shared 2-node cluster's /agent app (provider emulators), whose store is a real Redis
(tests/conftest.py); Ray restarts the killed host under the same name and it reads the sessions back. The
SQLite store's host crash is tests/test_session_lifecycle.py's (/fast), the stores themselves
tests/test_session_store.py's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
import uuid

import pytest
import ray
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.agent_helpers import AgentClient, emulator_log, script, utterance
from tests.test_session_export import vani
from vani.actors.control.placement import registry_name
from vani.actors.replay import log_file


def sid() -> str:
    return f"rc-{uuid.uuid4().hex[:10]}"


def url(cluster, session_id: str, token: str | None = None) -> str:
    return f"{cluster.url('agent')}/v1/sessions/{session_id}" + (f"?resume_token={token}" if token else "")


async def host_of(session_id: str) -> tuple[str, int]:
    registry = ray.get_actor(registry_name("agent"), namespace="vani")
    where = await registry.where.remote(session_id)
    stats = await ray.get_actor(where["host"], namespace="vani").stats.remote()
    return where["host"], stats["pid"]


async def stored(session_id: str, host: str) -> bool:
    """The host has written the session's latest state (nothing pending)."""
    stats = await ray.get_actor(host, namespace="vani").stats.remote()
    return stats["store"]["pending"] == 0 and any(s["session_id"] == session_id for s in stats["sessions"])


async def closed(c: AgentClient, timeout: float = 30.0) -> int | None:
    """Wait for the server to close ``c``; its close code."""
    assert c._reader is not None
    with contextlib.suppress(ConnectionClosed):
        await asyncio.wait_for(asyncio.shield(c._reader), timeout)
    return c.ws.close_code


async def reconnect(cluster, session_id: str, token: str, timeout: float = 90.0) -> AgentClient:
    """Connect with the token until the restarted host takes the link (1011/1013 while it comes back)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = await AgentClient.connect(url(cluster, session_id, token))
            if c.first.get("type") == "session.started":
                return c
            await c.close()
        except (ConnectionClosed, InvalidStatus, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail("the session's host did not come back")
        await asyncio.sleep(0.5)


async def export(cluster, session_id: str, path, *flags: str) -> str:
    address = cluster.cluster.address
    out = await asyncio.to_thread(
        vani, "sessions", "export", session_id, "--address", address, "--app", "agent", "-o", str(path), *flags
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return str(path)


async def log_written(cluster, session_id: str, needle: str, timeout: float = 10.0) -> None:
    """Until the session's stored event log (in the /agent app's Redis) holds a line with ``needle``."""
    from vani.actors.store.redis_store import RedisStore

    store = RedisStore(cluster.redis.url, prefix="vani:agent:session:", log_prefix="vani:agent:log:")
    deadline = time.monotonic() + timeout
    try:
        while not any(needle in line for line in await store.read_log(session_id)):
            assert time.monotonic() < deadline, f"{needle} never reached the stored log"
            await asyncio.sleep(0.1)
    finally:
        await store.close()


def answers(run: log_file.SessionLog) -> list[str]:
    return [e["msg"]["full_text"] for e in run.outputs() if e["k"] == "out" and e["msg"]["type"] == "assistant.message"]


async def test_a_killed_host_gives_its_sessions_back_with_their_history(vani_cluster, provider_emulator, tmp_path):
    s, other = sid(), sid()
    await script(provider_emulator, s, transcripts=["hello there", "what is on the menu"])
    c = await AgentClient.connect(url(vani_cluster, s))
    token = c.first["resume_token"]
    await c.send_audio(utterance(0.6, 0.5, seed=1))
    m1 = await c.wait_type("assistant.message", 30.0, turn_id=1)
    await c.wait_type("conversation", 10.0, to="listening", event="REPLY_DONE")
    host, pid = await host_of(s)
    # A bystander on another host is not touched by the crash.
    bystander = None
    for _ in range(20):
        candidate = await AgentClient.connect(url(vani_cluster, other))
        if (await host_of(other))[0] != host:
            bystander = candidate
            break
        await candidate.close()
        other = sid()
    deadline = time.monotonic() + 10
    while not await stored(s, host):
        assert time.monotonic() < deadline, "the turn's checkpoint was never written"
        await asyncio.sleep(0.1)
    await log_written(vani_cluster, s, '"assistant.message"')  # the writer appends every second

    os.kill(pid, signal.SIGKILL)
    assert await closed(c) == 1011
    assert any(e.get("code") == "session_lost" for e in c.of_type("error"))
    # The dead host's log is in the store (event_log.py): the export finds it there, the first turn in it.
    lost = await export(vani_cluster, s, tmp_path / "lost.jsonl")
    (run,) = log_file.read_runs(lost)
    assert answers(run) == ["Sure. You said: hello there. Anything else?"] and run.header["cut"] is True

    back = await reconnect(vani_cluster, s, token)
    first = back.first
    assert (first["session_id"], first["resume_token"]) == (s, token)
    assert first["resumed"] is True and first["recovered"] is True, first
    assert "interrupted_turn" not in first  # nothing was in flight
    await back.send_audio(utterance(0.8, 0.5, seed=2))
    m2 = await back.wait_type("assistant.message", 30.0, turn_id=2)  # turn ids go on
    assert m1["full_text"] == "Sure. You said: hello there. Anything else?"
    assert m2["full_text"] == "Sure. You said: what is on the menu. Anything else?"
    requests = [
        e for e in await emulator_log(provider_emulator, s) if e["service"] == "llm" and e["event"] == "request"
    ]
    # The answer after the crash was asked with the earlier turn in its context.
    assert requests[-1]["roles"] == ["system", "user", "assistant", "user"], requests[-1]
    await back.wait_type("conversation", 10.0, to="listening", event="REPLY_DONE")
    # Both lives of the session, from the store: the second starts from the restored state; each replays.
    both = await export(vani_cluster, s, tmp_path / "both.jsonl", "--stored")
    first_run, second_run = log_file.read_runs(both)
    assert answers(first_run) == [m1["full_text"]] and answers(second_run) == [m2["full_text"]]
    assert second_run.entries[0]["k"] == "restored"
    replay = await asyncio.to_thread(vani, "replay", both)
    assert replay.returncode == 0 and replay.stdout.count("the same as logged") == 2, replay.stdout + replay.stderr
    await back.close()
    if bystander is not None:
        assert bystander.ws.close_code is None  # still open, never told anything
        await bystander.close()


async def test_a_wrong_token_never_gets_a_stored_session_and_an_unknown_one_says_why(vani_cluster, provider_emulator):
    s = sid()
    c = await AgentClient.connect(url(vani_cluster, s))
    host, pid = await host_of(s)
    deadline = time.monotonic() + 10
    while not await stored(s, host):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    assert await closed(c) == 1011
    # A stranger with the id but not the token is refused, and the stored session is left alone.
    deadline = time.monotonic() + 90
    while True:
        try:
            stranger = await AgentClient.connect(url(vani_cluster, s, "not-the-token"))
            pytest.fail(f"a wrong token got a session: {stranger.first}")
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 4401:
                break
        except (InvalidStatus, OSError):
            pass
        assert time.monotonic() < deadline, "the restarted host never answered"
        await asyncio.sleep(0.5)
    back = await reconnect(vani_cluster, s, c.first["resume_token"])
    assert back.first["recovered"] is True
    await back.close()
    # A token for a session that was never stored: a fresh session, told why.
    fresh = await AgentClient.connect(url(vani_cluster, sid(), "some-old-token"))
    assert fresh.first["resumed"] is False and fresh.first["recovered"] is False
    assert "no stored state" in fresh.first["recovery"]
    await fresh.close()


async def test_a_removed_node_gives_its_sessions_back_on_another_node(vani_cluster, provider_emulator):
    """Chaos (b): a third node joins, three sessions of /agent (Redis store) talk on its host, the node is
    removed; their clients get session_lost + 1011, come back with their tokens on a host of another node
    with their history, and a session on another node is never touched."""
    from tests.conftest import free_port, node_env
    from vani.actors.control.placement import choose_host, host_name

    haproxy_dir = tempfile.mkdtemp(prefix="vani-hap-")
    node = vani_cluster.cluster.add_node(
        num_cpus=2, node_ip_address="127.0.0.1", env_vars=node_env(os.path.join(haproxy_dir, "n"), free_port())
    )
    clients: list[AgentClient] = []
    bystander: AgentClient | None = None
    try:
        registry = ray.get_actor(registry_name("agent"), namespace="vani")
        doomed = host_name("agent", node.node_id, 0)
        deadline = time.monotonic() + 180
        while doomed not in (hosts := [h["name"] for h in await registry.host_stats.remote()]):
            assert time.monotonic() < deadline, f"no /agent host on the new node: {hosts}"
            await asyncio.sleep(1.0)
        # Sessions until three are placed on the new node's host (the registry decides: rendezvous hashing,
        # minus hosts it finds overloaded) and one elsewhere.
        ids: list[str] = []
        tokens: dict[str, str] = {}
        deadline = time.monotonic() + 120  # a new host refuses sessions while it is still warming up (loop lag)
        while (len(ids) < 3 or bystander is None) and time.monotonic() < deadline:
            s = sid()
            if choose_host(s, hosts) != doomed and bystander is not None:
                continue
            await script(provider_emulator, s, transcripts=[f"first thing {len(ids)}", f"second thing {len(ids)}"])
            c = await AgentClient.connect(url(vani_cluster, s))
            on_new = (await registry.where.remote(s))["node_id"] == node.node_id
            if on_new and len(ids) < 3:
                ids.append(s)
                clients.append(c)
                tokens[s] = c.first["resume_token"]
            elif not on_new and bystander is None:
                bystander = c
            else:
                await c.close()
                await asyncio.sleep(0.5)
        assert len(ids) == 3 and bystander is not None, f"placed on the new node: {ids}"
        for i, c in enumerate(clients):
            await c.send_audio(utterance(0.6, 0.5, seed=i))
        for c in clients:
            await c.wait_type("assistant.message", 30.0, turn_id=1)
            await c.wait_type("conversation", 10.0, to="listening", event="REPLY_DONE")
        for s in ids:
            deadline = time.monotonic() + 10
            while not await stored(s, doomed):
                assert time.monotonic() < deadline, "the turn's checkpoint was never written"
                await asyncio.sleep(0.1)

        await asyncio.to_thread(vani_cluster.cluster.remove_node, node)
        for c in clients:
            assert await closed(c, timeout=60) == 1011
        for i, s in enumerate(ids):
            back = await reconnect(vani_cluster, s, tokens[s])
            assert back.first["recovered"] is True, back.first
            assert (await registry.where.remote(s))["node_id"] != node.node_id
            await back.send_audio(utterance(0.8, 0.5, seed=10 + i))
            m2 = await back.wait_type("assistant.message", 30.0, turn_id=2)
            assert m2["full_text"] == f"Sure. You said: second thing {i}. Anything else?"
            requests = [
                e for e in await emulator_log(provider_emulator, s) if e["service"] == "llm" and e["event"] == "request"
            ]
            assert requests[-1]["roles"] == ["system", "user", "assistant", "user"], requests[-1]
            await back.close()
        assert bystander.ws.close_code is None  # never told anything
        await bystander.close()
    finally:
        for c in [*clients, *([bystander] if bystander is not None else [])]:
            with contextlib.suppress(Exception):
                await c.close()
        if node in vani_cluster.cluster.worker_nodes:
            await asyncio.to_thread(vani_cluster.cluster.remove_node, node)
        shutil.rmtree(haproxy_dir, ignore_errors=True)


async def test_a_store_outage_mid_conversation_fails_no_session_and_writes_catch_up(vani_cluster, provider_emulator):
    """Chaos (c): the /agent app's Redis is stopped for 10 s while a session talks: the session answers on,
    its host reports the outage, and once Redis is back (empty) the session's latest state is written."""
    from vani.actors.store.record import SessionRecord
    from vani.actors.store.redis_store import RedisStore

    s = sid()
    await script(provider_emulator, s, transcripts=["before the outage", "during the outage", "after it"])
    c = await AgentClient.connect(url(vani_cluster, s))
    await c.send_audio(utterance(0.6, 0.5, seed=1))
    await c.wait_type("assistant.message", 30.0, turn_id=1)
    await c.wait_type("conversation", 10.0, to="listening", event="REPLY_DONE")
    host, _ = await host_of(s)
    handle = ray.get_actor(host, namespace="vani")
    redis = vani_cluster.redis
    redis.stop()
    stopped = time.monotonic()
    try:
        await c.send_audio(utterance(0.6, 0.5, seed=2))
        m2 = await c.wait_type("assistant.message", 30.0, turn_id=2)
        assert m2["full_text"] == "Sure. You said: during the outage. Anything else?"
        deadline = time.monotonic() + 10
        while not (await handle.stats.remote())["store"]["failing"]:
            assert time.monotonic() < deadline, "the host never noticed the outage"
            await asyncio.sleep(0.2)
        await asyncio.sleep(max(0.0, 10.0 - (time.monotonic() - stopped)))
    finally:
        redis.start()  # an empty server: the host must write the session again
    deadline = time.monotonic() + 30
    while (st := (await handle.stats.remote())["store"])["failing"] or st["pending"]:
        assert time.monotonic() < deadline, f"writes never caught up: {st}"
        await asyncio.sleep(0.2)
    store = RedisStore(redis.url, prefix="vani:agent:session:", log_prefix="vani:agent:log:")
    try:
        record = SessionRecord.loads(await store.get(s))
    finally:
        await store.close()
    assert [m["content"] for m in record.engine["history"] if m["role"] == "user"] == [
        "before the outage",
        "during the outage",
    ]
    assert c.ws.close_code is None and not c.of_type("error")
    await c.send_audio(utterance(0.6, 0.5, seed=3))
    await c.wait_type("assistant.message", 30.0, turn_id=3)
    await c.close()
