"""Real-time duplex audio streams with loss/order checking and echo RTT, shared by load scripts and tests.

Every frame carries its own sequence number (first 4 bytes, the same layout as ``tests/audio_frames.py``)
and the sender's ``perf_counter_ns`` (next 8 bytes), so the echo alone tells us what was lost, what came
back out of order and how long the round trip took: no per-frame bookkeeping on the sending side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

HEADER = struct.Struct(">IQ")  # seq, perf_counter_ns at send
BYTES_PER_MS = 32  # 16 kHz x 2 bytes PCM16 mono


def frame_bytes(frame_ms: float) -> int:
    """PCM16 16 kHz byte count of a ``frame_ms`` chunk (even, at least the header)."""
    n = round(frame_ms * BYTES_PER_MS)
    return max(HEADER.size + (HEADER.size % 2), n - n % 2)


def stamped_frame(seq: int, nbytes: int) -> bytes:
    """``nbytes`` of PCM whose head is ``(seq, now_ns)``; the rest is a cheap, seq-dependent filler."""
    head = HEADER.pack(seq, time.perf_counter_ns())
    return head + bytes([seq % 251]) * (nbytes - HEADER.size)


def read_stamp(frame: bytes) -> tuple[int, int]:
    return HEADER.unpack_from(frame)


@dataclass
class StreamResult:
    """What one session saw. ``lost``/``reordered``/``duplicates`` are the correctness verdict."""

    session_id: str
    sent: int = 0
    received: int = 0
    reordered: int = 0  # echoes whose seq is below one already seen
    duplicates: int = 0
    corrupt: int = 0  # echo differs from what was sent (filler mismatch or short frame)
    rtt_ms: list[float] = field(default_factory=list)
    start_ms: float | None = None  # connect -> session.started
    late_sends: int = 0  # frames sent > 1 frame late (the load generator fell behind)
    error: str | None = None
    close_code: int | None = None

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def ok(self) -> bool:
        clean = self.lost == 0 and self.reordered == 0 and self.duplicates == 0 and self.corrupt == 0
        return self.error is None and clean


@dataclass
class StreamSpec:
    """How to stream: frame size, duration, pacing, and whether the far end speaks the vani protocol."""

    frame_ms: float = 80.0
    seconds: float = 20.0
    realtime: bool = True  # pace at one frame per frame_ms; False = back-to-back (one in flight)
    vani: bool = True  # expect session.started first and send {"type": "close"} at the end
    drain_s: float = 10.0  # how long to wait for the last echoes
    open_timeout_s: float = 30.0


async def stream_session(url: str, session_id: str, spec: StreamSpec) -> StreamResult:
    """Stream ``spec.seconds`` of numbered frames to ``url`` and check every echo that comes back."""
    res = StreamResult(session_id)
    nbytes = frame_bytes(spec.frame_ms)
    total = max(1, int(spec.seconds * 1000 / spec.frame_ms))
    t_connect = time.perf_counter()
    try:
        # ping_timeout=None: a late pong (queued behind backpressured audio) must not close a live session.
        ws = await connect(url, max_size=1 << 20, compression=None, open_timeout=spec.open_timeout_s, ping_timeout=None)
    except Exception as exc:
        res.error = f"connect: {exc!r}"
        return res
    try:
        if spec.vani:
            first = json.loads(await asyncio.wait_for(ws.recv(), spec.open_timeout_s))
            if first.get("type") != "session.started":
                res.error = f"first message {first.get('type')!r}"
                return res
        res.start_ms = (time.perf_counter() - t_connect) * 1000
        done = asyncio.Event()
        echoed = asyncio.Event()  # back-to-back mode: the previous frame is back
        receiver = asyncio.create_task(_receive(ws, res, nbytes, total, done, echoed))
        try:
            await _send(ws, res, spec, nbytes, total, echoed, receiver)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), spec.drain_s)
        finally:
            receiver.cancel()
            with contextlib.suppress(BaseException):
                await receiver
        if spec.vani:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps({"type": "close"}))
    except ConnectionClosed as exc:
        res.error = f"closed: {exc.rcvd.code if exc.rcvd else 1006}"
    except Exception as exc:
        res.error = repr(exc)
    finally:
        await ws.close()
        res.close_code = ws.close_code
    return res


async def _send(
    ws: Any, res: StreamResult, spec: StreamSpec, nbytes: int, total: int, echoed: asyncio.Event, receiver: asyncio.Task
) -> None:
    period = spec.frame_ms / 1000.0
    t0 = time.perf_counter()
    for seq in range(total):
        if receiver.done():  # connection died; the receiver recorded why
            exc = receiver.exception()
            if exc is not None:
                raise exc
            return
        if spec.realtime:
            # Absolute schedule: a late frame does not push the following ones back.
            delay = t0 + seq * period - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > period:
                res.late_sends += 1
        else:
            echoed.clear()
        await ws.send(stamped_frame(seq, nbytes))
        res.sent += 1
        if not spec.realtime:
            await asyncio.wait_for(echoed.wait(), spec.drain_s)


async def _receive(
    ws: Any, res: StreamResult, nbytes: int, total: int, done: asyncio.Event, echoed: asyncio.Event
) -> None:
    highest = -1
    seen: set[int] = set()
    async for msg in ws:
        if not isinstance(msg, bytes):
            event = json.loads(msg)
            if event.get("type") in ("error",) and event.get("code") == "session_failed":
                raise RuntimeError(f"session failed: {event.get('message')}")
            continue
        now = time.perf_counter_ns()
        if len(msg) != nbytes:
            res.corrupt += 1
            continue
        seq, sent_ns = read_stamp(msg)
        if msg[HEADER.size :] != bytes([seq % 251]) * (nbytes - HEADER.size):
            res.corrupt += 1
            continue
        if seq in seen:
            res.duplicates += 1
            continue
        seen.add(seq)
        if seq < highest:
            res.reordered += 1
        highest = max(highest, seq)
        res.received += 1
        res.rtt_ms.append((now - sent_ns) / 1e6)
        echoed.set()
        if res.received >= total:
            done.set()


async def run_sessions(
    url_for: Any, n: int, spec: StreamSpec, ramp_s: float = 2.0, prefix: str = "load"
) -> list[StreamResult]:
    """Run ``n`` sessions concurrently; connects are spread over ``ramp_s`` (no thundering herd).

    ``url_for(session_id) -> str`` builds each session's URL.
    """

    async def one(i: int) -> StreamResult:
        await asyncio.sleep(ramp_s * i / max(1, n))
        sid = f"{prefix}-{i}-{time.monotonic_ns() % 10**9}"
        return await stream_session(url_for(sid), sid, spec)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def echo_sessions(base: str, n: int, spec: StreamSpec, ramp_s: float) -> list[StreamResult]:
    """``n`` echo sessions against vani at ``base`` (``ws://host:port``), each on ``/v1/sessions/{id}``."""
    return await run_sessions(lambda sid: f"{base}/v1/sessions/{sid}", n, spec, ramp_s=ramp_s)


def add_stream_args(p: argparse.ArgumentParser, sessions: int) -> None:
    """The options every echo-stream script takes: how many sessions, the frame size, and which vani."""
    p.add_argument("--sessions", type=int, default=sessions)
    p.add_argument("--frame-ms", type=float, default=80.0)
    p.add_argument("--url", help="target a running vani (ws://host:port) instead of starting one")


def verdict(results: list[StreamResult]) -> dict[str, int]:
    """Totals of the correctness counters over all sessions."""
    return {
        "sessions": len(results),
        "failed_sessions": sum(1 for r in results if not r.ok),
        "errors": sum(1 for r in results if r.error),
        "sent": sum(r.sent for r in results),
        "received": sum(r.received for r in results),
        "lost": sum(r.lost for r in results),
        "reordered": sum(r.reordered for r in results),
        "duplicates": sum(r.duplicates for r in results),
        "corrupt": sum(r.corrupt for r in results),
        "late_sends": sum(r.late_sends for r in results),
    }
