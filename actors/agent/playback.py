"""Where a turn's audio is on the user's side: what was sent, what was heard, and the paused clock.

The playback timeline starts with the turn's first audio frame (``t0``) and runs in real time, unless the
client reports its own position (``playback`` messages). While the conversation is ``paused``
(``actors/agent/barge_in.py``) the clock stops; on resume ``t0`` moves by the paused time. On barge-in the
history is cut to ``heard_text``: whole pieces, then a word-proportional prefix of the piece playing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from vani.actors.clock import Clock


@dataclass
class SpokenPiece:
    """A speakable piece of text and where its audio sits on the turn's playback timeline (seconds)."""

    text: str
    start_s: float
    duration_s: float = 0.0


class Playback:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.audio_s = 0.0  # seconds of audio sent so far
        self.t0: float | None = None  # when the first audio frame was sent
        self.client_played_s: float | None = None  # from the client's `playback` reports, when it sends them
        self.paused_at: float | None = None
        self.unpaused = asyncio.Event()  # set = the clock runs
        self.unpaused.set()
        self.pieces: list[SpokenPiece] = []

    def pause(self, now: float) -> None:
        """Stop the playback clock: the client pauses, the audio producer holds (``reply.pace``)."""
        self.paused_at = now
        self.unpaused.clear()

    def resume(self, now: float) -> None:
        """Restart the clock where it stopped: ``t0`` moves by the time audio was paused."""
        if self.paused_at is not None and self.t0 is not None:
            self.t0 += max(0.0, now - max(self.paused_at, self.t0))
        self.paused_at = None
        self.unpaused.set()

    def played_s(self, now: float | None = None) -> float:
        """Seconds of the audio the user has heard (client report, else real-time estimate)."""
        if self.client_played_s is not None:
            return min(self.client_played_s, self.audio_s)
        if self.t0 is None:
            return 0.0
        now = self.clock.now() if now is None else now
        if self.paused_at is not None:  # nothing plays while paused
            now = min(now, self.paused_at)
        return max(0.0, min(self.audio_s, now - self.t0))

    def heard_text(self, played_s: float | None = None) -> str:
        """The text of the audio played so far: whole pieces, then a word-proportional prefix."""
        played = self.played_s() if played_s is None else played_s
        words: list[str] = []
        for p in self.pieces:
            if p.duration_s <= 0 or played <= p.start_s:
                break
            piece_words = p.text.split()
            frac = min(1.0, (played - p.start_s) / p.duration_s)
            words += piece_words[: int(len(piece_words) * frac + 1e-9)]
            if frac < 1.0:
                break
        return " ".join(words)
