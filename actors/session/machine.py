"""The session's explicit state machine: every session behaviour starts here.

States and transitions are one table (``TRANSITIONS``); read it to know what happens when. Events
that the current state does not accept are rejected explicitly: ``fire`` raises ``InvalidEvent``
(the session turns that into an ``error`` message for the client) and logs it — never silently.

    state        event         -> next state   notes
    connected    START            streaming    session.started was sent
    streaming    AUDIO_FRAME      (stay)       frame goes to the inbound ring
    muted        AUDIO_FRAME      (stay)       frame is discarded and counted (mic muted)
    streaming    MUTE             muted
    muted        UNMUTE           streaming
    live*        DISCONNECT       suspended    link lost; TTL timer starts
    suspended    RESUME           streaming    same id + resume token within TTL
    suspended    TIMEOUT          closed       TTL expired; session destroyed
    live*/susp.  ERROR            closed       fatal: flood, internal failure
    live*/susp.  CLOSE            closed       client `close`, server shutdown

    live* = connected, streaming, muted

Mute belongs to a connection (it is the client's microphone): a resumed connection starts in
``streaming`` and re-sends ``mute`` if it wants to.
"""

from __future__ import annotations

import logging
from typing import Any

from vani.actors.fsm import InvalidEvent, StateMachine

__all__ = ["EVENTS", "LIVE", "STATES", "TRANSITIONS", "InvalidEvent", "SessionMachine"]

STATES = ["connected", "streaming", "muted", "suspended", "closed"]
LIVE = ["connected", "streaming", "muted"]
EVENTS = ["START", "AUDIO_FRAME", "MUTE", "UNMUTE", "DISCONNECT", "RESUME", "TIMEOUT", "ERROR", "CLOSE"]

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "START", "source": "connected", "dest": "streaming"},
    {"trigger": "AUDIO_FRAME", "source": "streaming", "dest": None, "after": "on_audio_frame"},
    {"trigger": "AUDIO_FRAME", "source": "muted", "dest": None, "after": "on_muted_frame"},
    {"trigger": "MUTE", "source": "streaming", "dest": "muted"},
    {"trigger": "UNMUTE", "source": "muted", "dest": "streaming"},
    {"trigger": "DISCONNECT", "source": LIVE, "dest": "suspended"},
    {"trigger": "RESUME", "source": "suspended", "dest": "streaming"},
    {"trigger": "TIMEOUT", "source": "suspended", "dest": "closed"},
    {"trigger": "ERROR", "source": [*LIVE, "suspended"], "dest": "closed"},
    {"trigger": "CLOSE", "source": [*LIVE, "suspended"], "dest": "closed"},
]

# Events fired once per audio frame are not logged (they do not change state).
_QUIET = {"AUDIO_FRAME"}


class SessionMachine(StateMachine):
    """The lifecycle table over a session model (its ``state`` attribute; ``on_state_change`` hook).

    Callbacks are synchronous: the decide step never awaits; side effects that need I/O are queued by the model.
    """

    def __init__(self, model: Any, session_id: str, initial: str = "connected") -> None:
        super().__init__(
            model,
            name="session",
            session_id=session_id,
            states=STATES,
            transitions=TRANSITIONS,
            initial=initial,
            attribute="state",
            hook="on_state_change",
            quiet=_QUIET,
            log_level=logging.INFO,
            keep=64,
        )
