"""The deterministic reply engine: slot filling over turns, the one tool, streaming, determinism."""

from __future__ import annotations

import asyncio
import json

from adapters.base import ChatMessage, LlmDone, LlmProvider, LlmToken, LlmToolCall
from adapters.local.dialogue import parse_slots
from adapters.local.reply_engine import BOOKING_TOOL, ReplyEngine, run_booking_tool


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
    events = await collect([user("Hi, I would like to book a table for 2.7 tomorrow evening.")], tool=None)
    assert not any(isinstance(e, LlmToolCall) for e in events)
    assert "booked" in text_of(events) and "7 pm" in text_of(events)


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
