"""Client-facing messages of agent and transcription sessions (see docs/protocol.md, "Agent sessions").

Assistant audio is sent as binary frames with an 8-byte header: the assistant turn id (uint32,
big-endian) and the chunk index within the turn (uint32, big-endian), then the audio bytes in the
format announced by ``audio.start``. Every JSON event of an assistant turn carries ``turn_id``.
"""

from __future__ import annotations

import struct
from typing import Any

from vani.actors.wire.protocol import dumps

AUDIO_HEADER = struct.Struct(">II")

# Client -> server text types of agent sessions (in addition to the session protocol's, protocol.CLIENT_TYPES).
AGENT_CLIENT_TYPES = frozenset({"playback"})
# Client -> server text types on WS /v2/flux/{id} (Deepgram Flux /v2/listen control messages).
FLUX_CLIENT_TYPES = frozenset({"CloseStream", "Configure", "ForceEndTurn", "KeepAlive"})


def encode_audio(turn_id: int, index: int, audio: bytes) -> bytes:
    return AUDIO_HEADER.pack(turn_id, index) + audio


def decode_audio(frame: bytes) -> tuple[int, int, bytes]:
    turn_id, index = AUDIO_HEADER.unpack_from(frame)
    return turn_id, index, frame[AUDIO_HEADER.size :]


def event(kind: str, **fields: Any) -> str:
    return dumps({"type": kind, **fields})


def audio_start(turn_id: int, fmt: dict[str, Any]) -> str:
    return event("audio.start", turn_id=turn_id, format=fmt, header_bytes=AUDIO_HEADER.size)


def audio_clear(turn_id: int, reason: str) -> str:
    return event("audio.clear", turn_id=turn_id, reason=reason)


def audio_end(turn_id: int, chunks: int, duration_s: float) -> str:
    return event("audio.end", turn_id=turn_id, chunks=chunks, duration_s=round(duration_s, 3))
