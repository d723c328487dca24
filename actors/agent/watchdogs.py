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
``interrupted`` is left in the same decide step it is entered. Timers post ``WATCHDOG`` to the inbox; the
cancelling watchdog is the bounded wait itself (the decide step is waiting there), so it fires in place.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from vani.actors.agent.machine import ASSISTANT
from vani.actors.agent.turn import AssistantTurn
from vani.actors.wire import agent as ap

if TYPE_CHECKING:
    from vani.actors.agent.pipeline import Pipeline

log = logging.getLogger("vani.watchdogs")

EXPECTED = {
    "turn_no_audio": ("transcribing",),
    "speculating": ("speculating",),
    "llm_first_token": ("thinking",),
    "tts_stall": ("thinking", "speaking"),
}
OUTCOME = {
    "turn_no_audio": "force_end_turn",
    "speculating": "force_end_turn",
    "llm_first_token": "fallback_reply",
    "tts_stall": "reply_ended",
    "cancelling": "turn_abandoned",
}


def on_change(p: Pipeline, source: str, dest: str) -> None:
    """Arm the watchdog of the state entered, disarm those of the state left."""
    s, wd = p.settings, p.watchdog
    if dest == "transcribing" and p.mode == "agent":
        wd.arm("turn_no_audio", s.watchdog_turn_no_audio_s)
    elif source == "transcribing":
        wd.disarm("turn_no_audio")
    if dest == "speculating" and source != "speculating":
        wd.arm("speculating", s.watchdog_speculating_s)
    elif dest != "speculating":
        wd.disarm("speculating")
    if dest == "thinking" and p.turn is not None and p.turn.timings.first_token is None:
        if p.turn.kind == "reply" and source != "thinking":
            wd.arm("llm_first_token", s.watchdog_llm_first_token_s)
    if dest not in ASSISTANT:
        wd.disarm("llm_first_token")
        wd.disarm("tts_stall")


def fired(p: Pipeline, name: str) -> None:
    """The ``WATCHDOG`` transition's action (synchronous): act, then tell the client."""
    outcome, turn = OUTCOME[name], p.turn
    turn_id = p.turn_id
    if name == "turn_no_audio":
        p._spawn(p._force_end_turn(), "force-end")
    elif name == "speculating":
        p.discard_speculation()  # nothing of it reached the client
        p._spawn(p._force_end_turn(), "force-end")
    elif name == "cancelling":
        log.warning(
            "session=%s turn %s still running %.1f s after cancel",
            p.session_id,
            turn_id,
            p.settings.watchdog_cancelling_s,
        )
    elif turn is not None:
        if turn.kind == "fallback" and name == "llm_first_token":
            outcome = "reply_ended"
        turn.outcome = "watchdog"
        turn.played_at_interrupt = turn.played_s()
        turn.cancel()
        if turn.playback_t0 is not None:
            p.outbound.clear_audio()
            p.send(ap.audio_clear(turn.turn_id, "watchdog"))
    p.send(ap.event("watchdog", name=name, state=p.conv_state, outcome=outcome, turn_id=turn_id))


async def handle(p: Pipeline, name: str) -> None:
    """A timer's ``WATCHDOG`` from the inbox, in the decide step."""
    state = p.conv_state
    if state not in EXPECTED.get(name, ()):
        log.debug("session=%s stale watchdog %s in %s", p.session_id, name, state)
        return
    turn = p.turn
    p.machine.fire("WATCHDOG", name)
    if name == "speculating":
        await p._reap_discarded()
        return
    if turn is None or state == "transcribing":
        return
    await wait_cancelled(p, turn)
    p._end_turn(turn)
    p.machine.fire("CANCELLED")
    if name == "llm_first_token" and turn.kind != "fallback" and p.conv_state == "listening":
        p._start_turn(turn.user_text, kind="fallback")
        p.machine.fire("SPEAK_FALLBACK")


async def wait_cancelled(p: Pipeline, turn: AssistantTurn) -> None:
    """``cancelling``: wait for the turn's tasks, at most ``watchdog_cancelling_s``; past it, say so."""
    if not await turn.wait_cancelled(p.settings.watchdog_cancelling_s):
        p.watchdog.fired.append("cancelling")
        p.machine.fire("WATCHDOG", "cancelling")
