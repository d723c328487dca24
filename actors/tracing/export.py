"""Where this process's spans go: one ``TracerProvider``, configured once from the deployment's settings.

``otel_exporter``: ``none`` (the default: a no-op tracer, spans cost nothing), ``console`` (stdout) or ``otlp``
(HTTP/protobuf or gRPC, per ``otel_protocol``, to ``otel_endpoint`` with ``otel_headers``). Spans are
exported by the SDK's batch processor in its own thread, from a bounded queue (``otel_queue_spans``), so an
exporter that is slow or unreachable never blocks a session: its spans are dropped and counted in
``vani_spans_dropped`` (reason ``queue_full`` or ``export_failed``), with a log line per outage.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter, SpanExportResult

from vani.actors.metrics import metric
from vani.cluster.config import Settings

log = logging.getLogger("vani.tracing")

TRACES_PATH = "/v1/traces"
_state: dict[str, Any] = {"tracer": trace.NoOpTracer(), "provider": None}
_lock = threading.Lock()


def tracer() -> trace.Tracer:
    """This process's tracer (a no-op one until ``configure`` chose an exporter)."""
    return _state["tracer"]


def configure(settings: Settings, role: str, **attributes: str) -> None:
    """Set this process's exporter from ``settings`` (the first call wins: one deployment per process).

    ``role`` (``gateway``, ``host``) and ``attributes`` describe the process on every span it exports."""
    with _lock:
        if _state["provider"] is not None or settings.otel_exporter == "none":
            return
        resource = Resource.create(
            {"service.name": "vani", "vani.app": settings.app_name, "vani.role": role, **attributes}
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(processor(settings, _dropped_counter()))
        use(provider)


def use(provider: TracerProvider | None) -> None:
    """Trace through ``provider`` from now on (``configure``; tests with their own exporter); None: no-op."""
    _state["provider"] = provider
    _state["tracer"] = trace.NoOpTracer() if provider is None else provider.get_tracer("vani")


def flush(timeout_s: float = 5.0) -> None:
    """Export what is queued (a host or replica shutting down)."""
    provider = _state["provider"]
    if provider is not None:
        provider.force_flush(int(timeout_s * 1000))


def processor(settings: Settings, on_dropped: Callable[[int, str], None]) -> SpanProcessor:
    exporter = ConsoleSpanExporter() if settings.otel_exporter == "console" else otlp_exporter(settings)
    return CountingProcessor(exporter, settings.otel_queue_spans, on_dropped)


def otlp_exporter(settings: Settings) -> SpanExporter:
    headers = parse_headers(settings.otel_headers)
    endpoint = settings.otel_endpoint or None
    if settings.otel_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        insecure = endpoint is not None and urlsplit(endpoint).scheme == "http"
        return GrpcExporter(endpoint=endpoint, headers=headers, insecure=insecure or None, timeout=5)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=traces_url(endpoint) if endpoint else None, headers=headers, timeout=5)


def traces_url(endpoint: str) -> str:
    """OTLP/HTTP: a base URL gets ``/v1/traces`` (as the SDK does for OTEL_EXPORTER_OTLP_ENDPOINT)."""
    return endpoint if urlsplit(endpoint).path.endswith(TRACES_PATH) else endpoint.rstrip("/") + TRACES_PATH


def parse_headers(raw: str) -> dict[str, str]:
    """``key=value,key2=value2`` (URL-encoded values, the OTEL_EXPORTER_OTLP_HEADERS format); ValueError names
    a malformed entry by its position, never its value (headers hold credentials)."""
    out: dict[str, str] = {}
    for i, item in enumerate(p for p in raw.split(",") if p.strip()):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"otel_headers entry {i + 1} is not key=value")
        out[unquote(key.strip()).lower()] = unquote(value.strip())
    return out


class CountingProcessor(BatchSpanProcessor):
    """The SDK's batch processor, counting what it drops: spans past a full queue, and spans whose export
    failed (the exporter has already retried them by then)."""

    def __init__(self, exporter: SpanExporter, queue: int, on_dropped: Callable[[int, str], None]) -> None:
        self._pending = 0
        self._count_lock = threading.Lock()
        self._max_queue, self._on_dropped = queue, on_dropped
        super().__init__(
            _Outcomes(exporter, self._exported),
            max_queue_size=queue,
            max_export_batch_size=min(512, queue),
            schedule_delay_millis=1000,
        )

    def on_end(self, span: ReadableSpan) -> None:
        with self._count_lock:
            full = self._pending >= self._max_queue
            self._pending += not full  # (a full queue drops its oldest span for this one)
        if full:
            self._on_dropped(1, "queue_full")
        super().on_end(span)

    def _exported(self, n: int, ok: bool) -> None:
        with self._count_lock:
            self._pending = max(0, self._pending - n)
        if not ok:
            self._on_dropped(n, "export_failed")


class _Outcomes(SpanExporter):
    """An exporter that reports each batch's size and outcome, and logs an outage once, not per batch."""

    def __init__(self, inner: SpanExporter, report: Callable[[int, bool], None]) -> None:
        self.inner, self.report = inner, report
        self.failing = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter must never take the export thread down
            log.warning("span export raised %r", exc)
            result = SpanExportResult.FAILURE
        ok = result is SpanExportResult.SUCCESS
        if ok == self.failing:
            self.failing = not ok
            if ok:
                log.info("span export works again")
            else:
                log.warning("span export failed: spans are dropped until it works again (vani_spans_dropped)")
        self.report(len(spans), ok)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _dropped_counter() -> Callable[[int, str], None]:
    counter = metric("vani_spans_dropped")
    return lambda n, reason: counter.inc(n, tags={"reason": reason})
