"""Traces (issue 14, items 1-2): a session's span tree, exported over real OTLP (HTTP/protobuf and gRPC) to a
real receiver (tests/support/otlp_receiver.py), and what happens when the receiver is down or a client's
traceparent is malformed. The session here is tests/test_replay.py's recorded conversation: a real
``Session`` with the agent engine on a manual clock (a normal turn, a tool call, an eager end of turn
discarded, a barge-in). The same spans through a real cluster, gateway included: tests/test_tracing_cluster.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from tests.support.otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver, ReceivedSpan
from tests.test_replay import conversation
from vani.actors.clock import ManualClock
from vani.actors.tracing import export, traceparent
from vani.actors.tracing.session_trace import SessionTrace
from vani.cluster.config import Settings
from vani.cluster.ports import free_port

CLIENT_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Drops:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, n: int, reason: str) -> None:
        with self.lock:
            self.counts[reason] = self.counts.get(reason, 0) + n


@pytest.fixture
def receiver() -> Iterator[OtlpHttpReceiver]:
    r = OtlpHttpReceiver()
    yield r
    r.close()


def tracing_to(settings: Settings, drops: Drops | None = None) -> TracerProvider:
    """This process traces through ``settings``' exporter until the test ends (``untrace``)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "vani-test"}))
    provider.add_span_processor(export.processor(settings, drops or Drops()))
    export.use(provider)
    return provider


@pytest.fixture(autouse=True)
def untrace() -> Iterator[None]:
    yield
    export.use(None)


def otlp(url: str, **more: object) -> Settings:
    return Settings.load(env={}, otel_exporter="otlp", otel_endpoint=url, **more)


def by_name(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


def children(spans: list[ReceivedSpan], parent: ReceivedSpan, name: str | None = None) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_id == parent.span_id and (name is None or s.name == name)]


async def test_a_sessions_span_tree_over_otlp_http(receiver: OtlpHttpReceiver):
    provider = tracing_to(otlp(receiver.url, otel_headers="x-team=voice,authorization=Bearer%20k1"))
    rec = await conversation()
    await rec.close()
    provider.force_flush()
    spans = receiver.spans.wait_for(lambda s: any(x.name == "session" for x in s))

    (root,) = by_name(spans, "session")
    assert root.parent_id == "" and root.attributes["vani.session_id"] == "rec-1"
    assert root.attributes["vani.close_code"] == 1001 and "connected" in root.event_names()
    assert {s.trace_id for s in spans} == {root.trace_id}  # one trace
    ids = {s.span_id for s in spans}
    assert all(s.parent_id in ids for s in spans if s is not root)  # every parent was exported
    assert all(0 < s.start_ns <= s.end_ns for s in spans)  # every span ended
    assert spans[0].headers["x-team"] == "voice" and spans[0].headers["authorization"] == "Bearer k1"

    # user turns: four, each with its STT stage; the eager one has its events on the STT span
    users = by_name(spans, "user_turn")
    assert len(users) == 4 and all(u.parent_id == root.span_id for u in users)
    stts = [children(spans, u, "stt") for u in users]
    assert all(len(s) == 1 for s in stts)
    assert stts[2][0].event_names() == ["eager_end_of_turn", "turn_resumed"]
    assert all(s[0].attributes["vani.words"] > 0 for s in stts)

    # assistant turns, children of the session, with their stages
    turns = by_name(spans, "assistant_turn")
    assert all(t.parent_id == root.span_id for t in turns)
    outcome = {t.attributes["vani.turn_id"]: t.attributes["vani.outcome"] for t in turns}
    assert sorted(outcome.values()).count("discarded") == 1 and "interrupted" in outcome.values()
    (discarded,) = [t for t in turns if t.attributes["vani.outcome"] == "discarded"]
    assert discarded.attributes["vani.speculative"] is True
    assert children(spans, discarded, "tts") == []  # nothing of it was spoken

    (tool_turn,) = [t for t in turns if children(spans, t, "tool")]
    (tool,) = children(spans, tool_turn, "tool")
    assert tool.attributes["vani.tool"] == "clock" and tool.attributes["vani.cut"] is False
    llms = children(spans, tool_turn, "llm")
    assert [s.attributes["vani.tool_call"] for s in sorted(llms, key=lambda s: s.start_ns)] == [True, False]
    assert all(s.event_names() == ["first_token"] and s.attributes["vani.tokens"] > 0 for s in llms)
    assert all(s.start_ns >= tool_turn.start_ns for s in [tool, *llms])

    (barged,) = [t for t in turns if t.attributes["vani.outcome"] == "interrupted"]
    (barge_in,) = [e for e in barged.events if e[0] == "barge_in"]
    assert barge_in[2]["vani.stop_latency_s"] >= 0
    for t in turns:
        if t.attributes["vani.outcome"] in ("done", "interrupted"):
            tts = children(spans, t, "tts")
            assert tts and all(s.event_names() == ["first_byte"] for s in tts), t.attributes
            assert all(s.attributes["vani.characters"] > 0 and s.attributes["vani.fallback_used"] is False for s in tts)
        if t.attributes["vani.outcome"] == "done":
            assert t.attributes["vani.total_latency"] >= 0


async def test_spans_go_over_otlp_grpc_with_their_headers():
    rx = OtlpGrpcReceiver()
    try:
        provider = tracing_to(otlp(rx.url, otel_protocol="grpc", otel_headers="x-team=voice"))
        trace = SessionTrace("grpc-1", ManualClock(), attributes={"vani.mode": "echo"})
        trace.end()
        provider.force_flush()
        (span,) = rx.spans.wait_for(lambda s: len(s) == 1)
        assert span.name == "session" and span.attributes["vani.mode"] == "echo"
        assert span.headers["x-team"] == "voice"
    finally:
        rx.close()


async def test_a_session_continues_the_clients_trace(receiver: OtlpHttpReceiver):
    provider = tracing_to(otlp(receiver.url))
    clock = ManualClock()
    trace = SessionTrace("tp-1", clock, parent=CLIENT_PARENT)
    user = trace.open("user_turn", {"vani.turn_index": 0})
    await clock.advance(0.25)
    trace.end()  # the open user turn ends with the session, marked cut
    provider.force_flush()
    spans = receiver.spans.wait_for(lambda s: len(s) == 2)
    (root,) = by_name(spans, "session")
    (turn,) = by_name(spans, "user_turn")
    assert root.trace_id == CLIENT_PARENT.split("-")[1] and root.parent_id == CLIENT_PARENT.split("-")[2]
    assert turn.parent_id == root.span_id and turn.attributes["vani.cut"] is True
    assert turn.end_ns - turn.start_ns == 250_000_000  # dated on the session's clock
    assert traceparent.of(user).split("-")[1] == root.trace_id


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" + "-x" * 200,  # too long
    ],
)
def test_a_malformed_traceparent_is_ignored_with_a_log_line(bad: str, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, "vani.tracing"):
        assert traceparent.valid(bad) is None
    assert "malformed traceparent" in caplog.text and bad not in caplog.text
    assert traceparent.valid(CLIENT_PARENT) == CLIENT_PARENT and traceparent.valid(None) is None


def test_an_unreachable_endpoint_drops_spans_and_counts_them():
    """Nothing listens on the endpoint: ending spans never waits for it; the queue's overflow and the failed
    exports are counted (``vani_spans_dropped``), and the outage is logged once."""
    drops = Drops()
    settings = otlp(f"http://127.0.0.1:{free_port()}", otel_queue_spans=4)
    provider = tracing_to(settings, drops)
    clock = ManualClock()
    for i in range(20):
        SessionTrace(f"down-{i}", clock).end()  # returns at once: export is the batch thread's
    provider.force_flush()
    provider.shutdown()
    assert drops.counts.get("queue_full", 0) >= 20 - 2 * 4
    assert drops.counts.get("export_failed", 0) >= 1
    assert sum(drops.counts.values()) == 20


def test_settings_take_the_standard_otlp_variables_and_keep_headers_secret():
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-honeycomb-team=abc123",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
    }
    s = Settings.load(env={**env, "VANI_OTEL_EXPORTER": "otlp"})
    assert (s.otel_exporter, s.otel_protocol, s.otel_endpoint) == ("otlp", "grpc", "http://collector:4318")
    assert s.public()["otel_headers"] == "set" and "abc123" not in str(s.public())
    assert Settings.load(env={**env, "VANI_OTEL_ENDPOINT": "http://mine:4318"}).otel_endpoint == "http://mine:4318"
    with pytest.raises(ValueError, match="otel_exporter must be one of"):
        Settings.load(env={}, otel_exporter="jaeger")
    assert export.traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert export.traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"
    assert export.parse_headers("a=1, b=x%3Dy ,") == {"a": "1", "b": "x=y"}
    with pytest.raises(ValueError, match="entry 2 is not key=value") as err:
        export.parse_headers("a=1,secretvalue")
    assert "secretvalue" not in str(err.value)


def test_with_tracing_off_no_span_is_recorded():
    trace = SessionTrace("off-1", ManualClock())
    assert not trace.on and trace.traceparent() is None
    assert trace.open("user_turn", {}) is not None
    trace.end()
