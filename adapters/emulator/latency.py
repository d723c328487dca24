"""The latency model: defaults close to published numbers, overridable per connection.

Flux end-of-turn is measured on the *audio* clock (silence received after speech), so it is exact
whatever the network; LLM and TTS delays are wall-clock sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Latency:
    eot_ms: float = 260.0  # silence after speech before EndOfTurn at eot_threshold 0.7
    update_ms: float = 250.0  # Flux Update cadence during a turn (audio clock)
    ttft_ms: float = 200.0  # LLM time to first token
    tokens_per_s: float = 60.0  # LLM token rate after the first
    ttfb_ms: float = 150.0  # TTS time to first audio byte
    rtf: float = 0.15  # TTS real-time factor: seconds spent per second of audio after the first chunk
    chunk_ms: float = 40.0  # TTS audio chunk duration

    def override(self, values: dict[str, Any] | str | None) -> Latency:
        """Apply ``{"ttft_ms": 50}`` or ``"ttft_ms=50;rtf=0.1"``; unknown names raise ``ValueError``."""
        if not values:
            return self
        if isinstance(values, str):
            pairs = [p.partition("=") for p in values.replace(",", ";").split(";") if p.strip()]
            values = {k.strip(): v for k, _, v in pairs}
        known = {f.name for f in fields(Latency)}
        bad = set(values) - known
        if bad:
            raise ValueError(f"unknown latency field(s): {', '.join(sorted(bad))}")
        return replace(self, **{k: float(v) for k, v in values.items()})
