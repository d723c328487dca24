"""One session's trace: its root span, the spans still open under it, and the session clock -> span time.

The ``session`` span is the root of the session's trace (or, when the client sent a ``traceparent``, a child
of the client's span). Everything else in the session is a child of it: the gateway's ``gateway.connect``
of each connection, ``user_turn`` (with its ``stt`` stage) and ``assistant_turn`` (with ``llm``, ``tool``
and ``tts`` stages; ``actors/agent/turn_trace.py``).

Spans are dated on the session's injected clock (monotonic seconds), mapped to wall time once, when the
trace starts, so a span's duration is exactly the clock's. Spans opened here are tracked: ``end`` closes
every one still open (a turn alive at close, a user mid-sentence) before the root, so no span is left
unended on any path the session takes out (close, TTL, failure, host shutdown). With tracing off
(``otel_exporter=none``) the spans are the API's no-op spans and every call returns at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from vani.actors.clock import Clock
from vani.actors.tracing import traceparent
from vani.actors.tracing.export import tracer

Event = tuple[str, float, dict[str, Any]]  # (name, clock time, attributes)


class SessionTrace:
    def __init__(
        self, session_id: str, clock: Clock, *, parent: str | None = None, attributes: dict[str, Any] | None = None
    ) -> None:
        self.clock = clock
        self._offset_ns = time.time_ns() - int(clock.now() * 1e9)
        self.root = tracer().start_span(
            "session",
            context=traceparent.context(parent),
            attributes={"vani.session_id": session_id, **(attributes or {})},
            start_time=self.ns(clock.now()),
        )
        self.on = self.root.is_recording()
        self._open: set[Span] = set()

    def ns(self, t: float) -> int:
        """Span time (epoch ns) of the session clock's ``t``."""
        return self._offset_ns + int(t * 1e9)

    def trace_id(self) -> str | None:
        """The trace's id in hex (log lines carry it), None with tracing off."""
        sc = self.root.get_span_context()
        return f"{sc.trace_id:032x}" if sc.is_valid else None

    def traceparent(self) -> str | None:
        """The root span's traceparent (the gateway's connect span joins the session's trace with it)."""
        return traceparent.of(self.root)

    # ------------------------------------------------------------------ spans
    def open(
        self, name: str, attributes: dict[str, Any], start: float | None = None, parent: Span | None = None
    ) -> Span:
        """A span that stays open until ``close`` (or the session's ``end``)."""
        if not self.on:
            return trace.INVALID_SPAN
        span = self._start(name, attributes, self.clock.now() if start is None else start, parent)
        self._open.add(span)
        return span

    def close(self, span: Span, end: float | None = None, **attributes: Any) -> None:
        if span in self._open:
            self._open.discard(span)
            span.set_attributes(attributes)
            span.end(self.ns(self.clock.now() if end is None else end))

    def add(
        self,
        name: str,
        start: float,
        end: float,
        attributes: dict[str, Any],
        parent: Span | None = None,
        events: Iterable[Event] = (),
        error: str | None = None,
    ) -> Span:
        """A span that already happened (a finished turn's stages): made and ended at once."""
        if not self.on:
            return trace.INVALID_SPAN
        span = self._start(name, attributes, start, parent)
        for ev_name, at, ev_attributes in events:
            span.add_event(ev_name, ev_attributes, self.ns(at))
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(self.ns(max(start, end)))
        return span

    def _start(self, name: str, attributes: dict[str, Any], start: float, parent: Span | None) -> Span:
        context = trace.set_span_in_context(parent or self.root)
        return tracer().start_span(name, context=context, attributes=attributes, start_time=self.ns(start))

    def event(self, name: str, span: Span | None = None, at: float | None = None, /, **attributes: Any) -> None:
        """A point in time on ``span`` (default: the session span)."""
        if self.on:
            (span or self.root).add_event(name, attributes, self.ns(self.clock.now() if at is None else at))

    def end(self, error: str | None = None, **attributes: Any) -> None:
        """The session is over: every span still open ends now (``vani.cut``), then the root."""
        if not self.on or not self.root.is_recording():
            return
        for span in list(self._open):
            self.close(span, **{"vani.cut": True})
        self.root.set_attributes(attributes)
        if error is not None:
            self.root.set_status(Status(StatusCode.ERROR, error))
        self.root.end(self.ns(self.clock.now()))
