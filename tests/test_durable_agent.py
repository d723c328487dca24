"""An agent conversation's durable state (actors/agent/durable.py) without Ray: what a checkpoint holds, and a
new engine that takes it back answering with the earlier turns in its LLM context."""

from __future__ import annotations

import json

from tests.test_decide_loop import make, settle_engine  # noqa: F401  (``make`` is a fixture)


async def test_turn_boundaries_ask_for_checkpoints_and_the_state_is_json(make):  # noqa: F811
    h = make(["It is noon."])
    await settle_engine(h)
    before = h.io.checkpoints
    await h.user_turn("what time is it")
    after_user = h.io.checkpoints
    assert after_user > before  # the user's turn is recorded (and the reply's first piece starts)
    await h.step(0.3)
    assert h.io.checkpoints > after_user  # the reply ended
    state = json.loads(json.dumps(h.engine.durable_state()))
    assert [m["role"] for m in state["history"]] == ["user", "assistant"]
    assert state["history"][1]["content"] == "It is noon."
    assert state["transcripts"][-1]["transcript"] == "what time is it"
    assert state["next_turn_id"] == 2 and state["stats"]["turns"] == 1 and state["in_flight"] is None


async def test_a_restored_engine_answers_with_the_earlier_turns_in_context(make):  # noqa: F811
    first = make(["It is noon."])
    await settle_engine(first)
    await first.user_turn("what time is it")
    await first.step(0.3)
    state = json.loads(json.dumps(first.engine.durable_state()))

    second = make(["Still noon."])
    await settle_engine(second)
    assert second.engine.restore(state) == {}  # nothing was in flight
    await second.user_turn("and now")
    await second.step(0.3)
    sent = [(m.role, m.content) for m in second.llm.requests[0]]
    assert sent[1:] == [("user", "what time is it"), ("assistant", "It is noon."), ("user", "and now")]
    assert second.of("assistant.message")[0]["turn_id"] == 2  # turn ids go on, never reused
    assert [t["transcript"] for t in second.engine.transcripts] == ["what time is it", "and now"]


async def test_the_turn_in_flight_is_reported_and_not_repeated(make):  # noqa: F811
    reply = "one two three four five six seven eight nine ten"
    first = make([reply], audio_frame_ms=0)
    await settle_engine(first)
    await first.user_turn("count to ten")
    await first.step(0.35)  # ~3 words heard, then the host dies
    state = json.loads(json.dumps(first.engine.durable_state()))
    assert state["in_flight"]["turn_id"] == 1 and state["in_flight"]["user_text"] == "count to ten"

    second = make(["Sure."])
    await settle_engine(second)
    extra = second.engine.restore(state)
    heard = extra["interrupted_turn"]["heard"]
    assert heard in ("one two three", "one two three four"), heard
    assert extra["interrupted_turn"] == {"turn_id": 1, "user_transcript": "count to ten", "heard": heard}
    history = [(m.role, m.content) for m in second.engine.conv.history]
    assert history == [("user", "count to ten"), ("assistant", f"{heard} [interrupted]")]
    assert second.engine.conv.conv_state == "idle" and second.llm.requests == []  # nothing is repeated
