"""What a session host tells Ray's metrics, batched off the hot path.

Per-frame work is a Python integer: inbound frames are counted by the host's link loop (``frames_in``);
outbound frames and backpressure waits are the sessions' own counters (``Counters.frames_out``,
``ring_waits``, ``OutboundQueue.waits``), read as deltas on the host's lag tick (every 0.5 s) and once more
when a session leaves, so every mode (echo, agent, flux) is counted and nothing is recorded per frame. A Ray
metric record per frame was ~1 % of a host's CPU at 100 agent sessions.

Every 5 s: the host's RSS, its sessions (all, and by session state) and an estimate of memory per session
(the RSS above the host's RSS when it last held no session, over its sessions).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Protocol

from vani.actors.metrics import session_metrics, set_process_host
from vani.actors.session.machine import STATES  # each reported, at 0 too, so a state's gauge goes down

REPORT_EVERY_S = 5.0


class Watched(Protocol):
    """What is read of a session (``actors/session/session.py``)."""

    state: str
    counters: Any
    outbound: Any


class HostMetrics:
    def __init__(self, host: str) -> None:
        set_process_host(host)
        self.m = session_metrics()
        self.tags = {"host": host}
        self.host = host
        self.frames_in = 0  # added to by the host's link loop
        self._seen: dict[int, tuple[int, int, int]] = {}  # id(session) -> frames_out, ring waits, outbound waits
        self._idle_rss: int | None = None

    def track(self, session: Watched) -> None:
        """A new session: its counters so far (a restored session brings its old ones) are not this host's."""
        self._seen[id(session)] = _reading(session)

    def untrack(self, session: Watched) -> None:
        self._add(session)
        self._seen.pop(id(session), None)

    def flush(self, sessions: dict[str, Any]) -> None:
        """The lag tick: counters since the last one."""
        for s in sessions.values():
            self._add(s)
        if self.frames_in:
            self.m.frames_in.inc(self.frames_in, tags=self.tags)
            self.frames_in = 0

    def _add(self, session: Watched) -> None:
        before = self._seen.get(id(session))
        if before is None:
            return
        now = _reading(session)
        self._seen[id(session)] = now
        out, ring, queue = (a - b for a, b in zip(now, before, strict=True))
        if out > 0:  # Ray's counters take > 0 only
            self.m.frames_out.inc(out, tags=self.tags)
        if ring > 0:
            self.m.backpressure_waits.inc(ring, tags={**self.tags, "where": "inbound"})
        if queue > 0:
            self.m.backpressure_waits.inc(queue, tags={**self.tags, "where": "outbound"})

    def echoed(self, lateness_s: float) -> None:
        self.m.added_latency_ms.observe(lateness_s * 1000.0, tags={**self.tags, "mode": "echo"})

    def stored(self, writes: int, size: int) -> None:
        if writes:  # Ray's counters take > 0 only
            self.m.store_writes.inc(writes, tags=self.tags)
        if size:
            self.m.store_bytes.inc(size, tags=self.tags)

    def store_error(self, op: str) -> None:
        self.m.store_errors.inc(tags={**self.tags, "op": op})

    def dropped(self, reason: str) -> None:
        self.m.frames_dropped.inc(tags={**self.tags, "reason": reason})

    def report(self, sessions: dict[str, Any]) -> None:
        """Gauges: sessions (all and by state), RSS, memory per session."""
        n = len(sessions)
        self.m.active_sessions.set(n, tags=self.tags)
        by_state = Counter(s.state for s in sessions.values())
        for state in {*STATES, *by_state}:
            self.m.sessions_by_state.set(by_state.get(state, 0), tags={**self.tags, "state": state})
        rss = self.m.record_rss(self.host)
        if n == 0:
            self._idle_rss = rss
        per_session = 0 if n == 0 or self._idle_rss is None else max(0, rss - self._idle_rss) // n
        self.m.session_memory_bytes.set(per_session, tags=self.tags)

    async def report_forever(self, sessions: dict[str, Any]) -> None:
        while True:  # re-reported so the exporter always has a fresh value
            self.report(sessions)
            await asyncio.sleep(REPORT_EVERY_S)


def _reading(session: Watched) -> tuple[int, int, int]:
    c = session.counters
    return c.frames_out, c.ring_waits, session.outbound.waits
