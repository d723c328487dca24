"""Named timers for waiting states. A timer that runs out posts an explicit event; none fails silently.

The conversation arms a timer when it enters a waiting state, ``kick``s it on progress (an audio frame,
an LLM token, a TTS chunk) and disarms it on leaving. Firing calls ``on_fire(name)``, which the engine
turns into a ``WATCHDOG`` event on its inbox (so the decision happens in the decide step, in order with
every other event). Time comes from the session's clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from vani.actors.clock import Clock, Timer


class Watchdog:
    """Kicks are cheap: a kick only moves the timer's deadline (one per inbound audio frame); the one clock timer
    of a watchdog, when it runs out early, re-arms itself for what is left instead of being replaced per kick."""

    def __init__(self, on_fire: Callable[[str], None], clock: Clock) -> None:
        self._on_fire = on_fire
        self._clock = clock
        self._timers: dict[str, _Armed] = {}
        self.fired: deque[str] = deque(maxlen=32)  # the most recent firings (snapshot)

    def arm(self, name: str, seconds: float) -> None:
        """(Re)start timer ``name``; ``seconds <= 0`` means this watchdog is off."""
        self.disarm(name)
        if seconds > 0:
            deadline = self._clock.now() + seconds
            self._timers[name] = _Armed(seconds, deadline, self._clock.call_later(seconds, self._due, name))

    def kick(self, name: str) -> None:
        """Progress: restart ``name`` with its period, if armed."""
        armed = self._timers.get(name)
        if armed is not None:
            armed.deadline = self._clock.now() + armed.period

    def disarm(self, name: str) -> None:
        armed = self._timers.pop(name, None)
        if armed is not None:
            armed.timer.cancel()

    def disarm_all(self) -> None:
        for name in list(self._timers):
            self.disarm(name)

    def armed(self, name: str) -> bool:
        return name in self._timers

    def _due(self, name: str) -> None:
        armed = self._timers.get(name)
        if armed is None:
            return
        left = armed.deadline - self._clock.now()
        if left > 1e-9:  # kicked since: wait for the rest of the period
            armed.timer = self._clock.call_later(left, self._due, name)
            return
        del self._timers[name]
        self.fired.append(name)
        self._on_fire(name)


@dataclass
class _Armed:
    period: float
    deadline: float
    timer: Timer
