"""Sessions on the embedded models past a node's capacity get a clear 1013; the running ones are untouched.

``/localcap`` runs the embedded offline models and takes one session per node (``local_max_sessions_per_node=1``)
on the suite's 2-node cluster, so the third session has no node to go to.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import ray

from tests.local.conftest import read_wav
from vani.actors.control.local_capacity import REASON
from vani.client.session_client import SessionRefused, VaniSession

APP = "localcap"


def sid() -> str:
    return f"cap-{uuid.uuid4().hex[:12]}"


async def connect(url: str) -> VaniSession:
    return await VaniSession.connect(url, sid(), open_timeout=60)


async def test_a_session_past_the_nodes_capacity_gets_1013_and_the_running_ones_go_on(vani_cluster):
    url = vani_cluster.url(APP)
    registry = ray.get_actor(f"{APP}-registry", namespace="vani")
    first, second = await connect(url), await connect(url)
    try:
        nodes = {(await registry.where.remote(s.session_id))["node_id"] for s in (first, second)}
        assert len(nodes) == 2  # a full node sends the next session to the other one
        status = await registry.status.remote()
        assert set(status["local_capacity"].values()) == {1}

        with pytest.raises(SessionRefused) as refused:
            await connect(url)
        assert (refused.value.code, refused.value.reason) == (1013, REASON)
        assert (await registry.status.remote())["sessions"] == 2

        # The refusal touched neither running session: both still answer, and one still hears speech.
        for s in (first, second):
            await s.ping(5)
            assert (await s.recv_event("pong", timeout=30))["id"] == 5
        pcm = read_wav("booking_espeak.wav") + bytes(2 * 16000 * 3)
        for i in range(0, len(pcm), 8192):
            await first.send_audio(pcm[i : i + 8192])
        start = await first.recv_event("TurnInfo", timeout=120, event="StartOfTurn")
        assert start["turn_index"] == 0
    finally:
        await first.close()
    # A freed place takes a new session (once the closed one is released).
    deadline = time.monotonic() + 30
    while True:
        try:
            third = await connect(url)
            break
        except SessionRefused as exc:
            assert exc.code == 1013 and time.monotonic() < deadline, exc
            await asyncio.sleep(0.5)
    await third.close()
    await second.close()
