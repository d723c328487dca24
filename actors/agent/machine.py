"""The conversation's explicit state machine (agent and transcription sessions).

It sits beside the connection lifecycle machine (``actors/session/machine.py``): that one says whether a
client is attached; this one says where the conversation is. One table, read top to bottom:

    state         event               condition          -> next state   action (model method)
    idle          AUDIO_FRAME                               listening     -
    idle|listening TURN_START                               transcribing  user turn opens
    listening     AUDIO_FRAME                               (stay)        -
    transcribing  TRANSCRIPT_PARTIAL                        (stay)        partial transcript
    transcribing  EAGER_EOT           is_agent              speculating   start_speculation (LLM held)
    transcribing  EAGER_EOT           else                  (stay)        -
    transcribing  TRANSCRIPT_FINAL    wants_reply           thinking      start_reply
    transcribing  TRANSCRIPT_FINAL    else                  listening     record_user_turn
    speculating   TRANSCRIPT_PARTIAL                        (stay)        -
    speculating   TURN_RESUMED                              transcribing  discard_speculation
    speculating   TRANSCRIPT_FINAL                          thinking      confirm_speculation
    thinking      AUDIO_STARTED       is_current            speaking      -
    thinking|speaking|paused REPLY_DONE  is_current, user_turn_is_open  transcribing  finish_reply
    thinking|speaking|paused REPLY_DONE  is_current         listening     finish_reply
    listening     SPEAK_FALLBACK                            thinking      (watchdog: apology turn started)
    thinking|speaking PAUSE                                 paused        pause_output (audio.pause; reply audio held)
    thinking|speaking TRANSCRIPT_PARTIAL|EAGER_EOT|TURN_RESUMED   (stay)  overlap speech, see actors/agent/decide.py
    paused        TURN_START|TRANSCRIPT_PARTIAL|EAGER_EOT|TURN_RESUMED|AUDIO_STARTED   (stay)  policy still deciding
    paused        RESUME_REPLY        has_audio             speaking      resume_output (audio.resume)
    paused        RESUME_REPLY                              thinking      resume_output (audio.resume)
    paused        PAUSE_TIMEOUT       (as RESUME_REPLY)     speaking|thinking  pause_timed_out, resume_output
    thinking|speaking|paused BARGE_IN                       interrupted   stop_output (audio.clear)
    interrupted   CANCEL                                    cancelling    cancel_turn (scope cancelled)
    cancelling    CANCELLED           user_turn_is_open     transcribing  -
    cancelling    CANCELLED           else                  listening     -
    transcribing  WATCHDOG                                  (stay)        watchdog_fired (ForceEndTurn)
    speculating   WATCHDOG                                  transcribing  watchdog_fired (speculation
                                                                          discarded, ForceEndTurn)
    thinking|speaking WATCHDOG                              cancelling    watchdog_fired (turn cancelled)
    cancelling    WATCHDOG                                  (stay)        watchdog_fired (turn abandoned:
                                                                          its tasks outlived the wait)

Every waiting state has a watchdog (``actors/agent/watchdogs.py``); ``idle`` / ``listening`` wait for the user.

Pause first, decide after (``actors/agent/barge_in.py``): a user ``StartOfTurn`` during the reply fires
``PAUSE`` (the client pauses playback, the reply's audio is held where it is); ``BARGE_IN`` is fired
only once the barge-in policy (``actors/agent/barge_in_policy.py``) says the overlapping speech interrupts, and
``RESUME_REPLY`` when it was a backchannel or noise (``PAUSE_TIMEOUT``: the user turn did not end in
``watchdog_paused_s``; the policy did not call it an interruption, so the reply resumes). Leaving ``paused`` by any
event releases the held audio lane (``on_exit_paused``).

The decide step (``fire``) never awaits: actions are synchronous and hand any I/O to tasks owned by
the engine. Events the current state does not accept raise
``InvalidEvent`` (the decide step logs them; nothing is silently dropped).
"""

from __future__ import annotations

from typing import Any

from vani.actors.fsm import StateMachine
from vani.adapters.base import TurnEvent, TurnEventType

STATES: list[Any] = [
    "idle",
    "listening",
    "transcribing",
    "speculating",
    "thinking",
    "speaking",
    {"name": "paused", "on_exit": "on_exit_paused"},
    "interrupted",
    "cancelling",
]
ASSISTANT = ["thinking", "speaking"]
REPLY = [*ASSISTANT, "paused"]  # an assistant reply is under way (user speech now overlaps it)
OVERLAP = ["TRANSCRIPT_PARTIAL", "EAGER_EOT", "TURN_RESUMED"]

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "AUDIO_FRAME", "source": "idle", "dest": "listening"},
    {"trigger": "AUDIO_FRAME", "source": "listening", "dest": None},
    {"trigger": "TURN_START", "source": ["idle", "listening"], "dest": "transcribing"},
    {"trigger": "TRANSCRIPT_PARTIAL", "source": ["transcribing", "speculating"], "dest": None},
    {
        "trigger": "EAGER_EOT",
        "source": "transcribing",
        "dest": "speculating",
        "conditions": "is_agent",
        "after": "start_speculation",
    },
    {"trigger": "EAGER_EOT", "source": "transcribing", "dest": None},
    {
        "trigger": "TRANSCRIPT_FINAL",
        "source": "transcribing",
        "dest": "thinking",
        "conditions": "wants_reply",
        "after": "start_reply",
    },
    {"trigger": "TRANSCRIPT_FINAL", "source": "transcribing", "dest": "listening", "after": "record_user_turn"},
    {"trigger": "TURN_RESUMED", "source": "speculating", "dest": "transcribing", "after": "discard_speculation"},
    {"trigger": "TRANSCRIPT_FINAL", "source": "speculating", "dest": "thinking", "after": "confirm_speculation"},
    {"trigger": "AUDIO_STARTED", "source": "thinking", "dest": "speaking", "conditions": "is_current"},
    {
        "trigger": "REPLY_DONE",
        "source": REPLY,
        "dest": "transcribing",
        "conditions": ["is_current", "user_turn_is_open"],
        "after": "finish_reply",
    },
    {
        "trigger": "REPLY_DONE",
        "source": REPLY,
        "dest": "listening",
        "conditions": "is_current",
        "after": "finish_reply",
    },
    {"trigger": "SPEAK_FALLBACK", "source": "listening", "dest": "thinking"},
    *({"trigger": ev, "source": ASSISTANT, "dest": None} for ev in OVERLAP),
    {"trigger": "PAUSE", "source": ASSISTANT, "dest": "paused", "after": "pause_output"},
    *({"trigger": ev, "source": "paused", "dest": None} for ev in [*OVERLAP, "TURN_START", "AUDIO_STARTED"]),
    *(
        t
        for ev, after in (("RESUME_REPLY", ["resume_output"]), ("PAUSE_TIMEOUT", ["pause_timed_out", "resume_output"]))
        for t in (
            {"trigger": ev, "source": "paused", "dest": "speaking", "conditions": "has_audio", "after": after},
            {"trigger": ev, "source": "paused", "dest": "thinking", "after": after},
        )
    ),
    {"trigger": "BARGE_IN", "source": REPLY, "dest": "interrupted", "after": "stop_output"},
    {"trigger": "CANCEL", "source": "interrupted", "dest": "cancelling", "after": "cancel_turn"},
    {"trigger": "CANCELLED", "source": "cancelling", "dest": "transcribing", "conditions": "user_turn_is_open"},
    {"trigger": "CANCELLED", "source": "cancelling", "dest": "listening"},
    {"trigger": "WATCHDOG", "source": "transcribing", "dest": None, "after": "watchdog_fired"},
    {"trigger": "WATCHDOG", "source": "speculating", "dest": "transcribing", "after": "watchdog_fired"},
    {"trigger": "WATCHDOG", "source": ASSISTANT, "dest": "cancelling", "after": "watchdog_fired"},
    {"trigger": "WATCHDOG", "source": "cancelling", "dest": None, "after": "watchdog_fired"},
]

_QUIET = {"AUDIO_FRAME", "TRANSCRIPT_PARTIAL"}

STT_EVENT = {
    TurnEventType.START_OF_TURN: "TURN_START",
    TurnEventType.UPDATE: "TRANSCRIPT_PARTIAL",
    TurnEventType.EAGER_END_OF_TURN: "EAGER_EOT",
    TurnEventType.TURN_RESUMED: "TURN_RESUMED",
    TurnEventType.END_OF_TURN: "TRANSCRIPT_FINAL",
}


def user_turn_event(model: Any, ev: TurnEvent) -> str | None:
    """Track the STT's user turn on ``model.user_turn_open``; the machine event for ``ev``, or None for an
    Update outside any turn (nothing to decide)."""
    if ev.event is TurnEventType.START_OF_TURN:
        model.user_turn_open = True
    elif ev.event is TurnEventType.END_OF_TURN:
        model.user_turn_open = False
    elif not model.user_turn_open:
        return None
    return STT_EVENT[ev.event]


class ConversationMachine(StateMachine):
    """The conversation table over a model whose ``conv_state`` attribute is the state.

    The model provides the conditions and ``after`` actions named in ``TRANSITIONS`` and may define
    ``on_conversation_change(source, dest, event)``.
    """

    def __init__(self, model: Any, session_id: str) -> None:
        super().__init__(
            model,
            name="conversation",
            session_id=session_id,
            states=STATES,
            transitions=TRANSITIONS,
            initial="idle",
            attribute="conv_state",
            hook="on_conversation_change",
            quiet=_QUIET,
        )
