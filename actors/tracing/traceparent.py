"""The W3C ``traceparent`` a client may send (header, or ``?traceparent=`` for browsers): parsed strictly.

A malformed value is ignored with a log line (the session gets a trace of its own), never refused: tracing
must not decide whether a session works. Only the ids travel on; ``tracestate`` is not carried.
"""

from __future__ import annotations

import logging
import re

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("vani.tracing")

# version 00 exactly as the spec writes it (lower-case hex, no all-zero ids); later versions may add fields
TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$")
_PROPAGATOR = TraceContextTextMapPropagator()


def valid(value: str | None) -> str | None:
    """``value`` if it is a usable traceparent, else None (logged when it was given but malformed)."""
    if not value:
        return None
    if len(value) <= 256 and TRACEPARENT_RE.fullmatch(value) and context(value) is not None:
        return value
    log.warning("ignoring a malformed traceparent (%d characters)", len(value))
    return None


def context(value: str | None) -> Context | None:
    """The parent context ``value`` names (None: no parent, or not a valid one)."""
    if not value:
        return None
    ctx = _PROPAGATOR.extract({"traceparent": value})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def of(span: trace.Span) -> str | None:
    """The traceparent naming ``span`` (None for a span that is not recorded: tracing is off)."""
    sc = span.get_span_context()
    if not sc.is_valid:
        return None
    return f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"
