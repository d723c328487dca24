"""Where speech ends in a recording (shared by the local-model tests and ``load/bench_local.py``)."""

from __future__ import annotations

import numpy as np


def speech_end_s(pcm: bytes, floor_db: float = -45.0) -> float:
    """End of the last 10 ms frame louder than ``floor_db`` dBFS (a file may end in silence)."""
    a = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    frames = a[: len(a) // 160 * 160].reshape(-1, 160)
    loud = np.nonzero(np.sqrt((frames**2).mean(axis=1)) > 32768 * 10 ** (floor_db / 20))[0]
    return float((loud[-1] + 1) * 0.01)
