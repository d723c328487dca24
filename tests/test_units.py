"""Pure-Python parts of the session: ring buffer, outbound lanes, flood guard, placement, state table."""

from __future__ import annotations

import asyncio

import pytest

from vani.actors.control.placement import choose_host
from vani.actors.session.machine import STATES, InvalidEvent, SessionMachine
from vani.actors.session.outbound import CloseRequest, OutboundQueue
from vani.actors.session.ring_buffer import RingBuffer
from vani.gateway.flood import FloodGuard


def test_ring_buffer_keeps_order_across_wraparound():
    ring = RingBuffer(1000)
    out = []
    for i in range(200):
        data = bytes([i % 256]) * (37 + i % 50)
        assert ring.push(i, data, float(i))
        meta, got = ring.pop()
        assert meta.seq == i and got == data
        out.append(meta.seq)
    assert out == list(range(200)) and len(ring) == 0 and ring.used == 0


def test_ring_buffer_rejects_and_counts_overflow_without_overwriting():
    ring = RingBuffer(100)
    assert ring.push(0, b"a" * 60, 0.0)
    assert not ring.push(1, b"b" * 60, 0.0)
    assert ring.overflows == 1 and len(ring) == 1
    meta, data = ring.pop()
    assert meta.seq == 0 and data == b"a" * 60


async def test_outbound_control_lane_jumps_ahead_of_audio():
    q = OutboundQueue(cap_bytes=1000)
    await q.put_audio(b"x" * 400)
    await q.put_audio(b"y" * 400)
    q.put_control('{"type":"state"}')
    q.put_control(CloseRequest(1000, "bye"))
    assert await q.get() == '{"type":"state"}'
    assert await q.get() == CloseRequest(1000, "bye")
    assert await q.get() == b"x" * 400


async def test_outbound_audio_is_capped_and_waits_for_a_reader():
    q = OutboundQueue(cap_bytes=1000)
    await q.put_audio(b"a" * 600)
    blocked = asyncio.create_task(q.put_audio(b"b" * 600))
    await asyncio.sleep(0.05)
    assert not blocked.done() and q.audio_bytes == 600 and q.waits == 1
    assert await q.get() == b"a" * 600
    await asyncio.wait_for(blocked, 1)
    assert q.audio_bytes == 600
    assert q.clear_audio() == 1 and q.audio_bytes == 0


def test_flood_guard_allows_real_time_and_trips_on_sustained_flood():
    guard = FloodGuard(burst_s=2.0, rate=1.5, start=0.0)
    t = 0.0
    for _ in range(1000):  # 100 s of real-time 100 ms frames
        assert guard.admit(3200, t)
        t += 0.1
    flood = FloodGuard(burst_s=2.0, rate=1.5, start=0.0)
    results = [flood.admit(3200, i * 0.01) for i in range(100)]  # 10x real time
    assert all(results[:20]) and not results[-1]
    assert FloodGuard(burst_s=0, rate=1, start=0.0).admit(10**9, 0.0)


def test_rendezvous_placement_is_stable_and_moves_few_sessions():
    hosts = [f"h{i}" for i in range(4)]
    ids = [f"session-{i}" for i in range(2000)]
    before = {s: choose_host(s, hosts) for s in ids}
    assert before == {s: choose_host(s, list(reversed(hosts))) for s in ids}
    after = {s: choose_host(s, [*hosts, "h4"]) for s in ids}
    moved = [s for s in ids if before[s] != after[s]]
    assert all(after[s] == "h4" for s in moved)
    assert 0.1 < len(moved) / len(ids) < 0.3  # ~1/5 move, all to the new host
    assert choose_host("x", []) is None


class _Model:
    def __init__(self):
        self.frames = 0
        self.muted = 0
        self.changes = []

    def on_audio_frame(self, *a):
        self.frames += 1

    def on_muted_frame(self, *a):
        self.muted += 1

    def on_state_change(self, src, dst, ev):
        self.changes.append((src, ev, dst))


def test_state_machine_table_and_explicit_rejection():
    m = _Model()
    sm = SessionMachine(m, "t")
    assert sm.state == "connected"
    with pytest.raises(InvalidEvent):
        sm.fire("AUDIO_FRAME")
    sm.fire("START")
    sm.fire("AUDIO_FRAME")
    sm.fire("MUTE")
    sm.fire("AUDIO_FRAME")
    with pytest.raises(InvalidEvent) as err:
        sm.fire("MUTE")
    assert err.value.state == "muted"
    sm.fire("DISCONNECT")
    with pytest.raises(InvalidEvent):
        sm.fire("AUDIO_FRAME")
    sm.fire("RESUME")
    assert sm.state == "streaming"
    sm.fire("DISCONNECT")
    sm.fire("TIMEOUT")
    assert sm.state == "closed"
    for event in ("START", "RESUME", "CLOSE", "ERROR", "TIMEOUT"):
        with pytest.raises(InvalidEvent):
            sm.fire(event)
    assert (m.frames, m.muted) == (1, 1)
    assert m.changes == [
        ("connected", "START", "streaming"),
        ("streaming", "MUTE", "muted"),
        ("muted", "DISCONNECT", "suspended"),
        ("suspended", "RESUME", "streaming"),
        ("streaming", "DISCONNECT", "suspended"),
        ("suspended", "TIMEOUT", "closed"),
    ]
    assert set(STATES) == {"connected", "streaming", "muted", "suspended", "closed"}


async def test_provider_http_clients_share_one_tls_context():
    """Per-session clients must not each load the CA bundle (~100 ms of the host's event loop). The streaming
    client is aiohttp's (adapters/http_client.py); its connector holds the shared context."""
    from vani.adapters.http_client import ssl_context, streaming_client

    a, b = streaming_client(1.0, 1.0), streaming_client(1.0, 1.0)
    try:
        assert a.connector._ssl is ssl_context() is b.connector._ssl
    finally:
        await a.close()
        await b.close()
