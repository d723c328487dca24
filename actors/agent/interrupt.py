"""Barge-in decisions: does user speech during the assistant's reply interrupt it?

Flux opens a user turn (``StartOfTurn``) for any speech, including backchannels ("uh-huh") and
noise bursts. The reply is paused while the guard decides (``actors/agent/barge_in.py``: pause first,
decide after); it is cut only once the overlapping speech is clearly an interruption:

- it has lasted ``min_ms`` on the audio clock AND has at least ``min_words`` words, or
- the user's turn ended (``EndOfTurn``) with at least one word that is not a backchannel.

A turn that ends with only backchannel words (or none) is not an interruption: the reply resumes. Defaults
(settings ``barge_in_min_ms`` = 400, ``barge_in_min_words`` = 2) are documented in docs/protocol.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vani.adapters.base import TurnEvent

BACKCHANNELS = frozenset(
    {
        "uh-huh",
        "uh",
        "huh",
        "mhm",
        "mm",
        "mmm",
        "hmm",
        "hm",
        "um",
        "ah",
        "oh",
        "yeah",
        "yep",
        "yes",
        "ok",
        "okay",
        "right",
        "sure",
        "alright",
        "i",
        "see",
        "got",
        "it",
        "cool",
        "nice",
        "wow",
    }
)


def words_of(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9'-]+", text.lower()) if w.strip("-'")]


def is_backchannel(text: str) -> bool:
    """True when ``text`` has no words, or only backchannel words ("uh-huh", "yeah okay")."""
    return all(w in BACKCHANNELS for w in words_of(text))


@dataclass
class BargeInGuard:
    min_ms: float = 400.0
    min_words: int = 2
    start_s: float | None = None  # audio-clock start of the overlapping user turn

    def begin(self, ev: TurnEvent) -> None:
        self.start_s = ev.audio_window_start

    def reset(self) -> None:
        self.start_s = None

    @property
    def open(self) -> bool:
        return self.start_s is not None

    def interrupts(self, ev: TurnEvent) -> bool:
        """For an in-turn event (Update, EagerEndOfTurn, TurnResumed): is it an interruption yet?"""
        if self.start_s is None:
            self.start_s = ev.audio_window_start
        lasted_ms = (ev.audio_window_end - self.start_s) * 1000.0
        return lasted_ms >= self.min_ms and len(words_of(ev.transcript)) >= self.min_words

    def final_interrupts(self, ev: TurnEvent) -> bool:
        """For ``EndOfTurn``: interrupt unless the whole turn was backchannel / noise."""
        return not is_backchannel(ev.transcript)
