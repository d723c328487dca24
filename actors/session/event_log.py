"""A session's event log: every input its engine decided on and every output it made, in order, timed.

Inputs (what a replay feeds back): inbound audio frames (length, and the PCM only with ``record_audio``),
the client's engine messages, connection resumes, STT events, LLM stream items, TTS chunks and tool results,
each with the session clock's time when the engine saw it. Outputs (what a replay compares): every message
the engine queued for its client, control lane and audio frames (their header and length), at queue time.

Cheap on the hot path: an entry is one tuple appended to a bounded ring (``deque(maxlen=...)``); JSON is
written off the decide loop's path, when the host's checkpoint writer takes the new entries for the session
store (``unwritten``, in batches) or someone exports the log. When the ring wraps, the oldest entries go and
the log says so in its header (``dropped``): ``vani replay`` refuses a log that lost its start.

In the store a session's log is a list of *runs*: each life of the session on a host (the first, and one
per recovery after a crash) starts with its own header line. A host that dies takes only the entries of its
last second (``checkpoints.LOG_EVERY_S``) with it.
The format is documented in docs/event-log.md; ``actors/replay/`` reads it.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections import deque
from collections.abc import Iterator
from typing import Any

from vani.actors.clock import Clock

FORMAT = "vani-event-log"
VERSION = 1

# Entry kinds. Inputs:
FRAME = "frame"  # {"n": bytes[, "pcm": base64]}
CLIENT = "client"  # {"msg": the client's engine message}
RESUME = "resume"  # {} a new connection took the session back
RESTORED = "restored"  # {"state": the engine's stored durable state} (a recovered session's first entry)
STT = "stt"  # {"event": Flux TurnInfo}
LLM_REQUEST = "llm.request"  # {"r": request number, "messages": count, "roles": [...]}
LLM = "llm"  # {"r", "token"} | {"r", "tool_call": {id, name, arguments}} | {"r", "done": reason} | {"r", "error"}
TTS_REQUEST = "tts.request"  # {"r", "text"}
TTS = "tts"  # {"r", "n": bytes, "format": {...}[, "audio": base64]} | {"r", "error"}
TOOL = "tool"  # {"id", "name", "result"}
# Outputs:
OUT = "out"  # {"msg": a control-lane JSON message}
AUDIO = "audio"  # {"n": bytes, "head": the frame's first bytes, hex (the engine's header)}
CLOSE = "close"  # {"code", "reason"}
# The session's own messages (state changes, pongs, errors about client messages, close requests): logged
# for the reader, not replayed or compared (a replay re-runs the engine).
SESSION = "session"  # {"msg": ...} | {"close": code, "reason"}

INPUTS = frozenset({FRAME, CLIENT, RESUME, RESTORED, STT, LLM_REQUEST, LLM, TTS_REQUEST, TTS, TOOL})
OUTPUTS = frozenset({OUT, AUDIO, CLOSE})
NOTES = frozenset({SESSION})
AUDIO_HEAD_BYTES = 8  # the agent's audio header (turn id, index): what a replay compares of a frame


class EventLog:
    """One session's log. ``max_entries`` bounds the ring (0: nothing is recorded)."""

    def __init__(self, clock: Clock, max_entries: int, record_audio: bool = False) -> None:
        self.clock = clock
        self.t0 = clock.now()
        self.enabled = max_entries > 0
        self.record_audio = record_audio
        self.header: dict[str, Any] = {}
        self._ring: deque[tuple[int, float, str, Any]] = deque(maxlen=max(1, max_entries))
        self._seq = 0
        self._stored = -1  # entries below this seq are in the store; -1: not even the run's header

    def begin(self, **header: Any) -> None:
        """What a replay needs besides the entries: the engine's mode and settings."""
        self.header.update(header)

    def add(self, kind: str, data: Any) -> None:
        """An entry: ``data`` is its fields (a dict), or the compact form of a frame or audio output."""
        if self.enabled:
            self._ring.append((self._seq, self.clock.now() - self.t0, kind, data))
            self._seq += 1

    # ---------------------------------------------------------------- the hot-path helpers
    # The two entries made many times a second keep compact data (an int; the frame header's bytes), not a
    # dict: about 200 bytes an entry instead of 300, and nothing for the garbage collector to visit.
    def frame(self, pcm: bytes) -> None:
        self.add(FRAME, pcm if self.record_audio else len(pcm))

    def output(self, msg: Any, own: bool = False) -> None:
        """A message queued for the client: the engine's, or (``own``) the session's."""
        if not self.enabled:
            return
        if own:
            note = {"msg": msg} if isinstance(msg, str) else {"close": msg.code, "reason": msg.reason}
            self.add(SESSION, note)
        elif isinstance(msg, bytes):
            self.add(AUDIO, (len(msg), msg[:AUDIO_HEAD_BYTES]))
        elif isinstance(msg, str):
            self.add(OUT, {"msg": msg})
        else:  # the session's close request
            self.add(CLOSE, {"code": getattr(msg, "code", None), "reason": getattr(msg, "reason", "")})

    # ---------------------------------------------------------------- reading
    @property
    def dropped(self) -> int:
        """Entries the ring has let go (the oldest)."""
        return self._seq - len(self._ring)

    def lines(self) -> Iterator[str]:
        """The log as JSON lines: the header, then one entry per line."""
        yield self._head(entries=len(self._ring), dropped=self.dropped)
        for entry in list(self._ring):
            yield line(*entry)

    # ---------------------------------------------------------------- the session store (checkpoints.py)
    def unwritten(self) -> tuple[list[str], int]:
        """The lines not yet in the store, and the mark to pass to ``stored`` once they are.

        The run's header comes first (without an entry count: the run is not over). Entries the ring let go
        before they were written are noted in their place, so the stored run says it lost them."""
        if not self.enabled or self._stored == self._seq:
            return [], self._seq
        out = []
        if self._stored < 0:
            out.append(self._head())
        first = max(self._stored, 0)
        ring = self._ring
        lost = (self._seq - len(ring)) - first
        if lost > 0:
            out.append(json.dumps({"i": first, "t": 0.0, "k": SESSION, "lost": lost}))
        skip = max(0, len(ring) - (self._seq - first))
        out.extend(line(*entry) for entry in itertools.islice(ring, skip, None))
        return out, self._seq

    def stored(self, mark: int) -> None:
        self._stored = max(self._stored, mark)

    def _head(self, **counts: int) -> str:
        """The header line: format, version, what ``begin`` said, and (a whole log) its counts."""
        return json.dumps(
            {"format": FORMAT, "version": VERSION, **self.header, **counts}, separators=(",", ":"), default=str
        )


def line(seq: int, t: float, kind: str, data: Any) -> str:
    """One entry as a JSON line. Frames and audio outputs, most of a log, are formatted directly."""
    if kind == FRAME and isinstance(data, int):
        return f'{{"i":{seq},"t":{t:.6f},"k":"frame","n":{data}}}'
    if kind == AUDIO:
        return f'{{"i":{seq},"t":{t:.6f},"k":"audio","n":{data[0]},"head":"{data[1].hex()}"}}'
    entry = {"i": seq, "t": round(t, 6), "k": kind, **expand(kind, data)}
    if kind in (OUT, SESSION) and "msg" in data:  # the message itself, not a string of JSON inside JSON
        entry["msg"] = json.loads(data["msg"])
    return json.dumps(entry, separators=(",", ":"), default=str)


def expand(kind: str, data: Any) -> dict[str, Any]:
    """An entry's fields, from the compact data of frames and audio outputs."""
    if kind == FRAME:
        return {"n": data} if isinstance(data, int) else {"n": len(data), "pcm": b64(data)}
    if kind == AUDIO:
        return {"n": data[0], "head": data[1].hex()}
    return data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
