"""A session's trace through a real cluster (issue 14, items 1-2): the /agent app's gateway replica and session
hosts export OTLP/HTTP to the suite's receiver (tests/conftest.py, tests/support/otlp_receiver.py).

One trace per session, continuing the client's ``traceparent``: the host's ``session`` span, the gateway's
``gateway.connect`` span of every connection (a resume lands in the same trace), the turns and their stages.
A refused connection is a span of its own with an error status; a malformed traceparent changes nothing for
the session. The span tree of every kind of turn is asserted in tests/test_tracing.py.
"""

from __future__ import annotations

import json

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.agent_helpers import AgentClient, script, utterance
from tests.support.otlp_receiver import ReceivedSpan
from tests.test_agent_pipeline import agent_url, reply_done, sid

CLIENT = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
REFUSED_CLIENT = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")


def tp(ids: tuple[str, str]) -> str:
    return f"00-{ids[0]}-{ids[1]}-01"


def of_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


async def test_one_trace_per_session_across_gateway_hosts_and_resumes(vani_cluster, provider_emulator):
    s = sid("trace")
    await script(provider_emulator, s, transcripts=["what time is it"], use_tool=True, tool_arguments={})
    c = await AgentClient.connect(agent_url(vani_cluster, s), headers={"traceparent": tp(CLIENT)})
    await c.send_audio(utterance(0.6, 0.5, seed=1))
    await reply_done(c, 1, 30.0)
    token = c.first["resume_token"]
    await c.close()  # the connection drops; the session waits for its client

    # A wrong resume token is refused (4401) before any session: its span is the client's, with an error.
    try:
        async with connect(
            agent_url(vani_cluster, s, "resume_token=wrong"), additional_headers={"traceparent": tp(REFUSED_CLIENT)}
        ) as ws:
            await ws.recv()
    except (InvalidStatus, Exception):
        pass
    # The client comes back, through the browser's way of passing trace context, here malformed: ignored.
    c2 = await AgentClient.connect(agent_url(vani_cluster, s, f"resume_token={token}&traceparent=00-not-a-trace"))
    assert c2.first["resumed"] is True
    await c2.ws.send(json.dumps({"type": "close"}))
    await c2.ws.wait_closed()

    def complete(got: list[ReceivedSpan]) -> bool:  # the gateway and the host export on their own schedules
        mine = of_trace(got, CLIENT[0])
        return len(named(mine, "session")) == 1 and len(named(mine, "gateway.connect")) == 2

    spans = of_trace(vani_cluster.otlp.spans.wait_for(complete, 60.0), CLIENT[0])
    (root,) = named(spans, "session")
    assert root.parent_id == CLIENT[1]  # a child of the client's span
    assert root.resource["vani.role"] == "host" and root.attributes["vani.mode"] == "agent"
    assert root.attributes["vani.node"] in vani_cluster.node_ids and root.attributes["vani.host"]
    assert root.event_names().count("connected") == 2 and "disconnected" in root.event_names()

    connects = sorted(named(spans, "gateway.connect"), key=lambda x: x.start_ns)
    assert len(connects) == 2 and all(x.parent_id == root.span_id for x in connects)
    assert all(x.resource["vani.role"] == "gateway" and "placed" in x.event_names() for x in connects)
    assert [x.attributes["vani.resumed"] for x in connects] == [False, True]
    assert connects[0].start_ns <= root.start_ns  # the connection arrived before its session existed

    (turn,) = named(spans, "assistant_turn")
    assert turn.parent_id == root.span_id and turn.attributes["vani.outcome"] == "done"
    stages = sorted(x.name for x in spans if x.parent_id == turn.span_id)
    assert stages[:3] == ["llm", "llm", "tool"] and "tts" in stages
    assert all(x.attributes["vani.retries"] == 0 for x in spans if x.name == "llm")  # from the stream's end
    (user,) = named(spans, "user_turn")
    assert [x.name for x in spans if x.parent_id == user.span_id] == ["stt"]
    assert all(0 < x.start_ns <= x.end_ns for x in spans)

    refused = of_trace(
        vani_cluster.otlp.spans.wait_for(lambda got: bool(of_trace(got, REFUSED_CLIENT[0]))), REFUSED_CLIENT[0]
    )
    (span,) = refused
    assert span.name == "gateway.connect" and span.parent_id == REFUSED_CLIENT[1]
    assert span.status == 2 and span.attributes["vani.close_code"] == 4401
