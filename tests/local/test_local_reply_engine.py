"""The deterministic reply engine: slot filling over turns, the one tool, streaming, determinism."""

from __future__ import annotations

import asyncio
import json

import pytest

from vani.actors.agent.tools import ToolExecutor, tool_spec
from vani.adapters.base import ChatMessage, LlmDone, LlmProvider, LlmToken, LlmToolCall
from vani.adapters.local.dialogue import parse_slots
from vani.adapters.local.reply_engine import BOOKING_TOOL, ReplyEngine, run_booking_tool


async def collect(messages, tool=BOOKING_TOOL):
    return [e async for e in ReplyEngine(0).stream(messages, tool)]


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, LlmToken))


def user(text):
    return ChatMessage("user", text)


async def test_is_an_llm_provider_and_streams_tokens():
    engine = ReplyEngine(1)
    assert isinstance(engine, LlmProvider)
    events = await collect([ChatMessage("system", "x"), user("hello")])
    assert len([e for e in events if isinstance(e, LlmToken)]) > 5
    assert isinstance(events[-1], LlmDone) and events[-1].finish_reason == "stop"
    assert "Saffron Table" in text_of(events)


async def test_booking_over_several_turns_calls_the_tool_once():
    msgs = [user("I'd like to book a table")]
    assert "how many" in text_of(await collect(msgs)).lower()
    msgs += [ChatMessage("assistant", "For how many?"), user("for four people")]
    assert "what time" in text_of(await collect(msgs)).lower()
    msgs += [ChatMessage("assistant", "What time?"), user("at half past seven on friday")]
    events = await collect(msgs)
    calls = [e for e in events if isinstance(e, LlmToolCall)]
    assert len(calls) == 1 and isinstance(events[-1], LlmDone) and events[-1].finish_reason == "tool_calls"
    call = calls[0].call
    assert call.name == "book_table" and call.arguments == {"party_size": 4, "time": "19:30", "day": "friday"}
    result = run_booking_tool(call.arguments)
    msgs += [ChatMessage("assistant", "", tool_calls=[call]), ChatMessage("tool", json.dumps(result), call.id)]
    reply = text_of(await collect(msgs))
    assert "booked" in reply and result["reference"] in reply and "7:30 pm" in reply


async def test_whisper_style_numbers_and_no_tool():
    assert parse_slots("book a table for 2.7 tomorrow").time == "19:00"
    msgs = [user("Hi, I would like to book a table for 2.7 tomorrow evening.")]
    call = next(e for e in await collect(msgs) if isinstance(e, LlmToolCall)).call
    assert call.arguments == {"party_size": 2, "time": "19:00", "day": "tomorrow"}
    # Without the tool nothing is booked, and the engine does not pretend it was.
    events = await collect(msgs, tool=None)
    assert not any(isinstance(e, LlmToolCall) for e in events)
    assert "booked" not in text_of(events) and "can't take bookings" in text_of(events)


async def converse(engine: ReplyEngine, tools: ToolExecutor, msgs: list[ChatMessage]) -> tuple[str, list]:
    """One assistant turn as actors/agent/reply.py::_think runs it: stream, run a tool call through the
    executor, feed the result back for a second round. Returns the spoken text and the tool calls."""
    text, calls, spec = "", [], tool_spec("auto", "local")
    for _ in range(2):
        call = None
        async for ev in engine.stream(msgs, spec):
            if isinstance(ev, LlmToken):
                text += ev.text
            elif isinstance(ev, LlmToolCall):
                call = ev.call
        if call is None:
            break
        calls.append(call)
        result = await tools.run(call)
        msgs = [*msgs, ChatMessage("assistant", "", tool_calls=[call]), ChatMessage("tool", result, call.id)]
    return text, calls


async def test_offline_default_books_through_the_executor_once_per_booking():
    """The `local` LLM's default tool is book_table; every booking is one execution of one call id."""
    assert tool_spec("auto", "local") is BOOKING_TOOL and tool_spec("auto", "openai").name == "clock"
    assert tool_spec("book_table") is BOOKING_TOOL and tool_spec("") is None
    with pytest.raises(ValueError):
        tool_spec("teleport")
    engine, tools = ReplyEngine(0), ToolExecutor()
    msgs = [user("Hi, I would like to book a table for two at seven tomorrow evening.")]
    text, calls = await converse(engine, tools, msgs)
    assert [c.name for c in calls] == ["book_table"] and tools.executions == {calls[0].id: 1}
    ref = next(iter(tools.bookings.bookings))
    assert text.startswith("One moment, let me check that for you. You're booked")
    assert ref in text and "7 pm" in text and "tomorrow" in text
    # A replay of the same request (an LLM retry) has the same call id and is not executed again.
    again, calls2 = await converse(engine, tools, msgs)
    assert again == text and calls2[0].id == calls[0].id and tools.executions == {calls[0].id: 1}
    assert tools.bookings.count == 1
    # A second, identical booking later in the session is a new call: executed once, its own reference.
    msgs += [ChatMessage("assistant", text), user("Great. Can I book another table for two at seven tomorrow?")]
    text2, calls3 = await converse(engine, tools, msgs)
    assert calls3[0].id != calls[0].id and list(tools.executions.values()) == [1, 1]
    assert tools.bookings.count == 2 and "booked" in text2
    refs = list(tools.bookings.bookings)
    assert refs[1] != refs[0] and refs[1] in text2
    # Outside the opening hours the tool answers "unavailable" and the engine offers its alternative.
    msgs += [ChatMessage("assistant", text2), user("and a table for four at eleven pm on friday")]
    text3, calls4 = await converse(engine, tools, msgs)
    assert len(calls4) == 1 and "can't book that" in text3 and "7 pm instead" in text3
    assert tools.bookings.count == 2 and len(tools.executions) == 3


async def test_deterministic_and_faq():
    msgs = [user("where are you and is there parking? also what are your hours")]
    a, b = await collect(msgs), await collect(msgs)
    assert a == b
    assert "Harbour Street" in text_of(a) and "five to ten" in text_of(a)
    assert "Sorry" in text_of(await collect([user("tell me a joke about quantum physics")]))


async def test_cancellable_mid_stream():
    engine = ReplyEngine(50)
    got = []

    async def consume():
        async for e in engine.stream([user("hello")]):
            got.append(e)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.12)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert 1 <= len(got) < 10 and not any(isinstance(e, LlmDone) for e in got)
