"""Every Ray metric vani exports, declared in ``CATALOG`` (Prometheus names get a ``ray_`` prefix, counters a
``_total`` suffix, histograms ``_bucket`` / ``_sum`` / ``_count``).

A metric is created in a process on first use (``metric(name)``), so importing this module outside Ray is
free. The catalog is what the metrics test scrapes for, what the Grafana dashboard's queries are checked
against (deploy/grafana/vani-dashboard.json) and what README "Observability" lists.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import psutil
from ray.util import metrics as rm

LATENCY_BOUNDS_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
BOUNDS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


@dataclass(frozen=True)
class Spec:
    kind: str  # counter | gauge | histogram
    description: str
    tags: tuple[str, ...]
    boundaries: tuple[float, ...] = ()


# LatencyReport's fields (actors/agent/latency_report.py), each a histogram tagged by the provider it measures
# ("" where no one provider does: total_latency, interrupt_stop_latency).
STAGE_FIELDS = {
    "stt_latency": "STT: user end of speech -> EndOfTurn received",
    "ttt_token_latency": "LLM: request -> first token of any kind",
    "ttt_text_latency": "LLM: request -> first text token",
    "ttt_tool_latency": "LLM: request -> first tool call",
    "tts_latency": "TTS: first speakable text -> first audio byte",
    "total_latency": "End to end: user end of speech -> first assistant audio sent",
    "interrupt_stop_latency": "Barge-in: interrupting speech -> output stopped",
}

CATALOG: dict[str, Spec] = {
    "vani_active_sessions": Spec("gauge", "Sessions held by a host (live or suspended)", ("host",)),
    "vani_sessions_by_state": Spec("gauge", "Sessions held by a host, by session state", ("host", "state")),
    "vani_frames_in": Spec("counter", "Audio frames received from clients", ("host",)),
    "vani_frames_out": Spec("counter", "Audio frames sent to clients (every mode)", ("host",)),
    "vani_frames_dropped": Spec("counter", "Frames discarded (muted, duplicate, session closed)", ("host", "reason")),
    "vani_backpressure_waits": Spec(
        "counter",
        "Times a session waited for space: inbound (its ring full: the link stops reading) or outbound "
        "(its audio queue full: a slow client)",
        ("host", "where"),
    ),
    "vani_closes": Spec("counter", "Client connections closed, by close code", ("code",)),
    "vani_added_latency_ms": Spec(
        "histogram",
        "Time vani added: per echoed frame beyond the echo delay (mode echo); per assistant turn, end to end "
        "minus the providers' own latencies (mode agent)",
        ("host", "mode"),
        LATENCY_BOUNDS_MS,
    ),
    "vani_host_rss_bytes": Spec("gauge", "Resident memory of a session host", ("host",)),
    "vani_session_memory_bytes": Spec(
        "gauge", "Estimated memory per session: a host's RSS above its idle RSS, over its sessions", ("host",)
    ),
    "vani_loop_lag_ms": Spec(
        "gauge", "Smoothed event-loop lag of a session host or gateway replica (admission by load)", ("process",)
    ),
    "vani_store_writes": Spec("counter", "Session checkpoints written to the session store", ("host",)),
    "vani_store_bytes": Spec("counter", "Bytes of session checkpoints written", ("host",)),
    "vani_store_errors": Spec("counter", "Session store operations that failed (retried)", ("host", "op")),
    "vani_recoveries": Spec(
        "counter", "Sessions a host took back from the store after their host was lost, by outcome", ("host", "outcome")
    ),
    "vani_spans_dropped": Spec("counter", "Spans not exported (full queue, failed export)", ("reason",)),
    "vani_tool_s": Spec("histogram", "Tool execution time (seconds)", ("tool",), BOUNDS_S),
    "vani_provider_errors": Spec("counter", "Provider failures seen by sessions", ("stage", "provider", "kind")),
    # usage accounting (actors/agent/usage.py); tool calls are vani_tool_s's count
    "vani_usage_stt_seconds": Spec("counter", "Audio streamed to the STT (seconds)", ("provider",)),
    "vani_usage_llm_tokens": Spec("counter", "LLM tokens (the provider's count, else vani's)", ("provider", "kind")),
    "vani_usage_tts_characters": Spec("counter", "Characters sent to the TTS", ("provider",)),
    "vani_usage_audio_out_seconds": Spec("counter", "Assistant audio sent to clients (seconds)", ("provider",)),
    **{
        f"vani_{field}_s": Spec("histogram", f"{text} (seconds, per assistant turn)", ("mode", "provider"), BOUNDS_S)
        for field, text in STAGE_FIELDS.items()
    },
}


_PROCESS = {"host": ""}


def set_process_host(name: str) -> None:
    """This process is the session host ``name`` (the ``host`` tag of metrics recorded below the host)."""
    _PROCESS["host"] = name


def process_host() -> str:
    return _PROCESS["host"]


def provider_error(stage: str, exc: Any) -> None:
    """A provider failure a session saw (``exc``: a ``ProviderError``)."""
    kind = getattr(exc.kind, "value", str(exc.kind))
    metric("vani_provider_errors").inc(tags={"stage": stage, "provider": exc.provider, "kind": kind})


@functools.cache
def metric(name: str) -> Any:
    """The process's instance of ``CATALOG[name]``."""
    spec = CATALOG[name]
    if spec.kind == "histogram":
        return rm.Histogram(name, spec.description, boundaries=list(spec.boundaries), tag_keys=spec.tags)
    cls = rm.Counter if spec.kind == "counter" else rm.Gauge
    return cls(name, spec.description, tag_keys=spec.tags)


@dataclass
class SessionMetrics:
    """The metrics a host and a gateway replica record (attribute access for the hot paths)."""

    active_sessions: Any
    sessions_by_state: Any
    frames_in: Any
    frames_out: Any
    frames_dropped: Any
    backpressure_waits: Any
    closes: Any
    added_latency_ms: Any
    host_rss_bytes: Any
    session_memory_bytes: Any
    loop_lag_ms: Any
    store_writes: Any
    store_bytes: Any
    store_errors: Any
    recoveries: Any

    def record_rss(self, host: str) -> int:
        rss = psutil.Process(os.getpid()).memory_info().rss
        self.host_rss_bytes.set(rss, tags={"host": host})
        return rss


@functools.cache
def session_metrics() -> SessionMetrics:
    return SessionMetrics(**{name: metric(f"vani_{name}") for name in SessionMetrics.__dataclass_fields__})
