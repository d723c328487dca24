"""When did the user's speech reach a point of the inbound audio stream? (pure; no Ray, no I/O)

The session knows, for each inbound chunk, the stream byte offset where it ends and when it arrived.
A client sends a chunk once its audio has been recorded, i.e. at the chunk's *end*: the moment the
user's real-time audio was at stream time ``t`` is therefore the arrival of the chunk holding ``t``
minus the audio after ``t`` in that chunk. Taking the arrival alone (as vani once did) dates the
user's end of speech up to one client chunk late (256 ms for the browser), so ``LatencyReport``
under-reported ``stt_latency`` / ``total_latency`` by as much.
"""

from __future__ import annotations

from collections.abc import Iterable


def moment_of(
    clock: Iterable[tuple[int, float]], audio_s: float, bytes_per_s: int, *, starts: bool = False
) -> float | None:
    """The (monotonic) moment the inbound audio reached stream time ``audio_s``.

    ``clock`` lists ``(stream byte end, arrival)`` per chunk in stream order. Returns ``None`` when no
    chunk reaching ``audio_s`` has arrived yet. A point exactly at a chunk boundary belongs to the chunk
    that ends there (an end of speech), or with ``starts`` to the next one (speech that starts there).
    Never earlier than the previous chunk's arrival: chunks that came in a burst are not back-dated.
    """
    target = audio_s * bytes_per_s
    prev: float | None = None
    for end, arrived in clock:
        if end > target or (end == target and not starts):
            # The chunk that holds ``audio_s``: its arrival, less the audio that follows ``audio_s``.
            at = arrived - (end - target) / bytes_per_s
            return at if prev is None else max(at, prev)
        prev = arrived
    return None
