"""A real OTLP trace receiver for tests: OTLP/HTTP (protobuf) and OTLP/gRPC, decoded with ``opentelemetry-proto``.

It is what a collector (Jaeger, Tempo, the OpenTelemetry Collector) is to vani: a server on 127.0.0.1 that
takes ``ExportTraceServiceRequest``s. Spans are kept as plain ``ReceivedSpan``s for assertions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, int, dict[str, Any]]]
    status: int  # 0 unset, 1 ok, 2 error
    status_message: str
    resource: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # of the export request that carried it

    def event_names(self) -> list[str]:
        return [e[0] for e in self.events]


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs}


class Spans:
    """Thread-safe list of what arrived, with a wait."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._cond = threading.Condition()
        self.requests = 0

    def add(self, body: bytes, headers: dict[str, str]) -> None:
        req = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        got = []
        for rs in req.resource_spans:
            resource = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append(
                        ReceivedSpan(
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            s.start_time_unix_nano,
                            s.end_time_unix_nano,
                            attrs(s.attributes),
                            [(e.name, e.time_unix_nano, attrs(e.attributes)) for e in s.events],
                            s.status.code,
                            s.status.message,
                            resource,
                            headers,
                        )
                    )
        with self._cond:
            self.requests += 1
            self._spans += got
            self._cond.notify_all()

    def all(self) -> list[ReceivedSpan]:
        with self._cond:
            return list(self._spans)

    def wait_for(self, found: Callable[[list[ReceivedSpan]], bool], timeout: float = 30.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not found(self._spans):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"spans not received in {timeout} s; have {[s.name for s in self._spans]}")
                self._cond.wait(left)
            return list(self._spans)


class OtlpHttpReceiver:
    """``POST /v1/traces`` (application/x-protobuf) on 127.0.0.1; ``fail=True`` answers 503 (an outage)."""

    def __init__(self) -> None:
        self.spans = Spans()
        self.fail = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.fail or self.path != "/v1/traces":
                    self.send_response(503 if receiver.fail else 404)
                    self.end_headers()
                    return
                receiver.spans.add(body, {k.lower(): v for k, v in self.headers.items()})
                out = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class OtlpGrpcReceiver:
    """The OTLP/gRPC ``TraceService`` on 127.0.0.1 (no TLS)."""

    def __init__(self) -> None:
        import grpc

        self.spans = Spans()
        spans = self.spans

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                spans.add(request.SerializeToString(), dict(context.invocation_metadata()))
                return trace_service_pb2.ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.url = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        self.server.stop(0)
