"""OpenTelemetry for vani: where spans go (``export.py``), a session's trace (``session_trace.py``), and the
W3C ``traceparent`` a client may send (``traceparent.py``). README "Observability" lists the spans."""

from vani.actors.tracing.export import configure, flush, tracer

__all__ = ["configure", "flush", "tracer"]
