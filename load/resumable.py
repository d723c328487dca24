"""A real-time numbered-frame echo stream that survives a dropped connection by resuming its session.

Like ``load/streams.py::stream_session`` (same stamped frames, same lost / reordered / duplicate / corrupt
checks), but when the connection drops mid-stream the client reconnects to the same session id with its
resume token and streams on from the next frame. Every reconnect's ``session.started`` must say
``resumed: true`` for the same session id. Frames already handed to the dead connection may be lost (they
died with it); echoes the host queued while the session was suspended are delivered on the new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from load.streams import HEADER, frame_bytes, read_stamp, stamped_frame


@dataclass
class ResumableResult:
    session_id: str
    gateways: list[str] = field(default_factory=list)  # the replica of each connection, in order
    drops: list[int] = field(default_factory=list)  # close code of each dropped connection
    resumes: list[bool] = field(default_factory=list)  # `resumed` of each reconnect's session.started
    resume_ms: list[float] = field(default_factory=list)  # drop -> session.started again
    failed_connects: int = 0  # attempts that got no session (retried until reconnect_s)
    sent: int = 0
    received: int = 0
    reordered: int = 0
    duplicates: int = 0
    corrupt: int = 0
    error: str | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def resumed_ok(self) -> bool:
        return len(self.resumes) == len(self.drops) and all(self.resumes)

    @property
    def clean(self) -> bool:
        """No reordering, duplicates or corruption, whatever the connection did."""
        return self.error is None and self.reordered == 0 and self.duplicates == 0 and self.corrupt == 0

    def summary(self) -> dict[str, Any]:
        keys = ("session_id", "gateways", "drops", "resumes", "resume_ms", "failed_connects", "sent", "received")
        return {k: getattr(self, k) for k in keys} | {
            "lost": self.lost,
            "reordered": self.reordered,
            "duplicates": self.duplicates,
            "corrupt": self.corrupt,
            "error": self.error,
        }


class _Checker:
    """Checks echoed frames across connections (seq numbers are the client's own, so they span resumes)."""

    def __init__(self, res: ResumableResult, nbytes: int) -> None:
        self.res, self.nbytes, self.highest, self.seen = res, nbytes, -1, set[int]()

    def frame(self, msg: bytes) -> None:
        res = self.res
        seq, _sent_ns = read_stamp(msg) if len(msg) >= HEADER.size else (-1, 0)
        if len(msg) != self.nbytes or msg[HEADER.size :] != bytes([seq % 251]) * (self.nbytes - HEADER.size):
            res.corrupt += 1
        elif seq in self.seen:
            res.duplicates += 1
        else:
            self.seen.add(seq)
            res.reordered += seq < self.highest
            self.highest = max(self.highest, seq)
            res.received += 1


async def _open(
    url: str, sid: str, token: str | None, res: ResumableResult, deadline: float
) -> tuple[ClientConnection, str]:
    """Connect (resuming with ``token`` if given) until ``session.started``; retried until ``deadline``."""
    query = f"?resume_token={token}" if token else ""
    while True:
        try:
            ws = await connect(f"{url}/v1/sessions/{sid}{query}", open_timeout=10, ping_timeout=None, compression=None)
            started = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if started.get("type") == "session.started":
                break
            await ws.close()
        except (OSError, TimeoutError, ConnectionClosed, InvalidStatus):
            pass
        res.failed_connects += 1
        if time.monotonic() > deadline:
            raise TimeoutError(f"no session within the reconnect window ({res.failed_connects} attempts)")
        await asyncio.sleep(0.25)
    if started.get("session_id") != sid:
        raise RuntimeError(f"asked for {sid}, got {started.get('session_id')}")
    res.gateways.append(str(started.get("gateway")))
    if token:
        res.resumes.append(bool(started.get("resumed")))
    return ws, started["resume_token"]


async def _receive(ws: ClientConnection, checker: _Checker, total: int, done: asyncio.Event) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for msg in ws:
            if isinstance(msg, bytes):
                checker.frame(msg)
                if checker.res.received >= total:
                    done.set()


async def resumable_stream(
    url: str,
    res: ResumableResult,
    frame_ms: float = 80.0,
    seconds: float = 20.0,
    reconnect_s: float = 30.0,
    drain_s: float = 10.0,
) -> ResumableResult:
    """Stream ``seconds`` of real-time frames on session ``res.session_id`` at ``url`` (``ws://host:port``),
    resuming after every dropped connection. The caller owns ``res``, so it can watch a running stream:
    ``res.started`` is set once the first connection is up (or the stream failed), ``res.gateways[0]``
    is the replica it reached."""
    sid = res.session_id
    nbytes, period = frame_bytes(frame_ms), frame_ms / 1000.0
    total = max(1, int(seconds / period))
    checker, done = _Checker(res, nbytes), asyncio.Event()
    token: str | None = None
    try:
        ws, token = await _open(url, sid, None, res, time.monotonic() + reconnect_s)
        res.started.set()
        t0 = time.perf_counter()
        while True:
            receiver = asyncio.create_task(_receive(ws, checker, total, done))
            sender = asyncio.create_task(_send(ws, res, nbytes, total, t0, period))
            await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            if sender.done() and sender.exception() is None:  # all sent: wait for the last echoes
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), drain_s)
                receiver.cancel()
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(json.dumps({"type": "close"}))
                await ws.close()
                return res
            # The connection dropped (the receiver ended or a send failed): resume on a new one.
            for t in (sender, receiver):
                t.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)
            res.drops.append(ws.close_code or 1006)
            t_drop = time.perf_counter()
            ws, _ = await _open(url, sid, token, res, time.monotonic() + reconnect_s)
            res.resume_ms.append(round((time.perf_counter() - t_drop) * 1000, 1))
    except Exception as exc:
        res.error = repr(exc)
    finally:
        res.started.set()  # never leave a waiter hanging, even on failure
    return res


async def _send(ws: ClientConnection, res: ResumableResult, nbytes: int, total: int, t0: float, period: float) -> None:
    """Frames ``res.sent`` .. ``total`` on their absolute schedule (frames due during a reconnect go at once)."""
    while res.sent < total:
        delay = t0 + res.sent * period - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await ws.send(stamped_frame(res.sent, nbytes))
        res.sent += 1
