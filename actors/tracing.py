"""OpenTelemetry for sessions and turns, configured in this one place.

Spans go to a bounded in-memory exporter (the last ``KEEP`` spans per process, readable through
``recent_spans()``); set ``VANI_OTEL_CONSOLE=1`` to also print them. Swap the exporter here for OTLP
in production.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

KEEP = 2000


class RingExporter(SpanExporter):
    def __init__(self, keep: int = KEEP) -> None:
        self.spans: deque[ReadableSpan] = deque(maxlen=keep)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


_ring = RingExporter()


@functools.cache
def tracer() -> trace.Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_ring))
    if os.environ.get("VANI_OTEL_CONSOLE") == "1":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    return provider.get_tracer("vani.session")


def recent_spans() -> list[dict[str, object]]:
    return [{"name": s.name, "attributes": dict(s.attributes or {})} for s in _ring.spans]
