"""Overload arithmetic without Ray: the flood guard on the client's timeline, and the loop-lag monitor."""

from __future__ import annotations

import asyncio
import random
import time

from vani.actors.session.loop_lag import LoopLag, behind, smooth, stale_after_s
from vani.gateway.flood import BYTES_PER_SECOND, FloodGuard

FRAME_S = 0.08
FRAME = int(FRAME_S * BYTES_PER_SECOND)  # 80 ms of PCM16


def stalled_arrivals(send_times: list[float], rng: random.Random) -> list[float]:
    """Arrival times of frames sent at ``send_times`` through a server that stalls and then bursts.

    Each frame arrives at or after it was sent, in order; stalls of up to 30 s hold everything back,
    then the backlog arrives at once.
    """
    arrivals, released_until = [], 0.0
    for sent in send_times:
        if rng.random() < 0.02:  # a stall starts: nothing arrives until it ends
            released_until = sent + rng.uniform(0.1, 30.0)
        arrivals.append(max(sent + rng.uniform(0, 0.005), released_until, arrivals[-1] if arrivals else 0.0))
    return arrivals


def test_real_time_client_is_never_flagged_whatever_the_server_stalls():
    for seed in range(200):
        rng = random.Random(seed)
        accepted = rng.uniform(0, 100)  # the gateway's accept: the client can only send after it
        first = accepted + rng.uniform(0, 2.0)  # connect latency and session set-up at the client
        sends = [first + i * FRAME_S for i in range(1500)]  # 2 minutes of real-time audio
        # The tightest guard that still lets a real-time client send its first frame.
        guard = FloodGuard(burst_s=FRAME_S, rate=1.0, start=accepted)
        for arrived in stalled_arrivals(sends, rng):
            assert guard.admit(FRAME, arrived), f"seed {seed}: real-time client flagged at {arrived - accepted:.2f} s"


def test_the_old_arrival_time_bucket_would_have_flagged_a_stall():
    # The scenario behind the 1008s of the 200-session run: 10 s stall, then the backlog at once.
    sends = [i * FRAME_S for i in range(500)]
    arrivals = [max(s, 10.0) if 2.0 <= s < 10.0 else s for s in sends]
    guard = FloodGuard(burst_s=2.0, rate=1.5, start=0.0)
    assert all(guard.admit(FRAME, t) for t in arrivals)
    # What the old token bucket on arrival times charged: 8 s of audio inside one instant, 2 s of burst.
    tokens, last, worst = 2.0, 0.0, 2.0
    for t in arrivals:
        tokens = min(2.0, tokens + (t - last) * 1.5) - FRAME_S
        last, worst = t, min(worst, tokens)
    assert worst < 0


def test_three_times_real_time_client_is_flagged_where_predicted():
    burst_s, rate, speed = 2.0, 1.25, 3.0
    guard = FloodGuard(burst_s=burst_s, rate=rate, start=0.0)
    period = FRAME_S / speed
    # Frame n (1-based) is received at (n - 1) x period; flagged once n x 80 ms > burst + rate x that time.
    predicted = next(n for n in range(1, 10_000) if n * FRAME_S > burst_s + rate * (n - 1) * period + 1e-9)
    flagged = next(n for n in range(1, 10_000) if not guard.admit(FRAME, (n - 1) * period))
    assert flagged == predicted == 43  # 80 n > 2000 + 1250 x (n - 1) x 80 / 3 ms  <=>  n > 42.1


def test_flagged_client_stays_flagged_and_stalls_only_delay_the_verdict():
    guard = FloodGuard(burst_s=1.0, rate=1.0, start=0.0)
    assert not guard.admit(2 * BYTES_PER_SECOND, 0.5)  # 2 s of audio half a second in
    assert not guard.admit(0, 0.6)
    late = FloodGuard(burst_s=1.0, rate=1.0, start=0.0)
    assert late.admit(2 * BYTES_PER_SECOND, 1.5)  # the same audio arriving later is within the line
    assert FloodGuard(burst_s=0, rate=0, start=0.0).admit(10**9, 0.0)  # 0 disables


def test_lag_smoothing_and_behind():
    lag = 0.0
    for _ in range(50):
        lag = smooth(lag, 600.0)
    assert 599 < lag <= 600  # a sustained lag converges to itself
    assert smooth(0.0, 300.0) < 100  # one 300 ms hiccup does not trip a 500 ms threshold
    assert smooth(0.0, 8000.0) >= 500  # one 8 s stall does
    assert not behind(100, reported_at=10.0, now=10.5, threshold_ms=500)
    assert behind(500, reported_at=10.0, now=10.5, threshold_ms=500)
    assert behind(0, reported_at=10.0, now=10.0 + stale_after_s(500) + 0.1, threshold_ms=500)  # silent host
    assert not behind(10_000, reported_at=0.0, now=100.0, threshold_ms=0)  # 0 disables
    replica = LoopLag()
    replica.observe(0.2)
    assert not replica.overloaded(500)
    for _ in range(10):
        replica.observe(0.8)  # waking 800 ms late, tick after tick
    assert replica.overloaded(500) and not replica.overloaded(0)


def test_loop_lag_sees_a_blocked_loop():
    async def run() -> float:
        samples: asyncio.Queue[float] = asyncio.Queue()
        mon = LoopLag(samples.put_nowait, period_s=0.05)
        mon.ensure_started()
        for _ in range(3):
            await samples.get()
        asyncio.get_running_loop().call_soon(time.sleep, 1.0)  # block the loop for a second
        await asyncio.sleep(0.02)
        after_stall = max([await samples.get() for _ in range(2)])
        await mon.stop()
        return after_stall

    # The tick that was due during the block wakes >= 0.95 s late; smoothed with ALPHA = 0.3.
    assert asyncio.run(run()) >= 0.3 * 950
