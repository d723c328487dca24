"""What the parts of one agent conversation share: the session's clock and lanes, settings, providers.

The conversation model, the reply runner, the pause control and the watchdogs each take this one explicit
object instead of reaching into the engine; the engine builds it (providers come built from
``adapters/factory.py``, never patched afterwards).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from vani.actors.agent.listener import Listener
from vani.actors.agent.tools import ToolExecutor
from vani.actors.agent.watchdog import Watchdog
from vani.actors.clock import Clock
from vani.actors.session.outbound import OutboundQueue
from vani.actors.tracing.session_trace import SessionTrace
from vani.adapters.base import LlmProvider, ToolSpec, TtsOptions, TtsProvider
from vani.cluster.config import Settings


@dataclass
class LlmStreams:
    """LLM streams open now in the session, and the most ever open at once (the design says one)."""

    open: int = 0
    most: int = 0

    def opened(self) -> None:
        self.open += 1
        self.most = max(self.most, self.open)

    def closed(self) -> None:
        self.open -= 1


@dataclass
class AgentContext:
    session_id: str
    settings: Settings
    clock: Clock
    outbound: OutboundQueue
    post: Callable[[str, Any], None]  # an event for the decide loop's inbox
    spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]  # a task the engine owns
    listener: Listener
    llm: LlmProvider
    tts: TtsProvider
    tts_options: TtsOptions
    tool: ToolSpec | None
    tools: ToolExecutor
    watchdog: Watchdog
    streams: LlmStreams
    checkpoint: Callable[[], None]  # a turn boundary: the session's durable state changed
    trace: SessionTrace  # the session's spans (actors/agent/turn_trace.py)

    def send(self, msg: str) -> None:
        """A JSON event to the client, on the priority lane (never behind audio)."""
        self.outbound.put_control(msg)
