"""What differs between the client routes: accepted text messages, error shape, audio gating, limits.

- ``/v1/sessions/{id}`` in ``echo`` mode: the session protocol (``actors/wire/protocol.py``).
- ``/v1/sessions/{id}`` in ``agent`` mode: the same messages plus ``playback``; assistant audio frames
  pass through an ``AudioGate`` that drops frames of turns that are no longer current.
- ``/v2/flux/{id}``: Deepgram Flux ``/v2/listen`` control messages and ``Error`` shape.

It also turns a client's query into the ``SessionRequest`` the gateway asks the session's host for.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vani.actors.wire import protocol
from vani.actors.wire.agent import AGENT_CLIENT_TYPES, FLUX_CLIENT_TYPES, decode_audio
from vani.actors.wire.session_request import OPTION_RANGES, SessionRequest, check_option
from vani.cluster.config import Settings

MAX_CLEARED = 256


class AudioGate:
    """Drops assistant audio frames whose turn is not the current one (seen in passing events).

    The session already flushes its queue on barge-in; the gate makes "no stale audio" hold even for
    frames that were in flight between the session and the gateway when ``audio.clear`` was decided.
    """

    def __init__(self) -> None:
        self.current: int | None = None
        self.cleared: set[int] = set()
        self.dropped = 0

    def observe(self, text: str) -> None:
        if not text.startswith('{"type":"audio.'):
            return
        msg = json.loads(text)
        turn_id = msg.get("turn_id")
        if msg["type"] == "audio.start" and turn_id not in self.cleared:
            self.current = turn_id
        elif msg["type"] == "audio.clear":
            self.cleared.add(turn_id)
            if len(self.cleared) > MAX_CLEARED:
                self.cleared.discard(min(self.cleared))
            if self.current == turn_id:
                self.current = None

    def admit(self, frame: bytes) -> bool:
        ok = len(frame) >= 8 and decode_audio(frame)[0] == self.current
        if not ok:
            self.dropped += 1
        return ok


def flux_error(code: str, message: str, **_: Any) -> str:
    return protocol.dumps({"type": "Error", "code": code.upper(), "description": message})


@dataclass
class Dialect:
    client_types: frozenset[str]
    error: Callable[..., str] = protocol.error
    gate: AudioGate | None = None


def dialect_for(mode: str) -> Dialect:
    if mode == "flux":
        return Dialect(FLUX_CLIENT_TYPES, flux_error)
    if mode == "agent":
        return Dialect(protocol.CLIENT_TYPES | AGENT_CLIENT_TYPES, protocol.error, AudioGate())
    return Dialect(protocol.CLIENT_TYPES)


def session_request(settings: Settings, mode: str, query: Mapping[str, Any]) -> SessionRequest | str:
    """What a new session of ``mode`` asks its host for: Flux query params override the flux_* settings.

    Returns an error string for invalid params (the connection is refused before it is accepted).
    """
    if mode == "echo":
        return SessionRequest(mode)
    options: dict[str, Any] = {}
    for option, (lo, hi) in OPTION_RANGES.items():
        name = option.removeprefix("flux_")
        raw = query.get(name)
        if raw in (None, ""):
            continue
        try:
            value = float(raw)
        except ValueError:
            return f"{name} must be a number"
        if not math.isfinite(value) or not lo <= value <= hi:
            return f"{name} must be between {lo} and {hi}"
        options[option] = int(value) if name == "eot_timeout_ms" else value
    getlist = getattr(query, "getlist", None)
    keyterms = getlist("keyterm") if getlist else []
    if keyterms:
        options["flux_keyterms"] = ",".join(keyterms)
    if query.get("encoding", "linear16") != "linear16" or str(query.get("sample_rate", "16000")) != "16000":
        return "vani accepts encoding=linear16 and sample_rate=16000 only"
    for option, value in options.items():  # the host checks the same again
        try:
            check_option(option, value)
        except ValueError as exc:
            return str(exc)
    return SessionRequest(mode, options)
