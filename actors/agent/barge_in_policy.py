"""Barge-in policy: does this STT event, user speech overlapping the assistant's reply, interrupt it?

One question, one object (the decide step asks it; nothing else decides). The reply is paused at the user's
first sound (``actors/agent/barge_in.py``: pause first, decide after); the policy's verdict on each event of
the overlapping user turn then cuts the reply (``INTERRUPT``), resumes it (``BACKCHANNEL``: the user turn
ended and was not an interruption) or keeps waiting (``UNDECIDED``). Chosen by the ``barge_in_policy``
setting (documented in docs/protocol.md):

- ``guarded`` (default): an interruption once the overlapping speech has lasted ``barge_in_min_ms`` on the
  audio clock AND has ``barge_in_min_words`` words, or when the user turn ends with at least one word that
  is not a backchannel ("uh-huh", "yeah okay"); a turn of only backchannel words or none (noise) is not.
- ``immediate``: any user speech interrupts at once (the classic VAD barge-in; no backchannels).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Protocol

from vani.adapters.base import TurnEvent, TurnEventType
from vani.cluster.config import BARGE_IN_POLICIES

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


class Verdict(Enum):
    UNDECIDED = "undecided"
    INTERRUPT = "interrupt"
    BACKCHANNEL = "backchannel"  # the overlapping user turn ended without interrupting


class BargeInPolicy(Protocol):
    def decide(self, ev: TurnEvent) -> Verdict:
        """An STT event of the user turn that overlaps the reply (from its StartOfTurn to its EndOfTurn)."""
        ...

    def reset(self) -> None:
        """The overlapping user turn is over (or the reply is): forget it."""
        ...


class GuardedBargeIn:
    """Interrupt on enough speech (duration and words) or a final transcript that is not a backchannel."""

    def __init__(self, min_ms: float = 400.0, min_words: int = 2) -> None:
        self.min_ms, self.min_words = min_ms, min_words
        self.start_s: float | None = None  # audio-clock start of the overlapping user turn

    def decide(self, ev: TurnEvent) -> Verdict:
        t = ev.event
        if t is TurnEventType.END_OF_TURN:
            return Verdict.BACKCHANNEL if is_backchannel(ev.transcript) else Verdict.INTERRUPT
        if t is TurnEventType.START_OF_TURN or self.start_s is None:
            self.start_s = ev.audio_window_start
        if t is TurnEventType.START_OF_TURN:
            return Verdict.UNDECIDED
        lasted_ms = (ev.audio_window_end - self.start_s) * 1000.0
        enough = lasted_ms >= self.min_ms and len(words_of(ev.transcript)) >= self.min_words
        return Verdict.INTERRUPT if enough else Verdict.UNDECIDED

    def reset(self) -> None:
        self.start_s = None


class ImmediateBargeIn:
    """Any user speech during the reply interrupts it."""

    def decide(self, ev: TurnEvent) -> Verdict:
        return Verdict.INTERRUPT

    def reset(self) -> None:
        pass


POLICIES = BARGE_IN_POLICIES  # (the setting is checked against them when settings load)


def make_policy(name: str, min_ms: float = 400.0, min_words: int = 2) -> BargeInPolicy:
    if name == "immediate":
        return ImmediateBargeIn()
    if name == "guarded":
        return GuardedBargeIn(min_ms, min_words)
    raise ValueError(f"barge_in_policy must be one of {POLICIES}, not {name!r}")
