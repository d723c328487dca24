"""Chaos (a) of issue 13 at its full size: a session host killed with SIGKILL while 20 agent sessions stream
audio in real time and 5 of them are mid-reply.

On the shared 2-node cluster's /agent app (provider emulators, Redis store), whose two hosts share the 20
sessions. Every session on the killed host comes back on its resume token with ``recovered: true`` and its
history (a session killed mid-reply is told what was heard of that turn, and its next answer is asked with
every earlier turn); every session on the other host is never told anything, its reply in flight ends
whole, and it loses no inbound byte (its host's count equals what its client sent).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from websockets.exceptions import ConnectionClosed

from tests.adapters.audio import chunks, silence
from tests.agent_helpers import CLIENT_CHUNK, AgentClient, emulator_log, script, utterance
from tests.test_recovery import closed, host_of, reconnect, sid, url

SESSIONS, MID_REPLY = 20, 5
SILENCE = silence(CLIENT_CHUNK / 32000)  # one 256 ms chunk
TRANSCRIPTS = ["hello there", "tell me about the menu", "thank you"]


class Streamer:
    """One client's audio in real time: silence, or an utterance in its place when asked."""

    def __init__(self, client: AgentClient) -> None:
        self.client = client
        self.sent = 0
        self.queue: list[bytes] = []
        self.task = asyncio.get_running_loop().create_task(self._run())

    def say(self, pcm: bytes) -> None:
        self.queue.extend(chunks(pcm, CLIENT_CHUNK))

    async def _run(self) -> None:
        due = time.monotonic()
        while True:
            chunk = self.queue.pop(0) if self.queue else SILENCE
            try:
                await self.client.ws.send(chunk)
            except ConnectionClosed:
                return
            self.sent += len(chunk)
            due += 0.256
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def host_stats(name: str) -> dict:
    import ray

    return await ray.get_actor(name, namespace="vani").stats.remote()


async def until_written(host: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (await host_stats(host))["store"]["pending"]:
        assert time.monotonic() < deadline, "checkpoints were never written"
        await asyncio.sleep(0.05)


async def test_a_host_killed_under_20_streaming_sessions_5_mid_reply(vani_cluster, provider_emulator):
    ids = [sid() for _ in range(SESSIONS)]
    await asyncio.gather(*(script(provider_emulator, s, transcripts=TRANSCRIPTS) for s in ids))
    clients = dict(
        zip(ids, await asyncio.gather(*(AgentClient.connect(url(vani_cluster, s)) for s in ids)), strict=True)
    )
    streams = {s: Streamer(c) for s, c in clients.items()}
    hosts = dict(zip(ids, [h for h, _ in await asyncio.gather(*(host_of(s) for s in ids))], strict=True))
    by_host: dict[str, list[str]] = {}
    for s, h in hosts.items():
        by_host.setdefault(h, []).append(s)
    assert len(by_host) == 2, {h: len(v) for h, v in by_host.items()}  # the app's two hosts share them
    victim = max(by_host, key=lambda h: len(by_host[h]))
    survivor = next(h for h in by_host if h != victim)
    doomed, spared = by_host[victim], by_host[survivor]
    # 1. Every session has a first turn.
    for s in ids:
        streams[s].say(utterance(0.6, 0.5, seed=1))
    await asyncio.gather(
        *(clients[s].wait_type("conversation", 60.0, to="listening", event="REPLY_DONE", turn_id=1) for s in ids)
    )
    # 2. Five start a second turn (some on each host) and the host dies while they are hearing its reply.
    mid = doomed[: MID_REPLY - min(2, len(spared))] + spared[:2]
    mid = (mid + [s for s in doomed if s not in mid])[:MID_REPLY]
    for s in mid:
        streams[s].say(utterance(0.8, 0.5, seed=2))
    await asyncio.gather(*(clients[s].wait_type("audio.start", 60.0, turn_id=2) for s in mid))
    await until_written(victim)  # what was heard so far is in the store (a piece is the unit)
    assert all(not clients[s].of_type("conversation", event="REPLY_DONE", turn_id=2) for s in mid), "not mid-reply"
    _, pid = await host_of(doomed[0])
    os.kill(pid, signal.SIGKILL)

    # 3. Every session of the killed host: session_lost + 1011, then back with its history.
    codes = await asyncio.gather(*(closed(clients[s]) for s in doomed))
    assert set(codes) == {1011}, codes
    assert all(any(e.get("code") == "session_lost" for e in clients[s].of_type("error")) for s in doomed)
    for s in doomed:
        await streams[s].stop()
    tokens = {s: clients[s].first["resume_token"] for s in doomed}
    back = dict(
        zip(doomed, await asyncio.gather(*(reconnect(vani_cluster, s, tokens[s]) for s in doomed)), strict=True)
    )
    for s, c in back.items():
        assert c.first["resumed"] is True and c.first["recovered"] is True, c.first
        if s in mid:
            interrupted = c.first["interrupted_turn"]
            assert (interrupted["turn_id"], interrupted["user_transcript"]) == (2, "tell me about the menu")
        else:
            assert "interrupted_turn" not in c.first
    resumed = {s: Streamer(c) for s, c in back.items()}
    for s in doomed:
        resumed[s].say(utterance(0.6, 0.5, seed=3))
    answers = await asyncio.gather(
        *(back[s].wait_type("assistant.message", 60.0, turn_id=3 if s in mid else 2) for s in doomed)
    )
    for s, answer in zip(doomed, answers, strict=True):
        said = TRANSCRIPTS[2] if s in mid else TRANSCRIPTS[1]
        assert answer["full_text"] == f"Sure. You said: {said}. Anything else?"
        requests = [
            e for e in await emulator_log(provider_emulator, s) if e["service"] == "llm" and e["event"] == "request"
        ]
        # asked with every earlier turn: a mid-reply one's interrupted answer included
        earlier = ["user", "assistant", "user", "assistant"] if s in mid else ["user", "assistant"]
        assert requests[-1]["roles"] == ["system", *earlier, "user"], (s, requests[-1])

    # 4. The other host's sessions were never touched: replies in flight end whole, no byte lost.
    for s in spared:
        c = clients[s]
        if s in mid:
            end = await c.wait_type("audio.end", 30.0, turn_id=2)
            assert c.indexes[2] == list(range(end["chunks"])), "the reply's audio lost or repeated a frame"
        assert c.ws.close_code is None and not c.of_type("error") and not c.violations, s
    for s in spared:
        await streams[s].stop()
    await asyncio.sleep(1.0)  # the last chunks reach the host
    counted = {x["session_id"]: x["counters"]["bytes_in"] for x in (await host_stats(survivor))["sessions"]}
    assert {s: counted.get(s) for s in spared} == {s: streams[s].sent for s in spared}
    for s in doomed:
        await resumed[s].stop()
    await asyncio.gather(*(c.close() for c in [*back.values(), *(clients[s] for s in spared)]))
