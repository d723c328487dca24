"""Transcription-only sessions that speak Deepgram Flux's ``/v2/listen`` schema.

Routes: ``WS /v2/listen`` (Flux's own path, what Deepgram's SDKs build from a base URL),
``WS /v2/flux/{session_id}`` and ``WS /v2/flux/{session_id}/v2/listen`` (a base URL that names the session).

A Flux client points its base URL at vani and keeps working: it streams linear16 16 kHz audio (any
chunk size) and ``CloseStream`` / ``Configure`` / ``ForceEndTurn`` JSON; it receives ``Connected``,
``TurnInfo`` (``Update``, ``StartOfTurn``, ``EagerEndOfTurn``, ``TurnResumed``, ``EndOfTurn``),
``ConfigureSuccess`` / ``ConfigureFailure``, ``Warning`` and ``Error``, each with ``request_id`` and
``sequence_id``. Query params ``eot_threshold``, ``eager_eot_threshold``, ``eot_timeout_ms`` and
``keyterm`` (repeatable) pass through to the STT provider; Flux's other params are accepted and ignored,
except the ones whose request vani cannot honour (``UNHONOURED``), which are refused. ``Authorization:
Token <key>`` (Deepgram's scheme) works like ``Bearer``. Differences from Flux are listed in
docs/protocol.md ("Transcription sessions").

The session behind the route is an ordinary vani session in ``flux`` mode: placed by the registry,
held by a session host, resumable within the TTL with ``?resume_token=`` (from ``Connected``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from starlette.websockets import WebSocket

from vani.actors.wire.protocol import Close
from vani.cluster.config import Settings
from vani.gateway.session_route import session_socket

SESSION_PARAM = "session_id"
SESSION_HEADER = "x-vani-session"
# Flux params that ask for something vani does not do; ignoring them would give the client what it
# asked not to get (unredacted numbers, unfiltered profanity), so a request for them is refused.
UNHONOURED = ("redact", "profanity_filter")
OFF_VALUES = ("", "false")


def listen_session_id(query: Mapping[str, str], headers: Mapping[str, str]) -> str:
    """The id for ``/v2/listen``: ``?session_id=``, else ``X-Vani-Session``, else a fresh random one.

    A given id is validated like a path id by ``session_socket`` (a bad one is refused with 403). The
    SDK's own ``x-deepgram-session-id`` is not used: it is shared by every connection of one SDK client.
    """
    given = query.get(SESSION_PARAM)
    if given is None:
        given = headers.get(SESSION_HEADER)
    return given if given is not None else secrets.token_urlsafe(16)  # 22 chars of [A-Za-z0-9_-]


def unhonoured_param(query: Any) -> str | None:
    """The first param vani cannot honour (see ``UNHONOURED``), as ``name=value``, else ``None``."""
    for name in UNHONOURED:
        for value in query.getlist(name):
            if value.strip().lower() not in OFF_VALUES:
                return f"{name}={value}"
    return None


async def flux_socket(ws: WebSocket, session_id: str, settings: Settings, registry: Any, closes: Any) -> None:
    """Serve one Flux-compatible transcription connection."""
    if unhonoured_param(ws.query_params):
        # Refused before upgrade like every other bad param: the client gets HTTP 403.
        await ws.close(code=Close.POLICY)
        closes.inc(tags={"code": "403"})
        return
    await session_socket(ws, session_id, settings, registry, closes, mode="flux")


async def listen_socket(ws: WebSocket, settings: Settings, registry: Any, closes: Any) -> None:
    """``WS /v2/listen``: Flux's own path; the session id from the request, else a fresh one."""
    await flux_socket(ws, listen_session_id(ws.query_params, ws.headers), settings, registry, closes)
