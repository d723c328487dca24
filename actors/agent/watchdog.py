"""Named timers for waiting states. A timer that runs out posts an explicit event; none fails silently.

The pipeline arms a timer when it enters a waiting state, ``kick``s it on progress (an audio frame,
an LLM token, a TTS chunk) and disarms it on leaving. Firing calls ``on_fire(name)``, which the
pipeline turns into a ``WATCHDOG`` event on its inbox (so the decision happens in the decide step,
in order with every other event).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Watchdog:
    def __init__(self, on_fire: Callable[[str], None]) -> None:
        self._on_fire = on_fire
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self.fired: deque[str] = deque(maxlen=32)  # the most recent firings (snapshot / tests)

    def arm(self, name: str, seconds: float) -> None:
        """(Re)start timer ``name``; ``seconds <= 0`` means this watchdog is off."""
        self.disarm(name)
        if seconds > 0:
            handle = asyncio.get_running_loop().call_later(seconds, self._fire, name)
            self._timers[name] = (seconds, handle)

    def kick(self, name: str) -> None:
        """Progress: restart ``name`` with its period, if armed."""
        armed = self._timers.get(name)
        if armed is not None:
            self.arm(name, armed[0])

    def disarm(self, name: str) -> None:
        armed = self._timers.pop(name, None)
        if armed is not None:
            armed[1].cancel()

    def disarm_all(self) -> None:
        for name in list(self._timers):
            self.disarm(name)

    def armed(self, name: str) -> bool:
        return name in self._timers

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        self.fired.append(name)
        self._on_fire(name)
