"""The emulated Flux turn detector: audio in, ``TurnInfo`` bodies out. Pure: no I/O, cheap per session.

Turn timing comes from the audio itself: 20 ms frames above ``SPEECH_DBFS`` are speech. End-of-turn
confidence grows with trailing silence, ``conf = 0.7 * silence / eot_ms`` (capped at 0.99), so with the
default ``eot_threshold`` 0.7 EndOfTurn fires after ``eot_ms`` of silence, and ``EagerEndOfTurn`` when
``conf`` reaches ``eager_eot_threshold``. ``eot_timeout_ms`` of silence ends a turn whatever the threshold.
Transcripts come from the session's script, one per turn. Event ordering follows Flux's state rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vani.adapters.emulator.audio import speech_frames
from vani.adapters.emulator.control import Conn

FRAME_S = 0.02
START_FRAMES = 3  # 60 ms of speech starts a turn (ignores clicks)
RANGES = {"eot_threshold": (0.5, 1.0), "eager_eot_threshold": (0.3, 0.9), "eot_timeout_ms": (500, 60000)}


@dataclass
class Thresholds:
    eot_threshold: float = 0.7
    eager_eot_threshold: float | None = None
    eot_timeout_ms: int = 5000
    keyterms: list[str] = field(default_factory=list)


def check_thresholds(values: dict[str, Any]) -> str | None:
    """An error message if a threshold is out of Flux's documented range."""
    for name, (lo, hi) in RANGES.items():
        v = values.get(name)
        if v is not None and not lo <= float(v) <= hi:
            return f"{name} must be between {lo} and {hi}"
    return None


class FluxEngine:
    """Audio in, ``TurnInfo`` bodies out. Pure: no I/O, so it is easy to test and cheap per session."""

    def __init__(self, conn: Conn, sample_rate: int, th: Thresholds) -> None:
        self.conn, self.rate, self.th = conn, sample_rate, th
        self.frame_bytes = int(sample_rate * FRAME_S) * 2
        self.pending = b""
        self.frames = 0  # audio clock, in frames
        self.state = "idle"  # idle | ongoing | awaiting (after EagerEndOfTurn)
        self.turn_index = 0
        self.turn_start = 0.0
        self.speech_run = 0
        self.speech_frames = 0
        self.silence_frames = 0
        self.last_emit = 0.0
        self.shown_words = 0

    @property
    def now(self) -> float:
        return round(self.frames * FRAME_S, 3)

    def feed(self, pcm: bytes) -> list[dict[str, Any]]:
        data = self.pending + pcm
        n = len(data) // self.frame_bytes
        self.pending = data[n * self.frame_bytes :]
        if n == 0:
            return []
        out: list[dict[str, Any]] = []
        for speech in speech_frames(data[: n * self.frame_bytes], self.frame_bytes):
            self.frames += 1
            out.extend(self._frame(speech))
        return out

    def _frame(self, speech: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        lat = self.conn.latency
        if speech:
            self.speech_run += 1
            self.silence_frames = 0
            if self.state == "idle" and self.speech_run >= START_FRAMES:
                self.state, self.turn_start = "ongoing", round(self.now - START_FRAMES * FRAME_S, 3)
                self.speech_frames, self.shown_words = START_FRAMES, 0
                out.append(self._info("StartOfTurn", words=0))
            elif self.state == "awaiting":
                self.state = "ongoing"
                out.append(self._info("TurnResumed", words=self.shown_words))
            elif self.state == "ongoing":
                self.speech_frames += 1
        else:
            self.speech_run = 0
            if self.state != "idle":
                self.silence_frames += 1
                silence_ms = self.silence_frames * FRAME_S * 1000
                conf = self._confidence()
                eager = self.th.eager_eot_threshold
                if conf >= self.th.eot_threshold:
                    return [self._end("model")]
                if silence_ms >= self.th.eot_timeout_ms:
                    return [self._end("timeout")]
                if self.state == "ongoing" and eager is not None and conf >= eager:
                    self.state = "awaiting"
                    out.append(self._info("EagerEndOfTurn", words=None))
        if self.state != "idle" and not out and (self.now - self.last_emit) * 1000 >= lat.update_ms - 1e-6:
            out.append(self._info("Update", words=self._words_heard()))
        return out

    def _confidence(self) -> float:
        silence_ms = self.silence_frames * FRAME_S * 1000
        return round(min(0.99, 0.7 * silence_ms / max(self.conn.latency.eot_ms, 1.0)), 3)

    def _words_heard(self) -> int:
        # Reveal about one word per 300 ms of speech, never going backwards.
        total = len(self._transcript().split())
        self.shown_words = max(self.shown_words, min(total, int(self.speech_frames * FRAME_S / 0.3)))
        return self.shown_words

    def _transcript(self) -> str:
        return self.conn.script.transcript(self.conn.script.turns_done)

    def _info(self, event: str, words: int | None) -> dict[str, Any]:
        """A TurnInfo body; ``words=None`` means the full transcript (Eager/EndOfTurn)."""
        all_words = self._transcript().split()
        shown = all_words if words is None else all_words[:words]
        # Words cover the speech, not the trailing silence: the last word ends where the user stopped,
        # so a client's "end of speech -> EndOfTurn" (stt_latency) sees the configured eot_ms.
        speech_end = self.now - self.silence_frames * FRAME_S
        span = max(speech_end - self.turn_start, 0.02) / max(len(all_words), 1)
        self.last_emit = self.now
        return {
            "type": "TurnInfo",
            "event": event,
            "turn_index": self.turn_index,
            "audio_window_start": self.turn_start,
            "audio_window_end": self.now,
            "transcript": " ".join(shown),
            "words": [
                {
                    "word": w,
                    "confidence": round(0.9 + 0.01 * (i % 9), 2),
                    "start": round(self.turn_start + i * span, 3),
                    "end": round(self.turn_start + (i + 1) * span, 3),
                }
                for i, w in enumerate(shown)
            ],
            "end_of_turn_confidence": self._confidence() if event != "StartOfTurn" else 0.0,
        }

    def _end(self, trigger: str) -> dict[str, Any]:
        msg = self._info("EndOfTurn", words=None)
        msg["trigger"] = trigger
        self.turn_index += 1
        self.state, self.silence_frames, self.speech_run = "idle", 0, 0
        return msg

    def force_end(self) -> dict[str, Any]:
        if self.state == "idle":
            return {
                "type": "Warning",
                "code": "FORCE_END_TURN_NO_ACTIVE_TURN",
                "description": "ForceEndTurn received with no active turn",
            }
        return self._end("manual")

    def flush(self) -> list[dict[str, Any]]:
        """CloseStream: a last Update for what was heard; never an EndOfTurn."""
        if self.state != "idle" and self.now > self.last_emit:
            return [self._info("Update", words=self._words_heard())]
        return []
