"""The agent's one optional tool, executed idempotently by call id.

A tool call can reach the executor more than once: an LLM retry, a replayed stream, a client that
re-sends. ``ToolExecutor.run`` executes each call id at most once per session; a repeat (even a
concurrent one) gets the first execution's result. Tools are never executed speculatively: the
pipeline only calls ``run`` once the turn is confirmed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.base import ToolCall, ToolSpec

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


TOOLS: dict[str, tuple[ToolSpec, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]]] = {
    "clock": (CLOCK, run_clock),
}


def tool_spec(name: str) -> ToolSpec | None:
    """The ``ToolSpec`` configured by ``agent_tool`` (None when empty)."""
    if not name:
        return None
    if name not in TOOLS:
        raise ValueError(f"unknown agent_tool {name!r}; one of {sorted(TOOLS)}")
    return TOOLS[name][0]


class ToolExecutor:
    """Per-session executor: ``call_id -> result``, each call id executed at most once.

    An execution runs in a task owned by the executor, not by the turn: cancelling the turn (barge-in)
    does not cut a tool off half way, and its result stays cached for a retry of the same call.
    """

    def __init__(self) -> None:
        self._results: dict[str, asyncio.Task[str]] = {}
        self.executions: dict[str, int] = {}

    async def run(self, call: ToolCall) -> str:
        """The JSON result of ``call``; executes it only the first time its id is seen."""
        task = self._results.get(call.id)
        if task is None:
            # Claimed before any await, so a concurrent repeat of the same id waits on this task.
            self.executions[call.id] = self.executions.get(call.id, 0) + 1
            task = asyncio.get_running_loop().create_task(self._execute(call), name=f"tool:{call.id}")
            self._results[call.id] = task
        return await asyncio.shield(task)

    @staticmethod
    async def _execute(call: ToolCall) -> str:
        entry = TOOLS.get(call.name)
        try:
            result = {"error": f"unknown tool {call.name}"} if entry is None else await entry[1](call.arguments)
        except Exception as exc:  # a tool failure is an answer for the LLM, not a session failure
            result = {"error": f"{type(exc).__name__}: {exc}"}
        return json.dumps(result, separators=(",", ":"))

    def close(self) -> None:
        for task in self._results.values():
            task.cancel()
