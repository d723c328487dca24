"""The gateway's part of a session's trace: one ``gateway.connect`` span per client connection.

It covers what the gateway does before the session is the client's: authentication, placement (the
registry), the link to the session's host and its challenge. The span is made when that is over, dated from
the connection's arrival, as a child of the session's span (the host names it in ``link.opened``), so a
resumed connection lands in the same trace as the session's first one. A connection refused before it
reached a session is a span of its own (under the client's ``traceparent``, if it sent a valid one), with
an error status naming the close code.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.trace import Status, StatusCode
from starlette.requests import HTTPConnection

from vani.actors.tracing import traceparent
from vani.actors.tracing.export import tracer


class ConnectTrace:
    def __init__(self, conn: HTTPConnection, session_id: str, gateway: str) -> None:
        self.start_ns = time.time_ns()
        # a header, or a query parameter for browsers (their WebSocket API sets no headers)
        self.client_parent = traceparent.valid(conn.headers.get("traceparent") or conn.query_params.get("traceparent"))
        self.attributes: dict[str, Any] = {"vani.session_id": session_id, "vani.gateway": gateway}
        self.events: list[tuple[str, int, dict[str, Any]]] = []

    def mark(self, name: str, **attributes: Any) -> None:
        self.events.append((name, time.time_ns(), attributes))

    def end(self, session_parent: str | None, refused: tuple[int, str] | None = None, **attributes: Any) -> None:
        span = tracer().start_span(
            "gateway.connect",
            context=traceparent.context(session_parent or self.client_parent),
            attributes={**self.attributes, **attributes},
            start_time=self.start_ns,
        )
        if not span.is_recording():
            return
        for name, at, ev_attributes in self.events:
            span.add_event(name, ev_attributes, at)
        if refused is not None:
            span.set_attribute("vani.close_code", refused[0])
            span.set_status(Status(StatusCode.ERROR, f"refused {refused[0]}: {refused[1]}"))
        span.end()
