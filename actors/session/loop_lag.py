"""Event-loop lag: how far behind real time a process is, for admission by load.

A periodic task sleeps ``period_s`` and measures how late it wakes up. A process whose loop is
starved (more sessions than its CPU share can serve, a stall) wakes late on every tick; the
exponentially smoothed lateness is its lag. A single GC pause or a burst barely moves it; a
sustained lag or a multi-second stall does. Session hosts report it to the registry every tick;
gateway replicas check their own before admitting a new session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

PERIOD_S = 0.5  # also how often hosts report their lag to the registry
ALPHA = 0.3  # weight of the newest sample: ~1.5 s time constant at PERIOD_S
MIN_STALE_S = 3.0


def smooth(previous_ms: float, sample_ms: float, alpha: float = ALPHA) -> float:
    return previous_ms + alpha * (sample_ms - previous_ms)


def stale_after_s(threshold_ms: float) -> float:
    """How long a host may go without reporting before it counts as behind (its loop cannot report)."""
    return max(MIN_STALE_S, 6 * threshold_ms / 1000.0)


def behind(lag_ms: float, reported_at: float, now: float, threshold_ms: float) -> bool:
    """Whether a host that reported ``lag_ms`` at ``reported_at`` is too far behind to take new sessions."""
    if threshold_ms <= 0:
        return False
    return lag_ms >= threshold_ms or now - reported_at > stale_after_s(threshold_ms)


class LoopLag:
    """Measures this process's event-loop lag; ``on_sample(lag_ms)`` is called after every tick."""

    def __init__(self, on_sample: Callable[[float], None] = lambda lag_ms: None, period_s: float = PERIOD_S) -> None:
        self.period_s = period_s
        self.on_sample = on_sample
        self.lag_ms = 0.0
        self._task: asyncio.Task | None = None

    def observe(self, late_s: float) -> float:
        self.lag_ms = smooth(self.lag_ms, max(0.0, late_s) * 1000.0)
        return self.lag_ms

    def overloaded(self, threshold_ms: float) -> bool:
        return threshold_ms > 0 and self.lag_ms >= threshold_ms

    def ensure_started(self) -> None:
        """Start the ticking task on the running loop (idempotent; restarts it if it died)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.period_s)
            self.on_sample(self.observe(loop.time() - before - self.period_s))
