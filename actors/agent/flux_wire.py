"""Deepgram Flux ``/v2/listen`` messages as vani sends them: numbered, with one request id per session.

Transcription sessions (``WS /v2/flux/{id}``) speak only this schema; agent sessions get their transcripts in
it too (``TurnInfo``), next to vani's agent events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from vani.actors.wire import agent as wire
from vani.adapters.base import ProviderError


class FluxWire:
    def __init__(self, send: Callable[[str], None]) -> None:
        self._send = send
        self.request_id = str(uuid.uuid4())
        self.seq = 0

    def _number(self, body: dict[str, Any]) -> dict[str, Any]:
        msg = {"type": body.pop("type"), "request_id": self.request_id, "sequence_id": self.seq, **body}
        self.seq += 1
        return msg

    def send(self, body: dict[str, Any]) -> None:
        self._send(wire.dumps(self._number(body)))

    def connected(
        self, session_id: str, resume_token: str, resumed: bool, history: Iterable[dict[str, Any]]
    ) -> dict[str, Any]:
        """Flux's ``Connected`` (first message on WS /v2/flux), plus vani's resume fields."""
        msg = self._number({"type": "Connected"})
        msg.update(session_id=session_id, resume_token=resume_token, resumed=resumed)
        if resumed:
            msg["history"] = list(history)
        return msg

    def provider_error(self, exc: ProviderError) -> None:
        self.send({"type": "Error", "code": f"PROVIDER_{exc.kind.value.upper()}", "description": str(exc)})

    def configure_failed(self, exc: ProviderError) -> None:
        self.send({"type": "ConfigureFailure", "code": exc.kind.value, "description": exc.message})

    def configured(self, opts: Any) -> None:
        thresholds = {"eot_threshold": opts.eot_threshold, "eot_timeout_ms": opts.eot_timeout_ms}
        if opts.eager_eot_threshold is not None:
            thresholds["eager_eot_threshold"] = opts.eager_eot_threshold
        self.send({"type": "ConfigureSuccess", "thresholds": thresholds, "keyterms": list(opts.keyterms)})

    def no_active_turn(self) -> None:
        self.send(
            {
                "type": "Warning",
                "code": "FORCE_END_TURN_NO_ACTIVE_TURN",
                "description": "ForceEndTurn received with no active turn",
            }
        )
