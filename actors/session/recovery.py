"""Taking back a session its host no longer holds: the decision, given what the store says.

A link for a session id this host does not hold, with a resume token: the session may have lived on a
host that died (a crash, a node gone). ``decide`` reads the store and says what to do: restore the stored
session (the token matches), refuse (a stored session with another token: never hand it to a stranger, nor
overwrite it with a fresh one), or start fresh and tell the client why (``recovered: false`` + reason).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from vani.actors.session.checkpoints import Checkpointer
from vani.actors.store.base import StoreError
from vani.actors.store.record import RecordError, SessionRecord

log = logging.getLogger("vani.host")


@dataclass(frozen=True)
class Recovery:
    record: SessionRecord | None = None  # restore this
    refuse: str | None = None  # refuse the link with BAD_RESUME, for this reason
    fresh_because: str | None = None  # start a fresh session and say why (None: no token was presented)

    @property
    def outcome(self) -> str:
        return "restored" if self.record else "refused" if self.refuse else "fresh"


async def decide(checkpoints: Checkpointer | None, session_id: str, token: str | None) -> Recovery:
    """Also for a link without a token: a stored session is not anybody's to take, nor to replace."""
    record, why = await _stored(checkpoints, session_id)
    if record is None:
        return Recovery(fresh_because=None if token is None else why)
    if not record.token_matches(token):
        return Recovery(refuse="resume token missing or invalid")
    return Recovery(record=record)


async def _stored(checkpoints: Checkpointer | None, session_id: str) -> tuple[SessionRecord | None, str]:
    """The stored record, or None and why there is none to take back."""
    if checkpoints is None:
        return None, "no session store is configured (session_store=none)"
    try:
        record = await checkpoints.load(session_id)
    except StoreError as exc:
        log.warning("session %s: the store could not be read: %s", session_id, exc)
        return None, "the session store is unavailable"
    except RecordError as exc:
        log.warning("session %s: stored state unusable: %s", session_id, exc)
        return None, f"the stored session state is unusable: {exc}"[:200]
    return record, "no stored state for this session (expired, closed, or never saved)"
