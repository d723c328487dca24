"""One clock per session: monotonic time, timers and sleeps, injected wherever a decision reads time.

Everything in a session that asks "what time is it" or "wake me later" (the TTL, watchdogs, audio pacing,
the audio clock's arrival stamps, the pause timer) goes through a ``Clock``, never ``time.monotonic`` or
``loop.call_later`` directly. Production uses ``LoopClock``; tests (and a replay of a recorded session)
use ``ManualClock``, which moves only when told to, so a conversation can be driven step by step.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` once, ``delay`` seconds from now (on the event loop)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The real clock: ``time.monotonic`` and the running asyncio loop's timers."""

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, delay), fn, *args)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class _ManualTimer:
    def __init__(self, clock: ManualClock, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._clock, self.fn, self.args = clock, fn, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only on ``advance``: due timers fire and sleepers wake in time order.

    ``await clock.advance(dt)`` lets the woken tasks run (a few loop turns) before it returns, so a test
    reads the state after everything that was due has happened.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._due: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        timer = _ManualTimer(self, fn, args)
        heapq.heappush(self._due, (self._now + max(0.0, delay), next(self._seq), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woke = asyncio.get_running_loop().create_future()
        timer = self.call_later(seconds, lambda: woke.done() or woke.set_result(None))
        try:
            await woke
        finally:
            timer.cancel()

    async def advance(self, seconds: float, settle: int = 20) -> None:
        """Move time forward by ``seconds``, firing what falls due, in order."""
        end = self._now + seconds
        await settle_loop(settle)
        while self._due and self._due[0][0] <= end:
            at, _, timer = heapq.heappop(self._due)
            if timer.cancelled:
                continue
            self._now = max(self._now, at)
            timer.fn(*timer.args)
            await settle_loop(settle)
        self._now = end
        await settle_loop(settle)

    @property
    def pending(self) -> int:
        return sum(not t.cancelled for _, _, t in self._due)


async def settle_loop(turns: int = 20) -> None:
    """Let ready tasks run: ``turns`` passes of the event loop with no real time passing."""
    for _ in range(turns):
        await asyncio.sleep(0)
