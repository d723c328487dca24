"""What each conversation watchdog guards, when it is armed, and what the client sees when it fires.

Every waiting state of the conversation machine has a watchdog (settings ``watchdog_*_s``, 0 = off):

    state          watchdog          armed                     outcome when it fires
    transcribing   turn_no_audio     no client audio           force_end_turn: Flux ForceEndTurn, the turn ends
    speculating    speculating       since EagerEndOfTurn      force_end_turn: the held reply is discarded, Flux
                                                               ForceEndTurn, back to transcribing; the forced
                                                               EndOfTurn gets a fresh reply
    thinking       llm_first_token   no LLM token              fallback_reply: turn cancelled, apology spoken
    thinking|speaking tts_stall      TTS gives no audio        reply_ended: audio.clear, turn ends
    cancelling     cancelling        cancelled turn's tasks    turn_abandoned: the conversation goes on; the
                                     still running             turn's late output is stale (its turn id)

``idle`` and ``listening`` wait for the user (the session TTL and the client's keep-alive cover them);
``interrupted`` is left in the same decide step it is entered. Timers post ``WATCHDOG`` to the inbox (the
decide step, ``actors/agent/decide.py``, handles it); the cancelling watchdog is the bounded wait itself (the
decide step is waiting there), so it fires in place.
"""

from __future__ import annotations

import logging
from typing import Protocol

from vani.actors.agent.context import AgentContext
from vani.actors.agent.machine import ASSISTANT
from vani.actors.agent.turn import TurnHandle, TurnKind, TurnOutcome
from vani.actors.wire import agent as wire

log = logging.getLogger("vani.watchdogs")

EXPECTED = {
    "turn_no_audio": ("transcribing",),
    "speculating": ("speculating",),
    "llm_first_token": ("thinking",),
    "tts_stall": ("thinking", "speaking"),
}


class Conversation(Protocol):
    """What the watchdogs read and do of the conversation (``actors/agent/conversation.py``)."""

    ctx: AgentContext
    conv_state: str
    turn: TurnHandle | None

    def discard_speculation(self) -> None: ...


OUTCOME = {
    "turn_no_audio": "force_end_turn",
    "speculating": "force_end_turn",
    "llm_first_token": "fallback_reply",
    "tts_stall": "reply_ended",
    "cancelling": "turn_abandoned",
}


def on_change(conv: Conversation, source: str, dest: str) -> None:
    """Arm the watchdog of the state entered, disarm those of the state left."""
    s, wd, turn = conv.ctx.settings, conv.ctx.watchdog, conv.turn
    if dest == "transcribing":
        wd.arm("turn_no_audio", s.watchdog_turn_no_audio_s)
    elif source == "transcribing":
        wd.disarm("turn_no_audio")
    if dest == "speculating" and source != "speculating":
        wd.arm("speculating", s.watchdog_speculating_s)
    elif dest != "speculating":
        wd.disarm("speculating")
    if dest == "thinking" and turn is not None and turn.timings.first_token is None:
        if turn.kind is TurnKind.REPLY and source != "thinking":
            wd.arm("llm_first_token", s.watchdog_llm_first_token_s)
    if dest not in ASSISTANT:
        wd.disarm("llm_first_token")
        wd.disarm("tts_stall")


def fired(conv: Conversation, name: str) -> None:
    """The ``WATCHDOG`` transition's action (synchronous): act, then tell the client."""
    ctx, turn = conv.ctx, conv.turn
    outcome = OUTCOME[name]
    turn_id = None if turn is None else turn.turn_id
    if name == "turn_no_audio":
        ctx.spawn(ctx.listener.force_end_turn(), "force-end")
    elif name == "speculating":
        conv.discard_speculation()  # nothing of it reached the client
        ctx.spawn(ctx.listener.force_end_turn(), "force-end")
    elif name == "cancelling":
        log.warning(
            "session=%s turn %s still running %.1f s after cancel",
            ctx.session_id,
            turn_id,
            ctx.settings.watchdog_cancelling_s,
        )
    elif turn is not None:
        if turn.kind is TurnKind.FALLBACK and name == "llm_first_token":
            outcome = "reply_ended"
        turn.interrupt(TurnOutcome.WATCHDOG)
        if turn.playback.t0 is not None:
            ctx.outbound.clear_audio()
            ctx.send(wire.audio_clear(turn.turn_id, "watchdog"))
    ctx.trace.event("watchdog", name=name, state=conv.conv_state, outcome=outcome)
    ctx.send(wire.event("watchdog", name=name, state=conv.conv_state, outcome=outcome, turn_id=turn_id))
