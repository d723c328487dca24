"""One handle per assistant turn: its id, its cancellation scope, and what was said and heard.

Every assistant turn (one reply to one user turn) gets a fresh ``AssistantTurn`` with a new,
increasing ``turn_id`` (the generation id carried by every audio frame and text event of the turn).
The turn owns the tasks that produce its output (LLM, tool, TTS); ``cancel()`` stops exactly those and
nothing else. The turn also keeps the timeline of the audio it sent, so on barge-in the history can be
cut to the text the user actually heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from vani.adapters.base import ChatMessage


@dataclass
class SpokenPiece:
    """A speakable piece of text and where its audio sits on the turn's playback timeline (seconds)."""

    text: str
    start_s: float
    duration_s: float = 0.0


@dataclass
class Timings:
    """Wall-clock (``time.monotonic``) marks for the LatencyReport; None = did not happen."""

    user_end_of_speech: float | None = None
    end_of_turn: float | None = None
    llm_request: float | None = None
    first_token: float | None = None
    first_text_token: float | None = None
    first_tool_token: float | None = None
    first_piece: float | None = None
    tts_request: float | None = None
    first_audio: float | None = None
    interrupt_event: float | None = None  # the interrupting speech started (its audio's arrival)
    output_paused: float | None = None  # audio.pause was decided for the interrupting speech
    interrupt_stopped: float | None = None


@dataclass
class AssistantTurn:
    turn_id: int
    user_text: str
    speculative: bool = False  # started on EagerEndOfTurn: output held until EndOfTurn confirms
    kind: str = "reply"  # "reply" | "fallback" (watchdog apology, no LLM)
    text: str = ""  # every token the LLM produced (sent to the client once released)
    held: list[str] = field(default_factory=list)  # tokens produced while speculative
    pieces: list[SpokenPiece] = field(default_factory=list)
    added: list[ChatMessage] = field(default_factory=list)  # tool call / result messages of this turn
    audio_s: float = 0.0  # seconds of audio sent so far
    playback_t0: float | None = None  # wall time the first audio chunk was sent
    client_played_s: float | None = None  # from the client's `playback` reports, when it sends them
    timings: Timings = field(default_factory=Timings)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    played_at_interrupt: float | None = None  # seconds heard when a barge-in / watchdog stopped it
    span: Any = None  # OpenTelemetry span of the turn
    outcome: str = "pending"  # pending | done | interrupted | cancelled | discarded | watchdog
    audio_format: dict[str, Any] | None = None  # as announced in audio.start (None: no audio yet)
    # The playback clock stops while the conversation is ``paused`` (set = running; see actors/agent/barge_in.py).
    paused_at: float | None = None
    unpaused: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.unpaused.set()
        if not self.speculative:
            self.released.set()

    # ------------------------------------------------------------------ playback clock
    def pause(self, now: float) -> None:
        """Stop the playback clock: the client pauses, the audio producer holds (``_pace``)."""
        self.paused_at = now
        self.unpaused.clear()

    def resume(self, now: float) -> None:
        """Restart the clock where it stopped: ``playback_t0`` moves by the time audio was paused."""
        if self.paused_at is not None and self.playback_t0 is not None:
            self.playback_t0 += max(0.0, now - max(self.paused_at, self.playback_t0))
        self.paused_at = None
        self.unpaused.set()

    # ------------------------------------------------------------------ scope
    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` inside this turn's cancellation scope."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{name}:turn{self.turn_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def cancel(self) -> None:
        """Cancel every task of this turn (synchronous: the decide step calls it)."""
        for task in list(self.tasks):
            task.cancel()

    async def wait_cancelled(self, timeout: float = 2.0) -> bool:
        """Wait until the turn's tasks have really finished (sockets closed), at most ``timeout`` seconds
        (``<= 0``: no limit). True when they all did."""
        pending = [t for t in self.tasks if not t.done()]
        if pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait(pending, timeout=timeout if timeout > 0 else None)
        return all(t.done() for t in pending)

    # ------------------------------------------------------------------ what was heard
    def played_s(self, now: float | None = None) -> float:
        """Seconds of this turn's audio the user has heard (client report, else real-time estimate)."""
        if self.client_played_s is not None:
            return min(self.client_played_s, self.audio_s)
        if self.playback_t0 is None:
            return 0.0
        now = time.monotonic() if now is None else now
        if self.paused_at is not None:  # nothing plays while paused
            now = min(now, self.paused_at)
        return max(0.0, min(self.audio_s, now - self.playback_t0))

    def heard_text(self, played_s: float | None = None) -> str:
        """The text of the audio played so far: whole pieces, then a word-proportional prefix."""
        played = self.played_s() if played_s is None else played_s
        words: list[str] = []
        for p in self.pieces:
            if p.duration_s <= 0 or played <= p.start_s:
                break
            piece_words = p.text.split()
            frac = min(1.0, (played - p.start_s) / p.duration_s)
            words += piece_words[: int(len(piece_words) * frac + 1e-9)]
            if frac < 1.0:
                break
        return " ".join(words)
