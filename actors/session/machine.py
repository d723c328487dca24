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
from collections.abc import Callable
from typing import Any

from transitions import Machine, MachineError

log = logging.getLogger("vani.session")
# transitions logs every callback at INFO; our own transition log below is the one to read.
logging.getLogger("transitions").setLevel(logging.WARNING)

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


class InvalidEvent(Exception):
    def __init__(self, event: str, state: str) -> None:
        super().__init__(f"event {event} is not valid in state {state}")
        self.event = event
        self.state = state


class SessionMachine:
    """Wraps a ``transitions.Machine`` around a model object (the session).

    The model provides the ``after`` callbacks named in ``TRANSITIONS`` and may define
    ``on_state_change(source, dest, event)``. Callbacks are synchronous: the decide step never awaits;
    side effects that need I/O are queued by the model.
    """

    def __init__(self, model: Any, session_id: str, initial: str = "connected") -> None:
        self.model = model
        self.session_id = session_id
        self.history: list[tuple[str, str, str]] = []  # (source, event, dest), bounded below
        self._machine = Machine(
            model=model,
            states=STATES,
            transitions=TRANSITIONS,
            initial=initial,
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=False,
            model_attribute="state",
        )
        self._on_change: Callable[[str, str, str], None] | None = getattr(model, "on_state_change", None)

    @property
    def state(self) -> str:
        return self.model.state

    def can(self, event: str) -> bool:
        return event in self._machine.get_triggers(self.model.state)

    def fire(self, event: str, *args: Any, **kwargs: Any) -> str:
        """Fire ``event``; returns the new state or raises ``InvalidEvent``."""
        source = self.model.state
        try:
            getattr(self.model, event)(*args, **kwargs)
        except (MachineError, AttributeError) as exc:
            log.warning("session=%s rejected event=%s state=%s", self.session_id, event, source)
            raise InvalidEvent(event, source) from exc
        dest = self.model.state
        if event not in _QUIET:
            log.info("session=%s %s --%s--> %s", self.session_id, source, event, dest)
            self.history.append((source, event, dest))
            del self.history[:-64]
            if self._on_change is not None:
                self._on_change(source, dest, event)
        return dest
