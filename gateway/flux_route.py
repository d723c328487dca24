"""``WS /v2/flux/{session_id}``: transcription-only sessions that speak Deepgram Flux's schema.

A Flux client points its base URL at vani and keeps working: it streams linear16 16 kHz audio (any
chunk size) and ``CloseStream`` / ``Configure`` / ``ForceEndTurn`` JSON; it receives ``Connected``,
``TurnInfo`` (``Update``, ``StartOfTurn``, ``EagerEndOfTurn``, ``TurnResumed``, ``EndOfTurn``),
``ConfigureSuccess`` / ``ConfigureFailure``, ``Warning`` and ``Error``, each with ``request_id`` and
``sequence_id``. Query params ``eot_threshold``, ``eager_eot_threshold``, ``eot_timeout_ms`` and
``keyterm`` (repeatable) pass through to the STT provider. Differences from Flux are listed in
docs/protocol.md ("Transcription sessions").

The session behind the route is an ordinary vani session in ``flux`` mode: placed by the registry,
held by a session host, resumable within the TTL with ``?resume_token=`` (from ``Connected``).
"""

from __future__ import annotations

from typing import Any

from starlette.websockets import WebSocket

from cluster.config import Settings
from gateway.session_route import session_socket


async def flux_socket(ws: WebSocket, session_id: str, settings: Settings, registry: Any, closes: Any) -> None:
    """Serve one Flux-compatible transcription connection."""
    await session_socket(ws, session_id, settings, registry, closes, mode="flux")
