"""Ray metrics for sessions (exported by Ray's metrics agent; Prometheus names get a ``ray_`` prefix).

One instance per process, created lazily, so importing this module outside Ray is free.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import psutil
from ray.util import metrics as rm

LATENCY_BOUNDS_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]


@dataclass
class SessionMetrics:
    active_sessions: rm.Gauge
    frames_in: rm.Counter
    frames_out: rm.Counter
    frames_dropped: rm.Counter
    backpressure_waits: rm.Counter
    closes: rm.Counter
    added_latency_ms: rm.Histogram
    host_rss_bytes: rm.Gauge
    loop_lag_ms: rm.Gauge
    store_writes: rm.Counter
    store_bytes: rm.Counter
    store_errors: rm.Counter
    recoveries: rm.Counter

    def record_rss(self, host: str) -> None:
        self.host_rss_bytes.set(psutil.Process(os.getpid()).memory_info().rss, tags={"host": host})


@functools.cache
def session_metrics() -> SessionMetrics:
    return SessionMetrics(
        active_sessions=rm.Gauge(
            "vani_active_sessions", "Sessions held by a host (live or suspended)", tag_keys=("host",)
        ),
        frames_in=rm.Counter("vani_frames_in", "Audio frames received from clients", tag_keys=("host",)),
        frames_out=rm.Counter("vani_frames_out", "Audio frames sent to clients", tag_keys=("host",)),
        frames_dropped=rm.Counter(
            "vani_frames_dropped", "Frames discarded (muted, duplicate, session closed)", tag_keys=("host", "reason")
        ),
        backpressure_waits=rm.Counter(
            "vani_backpressure_waits",
            "Times a session paused reading or echoing for lack of space",
            tag_keys=("host", "where"),
        ),
        closes=rm.Counter("vani_closes", "Client connections closed, by close code", tag_keys=("code",)),
        added_latency_ms=rm.Histogram(
            "vani_added_latency_ms",
            "Time a frame spent in vani beyond the configured echo delay",
            boundaries=LATENCY_BOUNDS_MS,
            tag_keys=("host",),
        ),
        host_rss_bytes=rm.Gauge("vani_host_rss_bytes", "Resident memory of a session host", tag_keys=("host",)),
        loop_lag_ms=rm.Gauge(
            "vani_loop_lag_ms",
            "Smoothed event-loop lag of a session host or gateway replica (admission by load)",
            tag_keys=("process",),
        ),
        store_writes=rm.Counter(
            "vani_store_writes", "Session checkpoints written to the session store", tag_keys=("host",)
        ),
        store_bytes=rm.Counter("vani_store_bytes", "Bytes of session checkpoints written", tag_keys=("host",)),
        store_errors=rm.Counter(
            "vani_store_errors", "Session store operations that failed (retried)", tag_keys=("host", "op")
        ),
        recoveries=rm.Counter(
            "vani_recoveries",
            "Sessions a host took back from the store after their host was lost, by outcome",
            tag_keys=("host", "outcome"),
        ),
    )
