"""Flood guard: a token bucket over seconds of audio.

A real-time client sends one second of audio per second. The bucket holds ``burst_s`` seconds and
refills at ``rate`` x real time, so a client may run ahead of real time for a while (a reconnect
replaying its buffer, a WAV upload) but one that sends much faster than real time for long empties
the bucket and is closed with 1008. ``burst_s <= 0`` disables the guard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BYTES_PER_SECOND = 32000  # 16 kHz mono PCM16


@dataclass
class FloodGuard:
    burst_s: float
    rate: float
    tokens: float = field(init=False)
    last: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst_s

    @property
    def enabled(self) -> bool:
        return self.burst_s > 0

    def admit(self, nbytes: int, now: float) -> bool:
        """Charge ``nbytes`` of audio; False once the client is flooding."""
        if not self.enabled:
            return True
        if self.last is not None:
            self.tokens = min(self.burst_s, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= nbytes / BYTES_PER_SECOND
        return self.tokens >= 0
