"""Does a replay say what the session said? Outputs compared one by one, stream by stream.

A stream is one kind of output: the audio frames, or the messages of one ``type`` (``conversation``,
``assistant.text``, ``LatencyReport``, ...). Within a stream the order is causal (one producer) and must be
the same; across streams only each stream's own order counts, because two tasks of the engine (the decide
loop and a turn's reply) that both act at one instant may interleave either way, live or replayed, and a
client cannot tell. Two outputs are the same when they carry the same fields, except measured times: a
number under a key ending in ``_ms`` may differ by ``tolerance_ms``, one ending in ``_s`` by the same in
seconds: the live session measured while it worked, the replay's clock stands still while the engine works.
``LatencyReport``'s ``*_latency`` values are the live run's own measurements (how long its loop, its host
and its providers took, a busy box's stalls included), which no replay reproduces: only that each is there
(a number, or null) is compared. Not compared: the entry's time ``t``, Flux's random ``request_id``.
``story`` is the outputs one per line, a turn's audio frames folded into one: what ``--set`` diffs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

TOLERANCE_MS = 50.0
IGNORED = frozenset({"request_id"})  # Flux's per-stream random id (TurnInfo): a new one per stream


@dataclass
class Divergence:
    index: int  # the logged output where the replay first differs (0-based; len(logged): it said more)
    stream: str
    logged: dict[str, Any] | None  # None: the replay said more in this stream
    replayed: dict[str, Any] | None  # None: the replay said less


def stream_of(entry: dict[str, Any]) -> str:
    return entry["msg"].get("type", "?") if entry["k"] == "out" else entry["k"]


def streams(outputs: list[dict[str, Any]]) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for i, e in enumerate(outputs):
        out.setdefault(stream_of(e), []).append((i, e))
    return out


def first_divergence(
    logged: list[dict[str, Any]],
    replayed: list[dict[str, Any]],
    tolerance_ms: float = TOLERANCE_MS,
    cut: bool = False,
) -> Divergence | None:
    """The earliest (by the logged order) output where some stream differs; None if none does.

    ``cut``: the log may end before the session did (a stored run: its host died, or its last second was not
    written yet), so a stream the replay goes on with past the logged end is not a difference."""
    ours, theirs = streams(logged), streams(replayed)
    found: Divergence | None = None
    for name in ours.keys() | theirs.keys():
        a, b = ours.get(name, []), theirs.get(name, [])
        for j in range(max(len(a), len(b))):
            x = a[j][1] if j < len(a) else None
            y = b[j][1] if j < len(b) else None
            if x is None and cut:
                break
            if x is None or y is None or not same(strip(x), strip(y), tolerance_ms, ""):
                index = a[j][0] if j < len(a) else len(logged)
                if found is None or index < found.index:
                    found = Divergence(index, name, x, y)
                break
    return found


def strip(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ("i", "t")}


def same(a: Any, b: Any, tolerance_ms: float, key: str) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = a.keys() - IGNORED
        return keys == b.keys() - IGNORED and all(same(a[k], b[k], tolerance_ms, k) for k in keys)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, tolerance_ms, key) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        if key.endswith("_ms"):
            return abs(a - b) <= tolerance_ms
        if key.endswith("_latency"):  # measured live: a number either way
            return True
        if key.endswith("_s"):
            return abs(a - b) <= tolerance_ms / 1000.0
    return a == b


def line(entry: dict[str, Any]) -> str:
    """One output, short."""
    if entry["k"] == "out":
        return json.dumps(entry["msg"], separators=(",", ":"), sort_keys=True)
    if entry["k"] == "close":
        return f"close {entry.get('code')} {entry.get('reason', '')}"
    return f"audio {entry['head']} {entry['n']} bytes"


def story(outputs: list[dict[str, Any]]) -> list[str]:
    """The outputs one per line; a run of audio frames of one turn is one line (turn, frames, bytes)."""
    out: list[str] = []
    run: list[dict[str, Any]] = []  # audio frames of one turn, not yet written
    for e in [*outputs, {"k": "end"}]:
        if e["k"] == "audio" and (not run or run[0]["head"][:8] == e["head"][:8]):
            run.append(e)
            continue
        if run:
            turn = int(run[0]["head"][:8], 16)
            out.append(f"audio turn {turn}: {len(run)} frames, {sum(f['n'] for f in run)} bytes")
            run = [e] if e["k"] == "audio" else []
        if e["k"] not in ("audio", "end"):
            out.append(line(e))
    return out
