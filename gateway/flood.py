"""Flood guard on the client's own timeline.

A real-time client sends one second of audio per second of wall time. The gateway counts the audio a
connection has received against the wall time since it was accepted: the client may be ahead of real
time by at most ``burst_s`` seconds of audio plus ``rate - 1`` x the elapsed time (a reconnect
replaying its buffer, a WAV upload). Past that the connection is closed with 1008.

Why received audio vs elapsed time, not a token bucket on arrival times: a server stall delays the
client's frames and then delivers them in a burst. The audio received by any moment is at most the
audio the client had sent by then, and the client cannot have sent more than real time since it
connected, so a stall can only make received audio lag; it can never push a real-time client over
the line. ``burst_s <= 0`` disables the guard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BYTES_PER_SECOND = 32000  # 16 kHz mono PCM16


@dataclass
class FloodGuard:
    burst_s: float
    rate: float
    start: float  # monotonic time the connection was accepted: before the client could send anything
    audio_s: float = field(default=0.0, init=False)

    @property
    def enabled(self) -> bool:
        return self.burst_s > 0

    def allowed_s(self, now: float) -> float:
        """Seconds of audio the client may have sent by ``now``."""
        return self.burst_s + self.rate * max(0.0, now - self.start)

    def admit(self, nbytes: int, now: float) -> bool:
        """Count ``nbytes`` of audio received at ``now``; False once the client is flooding."""
        if not self.enabled:
            return True
        self.audio_s += nbytes / BYTES_PER_SECOND
        return self.audio_s <= self.allowed_s(now)

    def reason(self) -> str:
        return f"flood: more than {self.burst_s:g} s + {self.rate:g}x real time of audio since the connection opened"
