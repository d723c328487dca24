"""A long session stays flat: 500 turns through the bounded structures a session keeps (no Ray).

The pipeline's LLM context (``ContextWindow``), its final transcripts (a ``deque`` of
``transcript_history_turns``), the session's per-turn audio clocks (``RecentTurns``), the tool executor's
results cache (LRU) and the watchdog's fired list, built from ``Settings`` as ``actors/agent/conversation.py`` and
``actors/session/session.py`` build them. ``tests/test_agent_pipeline.py`` checks the same bounds on a live
session through the cluster.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections import deque

from vani.actors.agent.bounds import ContextWindow, RecentTurns
from vani.actors.agent.tools import RESULTS_KEPT, ToolExecutor
from vani.actors.agent.watchdog import Watchdog
from vani.actors.clock import LoopClock
from vani.adapters.base import ChatMessage, ToolCall
from vani.cluster.config import Settings


class LongSession:
    """The bounded structures of one agent session, fed one turn at a time as the pipeline feeds them."""

    def __init__(self, settings: Settings) -> None:
        self.history = ContextWindow(settings.llm_context_max_turns, settings.llm_context_max_chars)
        self.transcripts: deque[dict] = deque(maxlen=settings.transcript_history_turns or None)
        self.last_audio_sent = RecentTurns(keep=4)
        self.tools = ToolExecutor()
        self.watchdog = Watchdog(lambda name: None, LoopClock())

    async def turn(self, k: int) -> None:
        user = f"turn {k}: could you book a table for {k % 6 + 1} at seven, and what is on the menu today?"
        self.transcripts.append({"turn_index": k, "transcript": user})
        self.history.append(ChatMessage("user", user))
        if k % 3 == 0:  # a tool round: the call and its result go into the history together
            call = ToolCall(f"call_{k}", "book_table", {"party_size": k % 6 + 1, "time": "19:00", "day": "today"})
            result = await self.tools.run(call)
            assert await self.tools.run(call) == result  # a repeat is not executed again
            self.history += [ChatMessage("assistant", "", tool_calls=[call]), ChatMessage("tool", result, call.id)]
        self.history.append(ChatMessage("assistant", f"Reply {k}. " + "We cook Indian home food. " * 8))
        for frame in range(5):
            self.last_audio_sent[k] = time.monotonic() + frame
        self.watchdog.fired.append("tts_stall")


def check_context(history: ContextWindow, settings: Settings) -> None:
    msgs = list(history)
    users = [m for m in msgs if m.role == "user"]
    assert 1 <= len(users) <= settings.llm_context_max_turns
    assert history.chars <= settings.llm_context_max_chars
    assert msgs[0].role == "user", "the context starts at a whole turn"
    for i, m in enumerate(msgs):  # every tool call is followed by its result, every result preceded by its call
        if m.tool_calls:
            assert msgs[i + 1].role == "tool" and msgs[i + 1].tool_call_id == m.tool_calls[0].id
        if m.role == "tool":
            assert msgs[i - 1].tool_calls and msgs[i - 1].tool_calls[0].id == m.tool_call_id


async def test_500_turn_session_is_bounded_and_flat():
    settings = Settings()
    s = LongSession(settings)
    tracemalloc.start()
    try:
        for k in range(300):  # past every bound (the tool cache fills at RESULTS_KEPT calls)
            await s.turn(k)
        gc.collect()
        warm = tracemalloc.get_traced_memory()[0]
        for k in range(300, 500):
            await s.turn(k)
            check_context(s.history, settings)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - warm
    finally:
        tracemalloc.stop()
    # The newest turns are the ones kept.
    assert [m.content for m in s.history if m.role == "user"][-1].startswith("turn 499:")
    assert s.history.turns <= settings.llm_context_max_turns and s.history.dropped_turns >= 500 - 16
    assert len(s.transcripts) == settings.transcript_history_turns == 20
    assert [t["turn_index"] for t in s.transcripts] == list(range(480, 500))
    assert sorted(s.last_audio_sent) == [496, 497, 498, 499]
    assert len(s.tools) == len(s.tools.executions) <= RESULTS_KEPT
    assert set(s.tools.executions.values()) == {1} and "call_498" in s.tools.executions
    assert len(s.watchdog.fired) <= 32
    # 200 more turns (~470 messages, 200 transcripts, 67 tool results): unbounded, that is ~300 KB here.
    assert grown < 100_000, f"{grown} bytes kept by 200 more turns"


def test_context_window_keeps_the_latest_turn_and_tool_pairs():
    w = ContextWindow(max_turns=2, max_chars=200)
    w.append(ChatMessage("user", "a" * 50))
    w.append(ChatMessage("assistant", "b" * 50))
    call = ToolCall("c1", "clock", {})
    w.append(ChatMessage("user", "what time is it"))
    w += [ChatMessage("assistant", "", tool_calls=[call]), ChatMessage("tool", '{"time":"19:00"}', "c1")]
    assert [m.role for m in w] == ["user", "assistant", "user", "assistant", "tool"]
    w.append(ChatMessage("assistant", "It is seven."))
    w.append(ChatMessage("user", "x" * 500))  # over the character budget alone: the latest turn is still sent
    assert [m.content for m in w] == ["x" * 500] and w.dropped_turns == 2
    w.append(ChatMessage("assistant", "ok"))
    assert len(w) == 2 and w.turns == 1


async def test_tool_cache_keeps_a_running_call():
    ex = ToolExecutor(max_results=2)
    gate = asyncio.Event()

    async def slow(args: dict) -> dict:
        await gate.wait()
        return {"ok": True}

    ex._runners["slow"] = slow
    running = asyncio.create_task(ex.run(ToolCall("s", "slow", {})))
    await asyncio.sleep(0)
    for i in range(5):
        await ex.run(ToolCall(f"c{i}", "clock", {}))
    assert list(ex.executions) == ["s", "c4"] and len(ex) == 2  # the running call is never evicted
    gate.set()
    assert await running == await ex.run(ToolCall("s", "slow", {})) and ex.executions["s"] == 1
