"""The conversation machine's model: where the conversation is, what it holds, and the table's steps.

The table is ``actors/agent/machine.py``; this class provides what it names: the conditions (``is_*``,
``wants_reply``, ``has_audio``, ...) and the actions, which never await (I/O goes to tasks the engine
owns). The decide step (``actors/agent/decide.py``) fires events at ``machine``; nothing else changes
``conv_state``. Conversation data (history as the LLM sees it, final transcripts, the current turn, stats)
lives here too, beside the state it belongs to.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from vani.actors.agent import watchdogs
from vani.actors.agent.barge_in import PauseControl
from vani.actors.agent.barge_in_policy import make_policy
from vani.actors.agent.bounds import ContextWindow
from vani.actors.agent.context import AgentContext
from vani.actors.agent.machine import ASSISTANT, ConversationMachine
from vani.actors.agent.reply import emit_token
from vani.actors.agent.turn import TurnHandle, TurnOutcome
from vani.actors.agent.turns import Turns
from vani.actors.wire import agent as wire
from vani.adapters.base import ChatMessage, TurnEvent


class Conversation:
    def __init__(self, ctx: AgentContext, transcripts: deque[dict[str, Any]]) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.conv_state = "idle"  # owned by the machine
        self.machine = ConversationMachine(self, ctx.session_id)
        self.policy = make_policy(s.barge_in_policy, s.barge_in_min_ms, s.barge_in_min_words)
        self.pause = PauseControl(ctx)
        self.history = ContextWindow(s.llm_context_max_turns, s.llm_context_max_chars)
        self.transcripts = transcripts
        self.stats = {"turns": 0, "interrupted": 0, "backchannels": 0, "eager_started": 0, "eager_discarded": 0}
        self.turns = Turns(ctx, self.history, self.stats)
        self.turn: TurnHandle | None = None
        self.discarded: TurnHandle | None = None  # a speculative turn still letting go of its tasks
        self.user_turn_open = False  # between the user's StartOfTurn and EndOfTurn (STT's view, not ours)

    # ------------------------------------------------------------------ conditions
    def is_agent(self, *_: Any) -> bool:
        return True

    def wants_reply(self, ev: TurnEvent | None = None, *_: Any) -> bool:
        return ev is not None and bool(ev.transcript.strip())

    def is_current(self, turn_id: int | None = None, *_: Any) -> bool:
        return self.turn is not None and turn_id == self.turn.turn_id

    def user_turn_is_open(self, *_: Any) -> bool:
        return self.user_turn_open

    def has_audio(self, *_: Any) -> bool:
        return self.turn is not None and self.turn.playback.t0 is not None

    # ------------------------------------------------------------------ actions (never await)
    def record_user_turn(self, ev: TurnEvent, arrived: float | None = None, *_: Any) -> None:
        self.transcripts.append({"turn_index": ev.turn_index, "transcript": ev.transcript})
        if ev.transcript.strip():
            self.history.append(ChatMessage("user", ev.transcript))
        self.ctx.checkpoint()

    def start_reply(self, ev: TurnEvent, arrived: float | None = None, *_: Any) -> None:
        self.record_user_turn(ev)
        self.turn = self.turns.start(ev.transcript)
        self.turns.stamp_end_of_turn(self.turn, ev, arrived)

    def start_speculation(self, ev: TurnEvent, *_: Any) -> None:
        self.stats["eager_started"] += 1
        self.turn = self.turns.start(ev.transcript, speculative=True)

    def discard_speculation(self, *_: Any) -> None:
        turn = self.turn
        assert turn is not None
        self.stats["eager_discarded"] += 1
        turn.interrupt(TurnOutcome.DISCARDED)
        self.turns.discarded(turn)
        self.discarded, self.turn = turn, None

    def confirm_speculation(self, ev: TurnEvent, arrived: float | None = None, *_: Any) -> None:
        turn = self.turn
        assert turn is not None
        self.record_user_turn(ev)
        self.turns.stamp_end_of_turn(turn, ev, arrived)
        for tok in turn.release():  # what the speculative LLM already produced, in order
            emit_token(self.ctx, turn, tok)

    def stop_output(self, *_: Any) -> None:
        """Barge-in: drop queued audio now and tell the client to flush its playback buffer."""
        turn = self.turn
        assert turn is not None
        turn.interrupt(TurnOutcome.INTERRUPTED)
        self.stats["interrupted"] += 1
        self.ctx.outbound.clear_audio()
        self.ctx.send(wire.audio_clear(turn.turn_id, "barge_in"))

    def cancel_turn(self, *_: Any) -> None:
        assert self.turn is not None
        self.turn.cancel()

    def watchdog_fired(self, name: str, *_: Any) -> None:
        watchdogs.fired(self, name)

    def finish_reply(self, *_: Any) -> None:
        assert self.turn is not None
        self.turns.end(self.turn)

    def on_conversation_change(self, source: str, dest: str, event: str) -> None:
        self.ctx.send(
            wire.event("conversation", **{"from": source, "to": dest, "event": event, "turn_id": turn_id(self)})
        )
        watchdogs.on_change(self, source, dest)
        if dest not in ASSISTANT:
            self.policy.reset()

    # ``paused`` (actors/agent/barge_in.py)
    def pause_output(self, ev: TurnEvent, arrived: float | None = None, *_: Any) -> None:
        assert self.turn is not None
        self.pause.pause_output(self.turn, ev, arrived)

    def resume_output(self, *_: Any) -> None:
        assert self.turn is not None
        self.pause.resume_output(self.turn)

    def pause_timed_out(self, turn_id: int | None = None, *_: Any) -> None:
        self.pause.timed_out(turn_id)

    def on_exit_paused(self, *_: Any) -> None:
        self.pause.release()


def turn_id(conv: Conversation) -> int | None:
    return None if conv.turn is None else conv.turn.turn_id
