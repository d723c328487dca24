"""The agent's tool (one per session, setting ``agent_tool``), executed idempotently by call id.

Tools: ``clock`` (the time) and ``book_table`` (the demo restaurant's booking book, one per session).
``agent_tool="auto"`` (the default) offers ``book_table`` to the local reply engine, whose persona books
through it, and ``clock`` to any other LLM; ``""`` offers none. One tool, because the provider contract
offers one ``ToolSpec`` per request (``LlmProvider.stream``).

A tool call can reach the executor more than once: an LLM retry, a replayed stream, a client that
re-sends. ``ToolExecutor.run`` executes each call id at most once per session; a repeat (even a
concurrent one) gets the first execution's result. The results cache is an LRU of the last
``max_results`` call ids (a long session stays bounded); a repeat is always of a recent call. Tools are
never executed speculatively: the reply runner only calls ``run`` once the turn is confirmed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from vani.adapters.base import ToolCall, ToolSpec
from vani.adapters.local.booking import BOOKING_TOOL, BookingBook

CLOCK = ToolSpec(
    name="clock",
    description="The current date and time (UTC, or a fixed UTC offset in hours).",
    parameters={
        "type": "object",
        "properties": {"utc_offset_hours": {"type": "number", "description": "e.g. 5.5 for India"}},
    },
)


async def run_clock(arguments: dict[str, Any]) -> dict[str, Any]:
    try:
        offset = float(arguments.get("utc_offset_hours") or 0.0)
    except (TypeError, ValueError):
        offset = 0.0
    now = dt.datetime.now(dt.UTC) + dt.timedelta(hours=offset)
    return {"time": now.strftime("%H:%M"), "date": now.strftime("%Y-%m-%d"), "utc_offset_hours": offset}


TOOLS: dict[str, ToolSpec] = {"clock": CLOCK, "book_table": BOOKING_TOOL}
RESULTS_KEPT = 256  # call ids whose result is kept for a repeat


def tool_spec(name: str, llm_provider: str = "") -> ToolSpec | None:
    """The ``ToolSpec`` configured by ``agent_tool`` (None when empty); ``auto`` depends on the LLM."""
    if name == "auto":
        name = "book_table" if llm_provider == "local" else "clock"
    if not name:
        return None
    if name not in TOOLS:
        raise ValueError(f"unknown agent_tool {name!r}; one of {sorted(TOOLS)}, auto or empty")
    return TOOLS[name]


def tool_entry(call: ToolCall, result: str) -> dict[str, Any]:
    """A tool execution as the event log keeps it."""
    return {"id": call.id, "name": call.name, "result": result}


class ToolExecutor:
    """Per-session executor: ``call_id -> result``, each call id executed at most once.

    An execution runs in a task owned by the executor, not by the turn: cancelling the turn (barge-in)
    does not cut a tool off half way, and its result stays cached for a retry of the same call.
    """

    def __init__(
        self, max_results: int = RESULTS_KEPT, on_result: Callable[[ToolCall, str], None] = lambda call, result: None
    ) -> None:
        self.max_results = max_results
        self.on_result = on_result  # the session's event log hears each execution's result
        self.replayed: dict[str, str] = {}  # call id -> result: a replay's logged results (no tool runs)
        self._results: OrderedDict[str, asyncio.Task[str]] = OrderedDict()
        self.executions: OrderedDict[str, int] = OrderedDict()  # same keys as _results
        self.bookings = BookingBook()  # this session's book for ``book_table``
        self._runners: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "clock": run_clock,
            "book_table": self.bookings.book,
        }

    def __len__(self) -> int:
        return len(self._results)

    async def run(self, call: ToolCall) -> str:
        """The JSON result of ``call``; executes it only the first time its id is seen."""
        task = self._results.get(call.id)
        if task is None:
            # Claimed before any await, so a concurrent repeat of the same id waits on this task.
            self.executions[call.id] = self.executions.get(call.id, 0) + 1
            task = asyncio.get_running_loop().create_task(self._execute(call), name=f"tool:{call.id}")
            self._results[call.id] = task
            self._evict()
        else:
            self._results.move_to_end(call.id)
            self.executions.move_to_end(call.id)
        return await asyncio.shield(task)

    def _evict(self) -> None:
        """Forget the least recently used finished calls past ``max_results`` (a running one stays)."""
        for call_id in list(self._results):
            if len(self._results) <= self.max_results:
                return
            if self._results[call_id].done():
                del self._results[call_id]
                self.executions.pop(call_id, None)

    async def _execute(self, call: ToolCall) -> str:
        if call.id in self.replayed:
            return self.replayed[call.id]
        runner = self._runners.get(call.name)
        try:
            result = {"error": f"unknown tool {call.name}"} if runner is None else await runner(call.arguments)
        except Exception as exc:  # a tool failure is an answer for the LLM, not a session failure
            result = {"error": f"{type(exc).__name__}: {exc}"}
        encoded = json.dumps(result, separators=(",", ":"))
        self.on_result(call, encoded)
        return encoded

    def close(self) -> None:
        for task in self._results.values():
            task.cancel()
