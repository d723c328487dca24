"""One handle per assistant turn: its id, its cancellation scope, its I/O, its outcome.

Every assistant turn (one reply to one user turn) gets a fresh ``TurnHandle`` with a new, increasing
``turn_id`` (the generation id carried by every audio frame and text event of the turn). The handle owns the
tasks that produce its output (LLM, tool, TTS) and its own I/O objects (the chunker and the queue of
speakable pieces); ``interrupt(outcome)`` stops exactly those and nothing else. Its ``outcome`` is set once,
here: the first of played out (``finish``), interrupted, discarded or stopped by a watchdog wins. Awaiting the
handle waits for that.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Generator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from vani.actors.agent.chunker import SpeakableChunker
from vani.actors.agent.playback import Playback
from vani.actors.agent.usage import Usage
from vani.actors.clock import Clock, Timer
from vani.adapters.base import ChatMessage
from vani.cluster.logs import log_context


class TurnOutcome(StrEnum):
    PENDING = "pending"
    DONE = "done"  # played out
    INTERRUPTED = "interrupted"  # barge-in
    DISCARDED = "discarded"  # a speculative turn the user's speech went on past
    WATCHDOG = "watchdog"  # stopped by a watchdog (LLM / TTS stalled)


class TurnKind(StrEnum):
    REPLY = "reply"
    FALLBACK = "fallback"  # the watchdog's apology: no LLM


@dataclass
class Timings:
    """Clock marks for the LatencyReport; None = did not happen."""

    user_end_of_speech: float | None = None
    end_of_turn: float | None = None
    llm_request: float | None = None
    first_token: float | None = None
    first_text_token: float | None = None
    first_tool_token: float | None = None
    first_piece: float | None = None
    tts_request: float | None = None
    tts_first_byte: float | None = None  # the TTS's first audio reached vani (before framing and pacing)
    first_audio: float | None = None
    interrupt_event: float | None = None  # the interrupting speech started (its audio's arrival)
    output_paused: float | None = None  # audio.pause was decided for the interrupting speech
    interrupt_stopped: float | None = None


@dataclass
class Stage:
    """One stage of the turn (an LLM stream, a tool run, a TTS request) on the session clock: plain data,
    stamped as the stage goes, made into a span when the turn ends (``actors/agent/turn_trace.py``)."""

    name: str
    start: float
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)
    end: float | None = None  # None: still running when the turn ended
    error: str | None = None


@dataclass
class TurnIO:
    """The turn's own pipes: released tokens -> chunker -> speakable pieces (``None`` ends them)."""

    chunker: SpeakableChunker
    pieces: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    text_sent: bool = False  # the turn's first assistant.text went out (it never waits)
    text_pending: str = ""  # released tokens not sent yet (``assistant_text_interval_ms``)
    text_timer: Timer | None = None
    text_due: float | None = None  # when the pending batch closes (its timer may fire later)


class TurnHandle:
    def __init__(
        self,
        turn_id: int,
        user_text: str,
        clock: Clock,
        chunker: SpeakableChunker,
        *,
        speculative: bool = False,
        kind: TurnKind = TurnKind.REPLY,
    ) -> None:
        self.turn_id = turn_id
        self._clock = clock
        self.user_text = user_text
        self.speculative = speculative  # started on EagerEndOfTurn: output held until EndOfTurn confirms
        self.kind = kind
        self.io = TurnIO(chunker)
        self.playback = Playback(clock)
        self.timings = Timings()
        self.text = ""  # every token the LLM produced (sent to the client once released)
        self.held: list[str] = []  # tokens produced while speculative
        self.added: list[ChatMessage] = []  # tool call / result messages of this turn
        self.llm_streams = 0  # LLM streams open now (one at a time)
        self.audio_format: dict[str, Any] | None = None  # as announced in audio.start (None: no audio yet)
        self.played_at_interrupt: float | None = None  # seconds heard when stopped early
        self.created = clock.now()
        self.stages: list[Stage] = []  # for the turn's trace
        self.usage = Usage()  # LLM tokens, TTS characters, tools (actors/agent/usage.py)
        self.booked = False  # its usage and spans were booked (Turns._book: once, at its end, discard or close)
        self.released = asyncio.Event()
        if not speculative:
            self.released.set()
        self._outcome = TurnOutcome.PENDING
        self._settled = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ outcome (set here only)
    @property
    def outcome(self) -> TurnOutcome:
        return self._outcome

    @property
    def done(self) -> bool:
        return self._outcome is not TurnOutcome.PENDING

    @property
    def interrupted(self) -> bool:
        """Stopped before it played out, with a user who heard part of it."""
        return self._outcome in (TurnOutcome.INTERRUPTED, TurnOutcome.WATCHDOG)

    def finish(self) -> None:
        """The reply played out."""
        self._settle(TurnOutcome.DONE)

    def interrupt(self, outcome: TurnOutcome) -> None:
        """Stop the turn now: note what was heard, cancel its scope. The first outcome wins."""
        if self._settle(outcome):
            self.played_at_interrupt = self.playback.played_s()
        self.cancel()

    def _settle(self, outcome: TurnOutcome) -> bool:
        if self._outcome is not TurnOutcome.PENDING:
            return False
        self._outcome = outcome
        self._settled.set()
        return True

    def __await__(self) -> Generator[Any, None, bool]:
        """Wait until the turn has an outcome (played out or stopped)."""
        return self._settled.wait().__await__()

    # ------------------------------------------------------------------ release (speculative turns)
    def release(self) -> list[str]:
        """EndOfTurn confirmed a speculative turn: its output may leave; returns the tokens held so far."""
        held, self.held = self.held, []
        self.released.set()
        return held

    def stage(self, name: str, **attributes: Any) -> Stage:
        """A stage starting now (its owner sets ``end``)."""
        st = Stage(name, self._clock.now(), attributes)
        self.stages.append(st)
        return st

    def heard_text(self) -> str:
        return self.playback.heard_text(self.played_at_interrupt) if self.interrupted else self.text

    # ------------------------------------------------------------------ scope
    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` inside this turn's cancellation scope."""
        context = contextvars.copy_context()
        context.run(log_context, turn_id=self.turn_id)  # the turn's log lines say which turn (cluster/logs.py)
        task = asyncio.get_running_loop().create_task(coro, name=f"{name}:turn{self.turn_id}", context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cancel(self) -> None:
        """Cancel every task of this turn (synchronous: the decide step calls it)."""
        for task in list(self._tasks):
            task.cancel()

    async def wait_cancelled(self, timeout: float = 2.0) -> bool:
        """Wait until the turn's tasks have really finished (sockets closed), at most ``timeout`` seconds of
        the session's clock (``<= 0``: no limit). True when they all did."""
        pending = [t for t in self._tasks if not t.done()]
        if not pending:
            return True
        finished = asyncio.ensure_future(asyncio.wait(pending))
        waits: set[asyncio.Future[Any]] = {finished}
        if timeout > 0:
            waits.add(asyncio.ensure_future(self._clock.sleep(timeout)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return all(t.done() for t in pending)
