"""Wire protocol shared by the gateway, the session hosts and the Python client.

Client <-> gateway (documented in docs/protocol.md):
  binary  PCM16LE mono 16 kHz, any even length up to ``max_frame_bytes``.
  text    JSON objects with a ``type``.

Gateway <-> session host ("link", one websocket per client connection, loopback or node network):
  0. host sends ``{"type": "link.challenge", "nonce"}`` (actors/wire/link_auth.py);
  1. gateway sends ``{"type": "link.open", "session_id", "resume_token", "mode", "options", "nonce", "mac"}``;
  2. host answers ``{"type": "link.opened", "next_seq", "started": {...}}`` or
     ``{"type": "link.refused", "code", "reason"}``;
  3. gateway -> host binary frames carry an 8-byte big-endian sequence number before the PCM, so the
     session can enforce order (Ray calls to async actors do not keep order; we do not rely on any
     transport to do it either); text frames are the client's validated JSON;
  4. host -> gateway frames go to the client unchanged; the link's close code and reason are the
     client's close code and reason.
"""

from __future__ import annotations

import json
import logging
import math
import struct
import time
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger("vani.protocol")

SEQ = struct.Struct(">Q")
AUDIO_FORMAT = {"encoding": "linear16", "sample_rate": 16000, "channels": 1}

# Client -> server text message types.
CLIENT_TYPES = frozenset({"mute", "unmute", "ping", "close"})


class Close:
    """WebSocket close codes vani uses (see docs/protocol.md)."""

    NORMAL = 1000  # client sent `close`, or session closed by the server
    GOING_AWAY = 1001  # server shutting down
    POLICY = 1008  # flood: sending much faster than real time for long
    TOO_BIG = 1009  # binary frame larger than max_frame_bytes
    INTERNAL = 1011  # session actor / host crashed or unreachable
    TRY_AGAIN = 1013  # admission control: max sessions reached
    REPLACED = 4000  # a newer connection presented the resume token and took the session over
    BAD_RESUME = 4401  # session exists (suspended) and the resume token is missing or wrong
    CONFLICT = 4409  # session has a live connection and the resume token was not presented


def encode_frame(seq: int, pcm: bytes) -> bytes:
    return SEQ.pack(seq) + pcm


def decode_frame(data: bytes) -> tuple[int, bytes]:
    return SEQ.unpack_from(data)[0], data[SEQ.size :]


def dumps(msg: dict[str, Any]) -> str:
    """Compact, strict JSON: never bare ``NaN`` / ``Infinity`` (not JSON; browsers' parsers reject them).

    A non-finite number that slipped into a message becomes ``null`` (logged) rather than raising into
    the session's code path, which would end the session over one field.
    """
    try:
        return json.dumps(msg, separators=(",", ":"), allow_nan=False)
    except ValueError:
        log.warning("non-finite number in outgoing %r message replaced by null", msg.get("type"))
        return json.dumps(_finite(msg), separators=(",", ":"), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass
class Limits:
    max_frame_bytes: int
    outbound_queue_bytes: int
    inbound_buffer_bytes: int
    session_ttl_s: float
    echo_delay_ms: float
    flood_burst_s: float
    flood_rate: float


def session_started(session_id: str, resume_token: str, resumed: bool, state: str, limits: Limits) -> dict:
    return {
        "type": "session.started",
        "session_id": session_id,
        "resume_token": resume_token,
        "resumed": resumed,
        "state": state,
        "audio": AUDIO_FORMAT,
        "limits": asdict(limits),
    }


def state_changed(source: str, dest: str, event: str) -> str:
    return dumps({"type": "state", "from": source, "to": dest, "event": event})


def error(code: str, message: str, **extra: Any) -> str:
    return dumps({"type": "error", "code": code, "message": message, **extra})


def pong(msg: dict[str, Any]) -> str:
    return dumps({"type": "pong", "id": msg.get("id"), "t": msg.get("t"), "server_time": time.time()})
