"""The decide step of an agent conversation: one inbox event at a time, in arrival order.

Every event the conversation reacts to (STT events, watchdog firings, turn progress tagged with its turn
id) is handled here, by firing events at the conversation machine (``actors/agent/machine.py``). The barge-in
policy (``actors/agent/barge_in_policy.py``) is asked about user speech that overlaps a reply; nothing else
decides whether a reply is interrupted. The only awaits wait for a cancelled turn to finish, so
``cancelling`` is a real, observable state and no event is handled half-way through a cancellation.
"""

from __future__ import annotations

import logging
from typing import Any

from vani.actors.agent.barge_in_policy import Verdict
from vani.actors.agent.conversation import Conversation, turn_id
from vani.actors.agent.machine import REPLY, STT_EVENT, user_turn_event
from vani.actors.agent.turn import TurnHandle, TurnKind
from vani.actors.agent.watchdogs import EXPECTED
from vani.actors.fsm import InvalidEvent
from vani.actors.wire import agent as wire
from vani.adapters.base import TurnEvent, TurnEventType

log = logging.getLogger("vani.decide")


async def step(conv: Conversation, kind: str, data: Any) -> None:
    """One inbox event (``stt_closed`` is the engine's: it ends the session)."""
    try:
        if kind == "stt":
            await on_stt(conv, *data)
        elif kind == "WATCHDOG":
            await on_watchdog(conv, data)
        elif kind == "AUDIO_FRAME":
            if conv.conv_state == "idle":
                conv.machine.fire("AUDIO_FRAME")
        elif conv.turn is not None and data == conv.turn.turn_id and conv.machine.can(kind):
            conv.machine.fire(kind, data)  # AUDIO_STARTED / REPLY_DONE / PAUSE_TIMEOUT of the current turn
        else:
            log.debug("session=%s stale %s(%s) in %s", conv.ctx.session_id, kind, data, conv.conv_state)
    except InvalidEvent as exc:
        log.warning("session=%s conversation: %s", conv.ctx.session_id, exc)


async def on_stt(conv: Conversation, ev: TurnEvent, arrived: float) -> None:
    t, state = ev.event, conv.conv_state
    if state in REPLY:  # user speech during a reply: pause first, decide after
        await on_overlap(conv, ev, arrived)
        return
    event = user_turn_event(conv, ev)
    if event is None:
        return
    conv.machine.fire(event, ev, arrived)
    if t is TurnEventType.TURN_RESUMED and state == "speculating":
        await reap_discarded(conv)


async def on_overlap(conv: Conversation, ev: TurnEvent, arrived: float) -> None:
    """An STT event while a reply is under way (``thinking``, ``speaking`` or ``paused``)."""
    t, machine = ev.event, conv.machine
    if t is TurnEventType.START_OF_TURN:
        conv.user_turn_open = True
        machine.fire("PAUSE" if conv.conv_state != "paused" else "TURN_START", ev, arrived)
        # After PAUSE: entering ``paused`` reset the policy of the previous overlapping speech.
        if conv.policy.decide(ev) is Verdict.INTERRUPT:
            await barge_in(conv, ev, arrived)
        return
    if t is not TurnEventType.END_OF_TURN and not conv.user_turn_open:
        return  # an Update outside any turn: nothing to decide
    verdict = conv.policy.decide(ev)
    if verdict is Verdict.BACKCHANNEL:
        conv.stats["backchannels"] += 1
        conv.user_turn_open = False
        conv.policy.reset()
        conv.ctx.send(wire.event("backchannel", transcript=ev.transcript, turn_id=turn_id(conv)))
        if conv.conv_state == "paused":
            machine.fire("RESUME_REPLY", turn_id(conv))
    elif verdict is Verdict.INTERRUPT:
        await barge_in(conv, ev, arrived)
        if t is TurnEventType.END_OF_TURN:
            conv.user_turn_open = False
            machine.fire("TRANSCRIPT_FINAL", ev, arrived)
    elif t is not TurnEventType.END_OF_TURN:
        machine.fire(STT_EVENT[t], ev)


async def barge_in(conv: Conversation, ev: TurnEvent, arrived: float) -> None:
    turn = conv.turn
    assert turn is not None
    turn.timings.interrupt_event = turn.timings.interrupt_event or arrived  # speech start, when paused
    conv.machine.fire("BARGE_IN", ev)
    conv.machine.fire("CANCEL")
    await wait_cancelled(conv, turn)
    end_turn(conv, turn)
    conv.policy.reset()
    conv.machine.fire("CANCELLED")


async def reap_discarded(conv: Conversation) -> None:
    turn = conv.discarded
    if turn is not None:
        await turn.wait_cancelled()
        conv.discarded = None


async def on_watchdog(conv: Conversation, name: str) -> None:
    """A timer's ``WATCHDOG``: act if the conversation is still where the timer was armed for."""
    state = conv.conv_state
    if state not in EXPECTED.get(name, ()):
        log.debug("session=%s stale watchdog %s in %s", conv.ctx.session_id, name, state)
        return
    turn = conv.turn
    conv.machine.fire("WATCHDOG", name)
    if name == "speculating":
        await reap_discarded(conv)
        return
    if turn is None or state == "transcribing":
        return
    await wait_cancelled(conv, turn)
    end_turn(conv, turn)
    conv.machine.fire("CANCELLED")
    if name == "llm_first_token" and turn.kind is TurnKind.REPLY and conv.conv_state == "listening":
        conv.turn = conv.turns.start(turn.user_text, kind=TurnKind.FALLBACK)
        conv.machine.fire("SPEAK_FALLBACK")


async def wait_cancelled(conv: Conversation, turn: TurnHandle) -> None:
    """``cancelling``: wait for the turn's tasks, at most ``watchdog_cancelling_s``; past it, say so."""
    if not await turn.wait_cancelled(conv.ctx.settings.watchdog_cancelling_s):
        conv.ctx.watchdog.fired.append("cancelling")
        conv.machine.fire("WATCHDOG", "cancelling")


def end_turn(conv: Conversation, turn: TurnHandle) -> None:
    conv.turns.end(turn)
