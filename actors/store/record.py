"""A session's durable state as one versioned JSON document (what a session store keeps).

Written at every turn boundary and on suspend (``actors/session/checkpoints.py``), read back when a client
resumes a session its host no longer holds (the host crashed, or its node is gone). The resume token itself
is never stored: only its SHA-256, which the returning client's token must match.

Version 1 fields: ``v``, ``session_id``, ``token_sha256``, ``mode``, ``request`` (the link's validated mode and
options), ``counters``, ``engine`` (the engine's own state: conversation history, transcripts, turn counter,
the turn in flight), ``saved_at`` (wall clock, seconds). docs/durability.md describes them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

VERSION = 1


class RecordError(ValueError):
    """A stored record that cannot be used (corrupt, or written by a newer vani)."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class SessionRecord:
    session_id: str
    token_sha256: str
    mode: str
    request: dict[str, Any]
    counters: dict[str, int] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    saved_at: float = 0.0

    def token_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.token_sha256, token_digest(token))

    def dumps(self) -> str:
        return json.dumps(
            {
                "v": VERSION,
                "session_id": self.session_id,
                "token_sha256": self.token_sha256,
                "mode": self.mode,
                "request": self.request,
                "counters": self.counters,
                "engine": self.engine,
                "saved_at": self.saved_at,
            },
            separators=(",", ":"),
            allow_nan=False,
        )

    @staticmethod
    def loads(raw: str | bytes) -> SessionRecord:
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise RecordError(f"stored session state is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise RecordError("stored session state is not an object")
        version = doc.get("v")
        if not isinstance(version, int) or version > VERSION or version < 1:
            raise RecordError(f"stored session state has version {version!r}; this vani reads version {VERSION}")
        try:
            return SessionRecord(
                session_id=str(doc["session_id"]),
                token_sha256=str(doc["token_sha256"]),
                mode=str(doc["mode"]),
                request=dict(doc["request"]),
                counters={str(k): int(v) for k, v in dict(doc.get("counters", {})).items()},
                engine=dict(doc.get("engine", {})),
                saved_at=float(doc.get("saved_at", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"stored session state is missing or has a bad field: {exc!r}") from None
