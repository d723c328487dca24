"""The Flux order checker and the pure turn machine (no models)."""

from __future__ import annotations

from tests.support.flux_rules import check_flux_order
from vani.adapters.base import TurnEvent, TurnEventType
from vani.adapters.local.turn_machine import (
    FRAME_S,
    Emit,
    ForceEnd,
    Frame,
    NeedScore,
    NeedTranscript,
    Phase,
    Score,
    Transcript,
    TurnConfig,
    TurnMachine,
)

E = TurnEventType


def ev(kind, idx, t, text="", trigger=None):
    return TurnEvent(kind, idx, text, audio_window_start=0.0, audio_window_end=t, trigger=trigger)


def test_valid_eager_sequence_passes():
    events = [
        ev(E.START_OF_TURN, 0, 0.1),
        ev(E.UPDATE, 0, 0.35, "hel"),
        ev(E.EAGER_END_OF_TURN, 0, 0.5, "hello"),
        ev(E.TURN_RESUMED, 0, 0.7),
        ev(E.EAGER_END_OF_TURN, 0, 0.9, "hello there"),
        ev(E.END_OF_TURN, 0, 1.0, "hello there", "model"),
        ev(E.START_OF_TURN, 1, 2.0),
        ev(E.END_OF_TURN, 1, 2.2, "bye", "manual"),
    ]
    assert check_flux_order(events) == []


def test_violations_are_reported():
    bad = [
        ev(E.TURN_RESUMED, 0, 0.1),  # no eager before
        ev(E.START_OF_TURN, 0, 0.2),
        ev(E.EAGER_END_OF_TURN, 0, 0.3, ""),  # empty eager
        ev(E.END_OF_TURN, 0, 0.4, "different", "model"),  # != eager transcript ("")
        ev(E.START_OF_TURN, 0, 0.5),  # turn_index did not increment
        ev(E.END_OF_TURN, 1, 0.45, "x", "bogus"),  # went backwards, bad trigger
    ]
    errors = check_flux_order(bad)
    text = "\n".join(errors)
    for needle in ("TurnResumed without", "empty transcript", "!= EagerEndOfTurn", "expected 1", "backwards", "bogus"):
        assert needle in text, (needle, errors)


def test_update_gap_check():
    events = [ev(E.START_OF_TURN, 0, 0.1), ev(E.UPDATE, 0, 0.9), ev(E.END_OF_TURN, 0, 1.0, "a", "model")]
    assert any("since the previous event" in e for e in check_flux_order(events, max_update_gap_s=0.3))


def drive(machine: TurnMachine, probs: list[float], score: float, text: str) -> list[Emit]:
    """Feed VAD frames; answer NeedScore/NeedTranscript like the driver would."""
    emitted: list[Emit] = []
    for i, p in enumerate(probs):
        pending = [Frame((i + 1) * FRAME_S, p)]
        while pending:
            for a in machine.decide(pending.pop(0)):
                if isinstance(a, Emit):
                    emitted.append(a)
                elif isinstance(a, NeedScore):
                    pending.append(Score(score))
                elif isinstance(a, NeedTranscript):
                    pending.append(Transcript(text, [], a.purpose, a.trigger))
    return emitted


def as_events(emitted: list[Emit]) -> list[TurnEvent]:
    return [TurnEvent(e.event, e.turn_index, e.transcript or "", [], 0, e.start, e.end, e.trigger) for e in emitted]


def frames(speech_s: float, silence_s: float) -> list[float]:
    return [0.9] * round(speech_s / FRAME_S) + [0.0] * round(silence_s / FRAME_S)


def test_machine_confident_end_and_index():
    m = TurnMachine(TurnConfig())
    out = drive(m, frames(1.0, 0.5) + frames(1.0, 0.5), score=0.95, text="book a table")
    kinds = [e.event for e in out if e.event is not E.UPDATE]
    assert kinds == [E.START_OF_TURN, E.END_OF_TURN, E.START_OF_TURN, E.END_OF_TURN]
    assert [e.trigger for e in out if e.event is E.END_OF_TURN] == ["model", "model"]
    assert m.turn_index == 2 and m.phase is Phase.INITIAL
    assert check_flux_order(as_events(out), max_update_gap_s=0.3) == []


def test_machine_eager_then_resume_then_end():
    m = TurnMachine(TurnConfig(eager_eot_threshold=0.4, silence_ramp_ms=2000))
    # p=0.5 after 0.2 s silence -> eager; speech resumes -> TurnResumed; then the ramp ends it.
    out = drive(m, frames(1.0, 0.4) + frames(0.5, 2.0), score=0.5, text="a table for two")
    kinds = [e.event for e in out if e.event is not E.UPDATE]
    assert kinds == [
        E.START_OF_TURN,
        E.EAGER_END_OF_TURN,
        E.TURN_RESUMED,
        E.EAGER_END_OF_TURN,
        E.END_OF_TURN,
    ]
    assert check_flux_order(as_events(out), max_update_gap_s=0.3) == []


def test_machine_timeout_and_force_end():
    m = TurnMachine(TurnConfig(eot_timeout_ms=600, silence_ramp_ms=60000))
    out = drive(m, frames(0.5, 1.0), score=0.1, text="hmm")
    assert [e.trigger for e in out if e.event is E.END_OF_TURN] == ["timeout"]
    m2 = TurnMachine(TurnConfig())
    drive(m2, frames(0.5, 0.0), score=0.1, text="x")
    acts = m2.decide(ForceEnd(1.0))
    assert isinstance(acts[0], NeedTranscript) and acts[0].trigger == "manual"
    assert m2.decide(ForceEnd(1.0)) != [] and TurnMachine().decide(ForceEnd(0.0)) == []


def test_eot_threshold_one_means_never_by_model():
    m = TurnMachine(TurnConfig(eot_threshold=1.0, eot_timeout_ms=3000, silence_ramp_ms=100))
    out = drive(m, frames(0.5, 2.5), score=1.0, text="x")
    assert not any(e.event is E.END_OF_TURN for e in out)
