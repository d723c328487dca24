"""Turns of one conversation: start one (its handle, its LLM context), stamp its timeline, end it.

Ending a turn writes the history as the LLM will see it next (an interrupted reply is cut to what the user
heard, marked ``[interrupted]``), tells the client (``assistant.message``) and reports the turn's latencies
(``LatencyReport``, ``actors/agent/latency_report.py``).
"""

from __future__ import annotations

from vani.actors.agent import latency_report
from vani.actors.agent.barge_in import stopped_at
from vani.actors.agent.bounds import ContextWindow, RecentTurns
from vani.actors.agent.chunker import SpeakableChunker
from vani.actors.agent.context import AgentContext
from vani.actors.agent.reply import flush_text, run_turn
from vani.actors.agent.turn import TurnHandle, TurnKind
from vani.actors.agent.turn_trace import turn_spans
from vani.actors.agent.usage import SessionUsage, Usage
from vani.actors.wire import agent as wire
from vani.adapters.base import ChatMessage, TurnEvent


class Turns:
    def __init__(self, ctx: AgentContext, history: ContextWindow, stats: dict[str, int]) -> None:
        self.ctx, self.history, self.stats = ctx, history, stats
        self.next_id = 1
        # turn id -> when its last audio frame left on the link (barge-in stop latency); live turns only
        self.last_audio_sent = RecentTurns(keep=4)
        self.usage = SessionUsage(ctx.settings, lambda: ctx.listener.audio_bytes)

    def start(self, user_text: str, *, speculative: bool = False, kind: TurnKind = TurnKind.REPLY) -> TurnHandle:
        """A new turn, its reply running in its own scope (one LLM stream per session at a time)."""
        ctx, s = self.ctx, self.ctx.settings
        chunker = SpeakableChunker(s.chunker_first_words, s.chunker_max_words)
        turn = TurnHandle(self.next_id, user_text, ctx.clock, chunker, speculative=speculative, kind=kind)
        self.next_id += 1
        self.stats["turns"] += 1
        messages = [ChatMessage("system", s.agent_system_prompt), *self._context()]
        if speculative:
            messages.append(ChatMessage("user", user_text))
        turn.spawn(run_turn(ctx, turn, messages), "reply")
        return turn

    def _context(self) -> list[ChatMessage]:
        return [m for m in self.history if m.content or m.tool_calls or m.role == "tool"]

    def stamp_end_of_turn(self, turn: TurnHandle, ev: TurnEvent, arrived: float | None) -> None:
        """EndOfTurn's arrival, and when the user really stopped speaking (the last word's end, on the
        audio clock)."""
        turn.timings.end_of_turn = arrived or self.ctx.clock.now()
        end_s = ev.words[-1].end if ev.words and ev.words[-1].end is not None else ev.audio_window_end
        turn.timings.user_end_of_speech = self.ctx.listener.arrival_of(end_s) or turn.timings.end_of_turn

    def end(self, turn: TurnHandle) -> None:
        """History, client summary and LatencyReport for a finished or interrupted turn."""
        flush_text(self.ctx, turn)  # every released token reaches the client before the turn's summary
        heard = turn.heard_text()
        self.history += turn.added
        if heard or turn.interrupted:
            content = f"{heard} [interrupted]".strip() if turn.interrupted else heard
            self.history.append(ChatMessage("assistant", content))
        turn.timings.interrupt_stopped = stopped_at(turn, self.last_audio_sent.get(turn.turn_id))
        report = latency_report.build(turn)
        usage = self._book(turn, turn.playback.audio_s, stt=True, report=report)
        self.ctx.send(
            wire.event(
                "assistant.message",
                turn_id=turn.turn_id,
                text=heard,
                full_text=turn.text,
                interrupted=turn.interrupted,
                outcome=turn.outcome.value,
                usage=usage.to_dict(),
            )
        )
        self.ctx.send(wire.dumps(report))
        latency_report.record(report, turn, self.ctx.settings)
        self.ctx.checkpoint()

    def discarded(self, turn: TurnHandle) -> None:
        """A speculative turn let go: nothing of it reached the client; its trace and its LLM tokens say it was."""
        self._book(turn, 0.0, stt=False)

    def closing(self, turn: TurnHandle | None) -> None:
        """The session ends: the books and spans of a turn still running, then the STT seconds left."""
        if turn is not None:
            self._book(turn, turn.playback.audio_s, stt=False)
        self.usage.close()

    def _book(self, turn: TurnHandle, audio_out_s: float, *, stt: bool, report: dict | None = None) -> Usage:
        """A turn that is over, booked once (its end, its discard or the session's close, whichever is first):
        its usage into the session's totals and counters, its spans to the trace."""
        if turn.booked:
            return turn.usage
        turn.booked = True
        usage = self.usage.turn_over(turn.usage, audio_out_s, stt=stt)
        turn_spans(self.ctx.trace, turn, report)
        return usage
