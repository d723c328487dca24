"""The Flux order checker and the pure turn machine (no models)."""

from __future__ import annotations

from tests.support.flux_rules import check_flux_order
from vani.adapters.base import TurnEvent, TurnEventType
from vani.adapters.local.turn_machine import (
    FRAME_S,
    BeginTurn,
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
    ends_sentence,
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
                elif isinstance(a, NeedTranscript) and a.wait:  # a started one (wait=False) is handed over when asked
                    pending.append(Transcript(text, [], a.purpose, a.trigger, a.pause))
    return emitted


def as_events(emitted: list[Emit]) -> list[TurnEvent]:
    return [TurnEvent(e.event, e.turn_index, e.transcript or "", [], 0, e.start, e.end, e.trigger) for e in emitted]


def frames(speech_s: float, silence_s: float) -> list[float]:
    return [0.9] * round(speech_s / FRAME_S) + [0.0] * round(silence_s / FRAME_S)


def test_machine_confident_end_and_index():
    m = TurnMachine(TurnConfig())
    out = drive(m, frames(1.0, 0.5) + frames(1.0, 0.5), score=0.95, text="Book a table.")
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


def test_a_pause_asks_whisper_then_smart_turn_once_each_and_the_end_needs_no_more_whisper():
    m = TurnMachine(TurnConfig())
    asked: list[object] = []
    out: list[Emit] = []
    for i, p in enumerate(frames(1.0, 0.5)):
        pending = [Frame((i + 1) * FRAME_S, p)]
        while pending:
            acts = m.decide(pending.pop(0))
            needs = [a for a in acts if isinstance(a, NeedScore | NeedTranscript)]
            asked += needs
            out += [a for a in acts if isinstance(a, Emit)]
            for a in needs:
                if isinstance(a, NeedScore):
                    pending.append(Score(0.9))
                elif a.wait:
                    pending.append(Transcript("Hello there.", [], a.purpose, pause=a.pause))
    # Started at ~0.1 s of silence, then Smart Turn, then the same pause's transcript awaited.
    assert [(type(a), getattr(a, "wait", None)) for a in asked] == [
        (NeedTranscript, False),
        (NeedScore, None),
        (NeedTranscript, True),
    ]
    assert asked[0].pause == asked[2].pause and asked[0].purpose == asked[2].purpose == "pause"
    end = [e for e in out if e.event is E.END_OF_TURN]
    assert [(e.transcript, e.trigger) for e in end] == [("Hello there.", "model")]


def test_lazy_text_a_pause_smart_turn_rates_mid_turn_costs_no_whisper_call():
    m = TurnMachine(TurnConfig(silence_ramp_ms=60000, text_at_ms=-1))
    asked = []
    for i, p in enumerate(frames(1.0, 0.6) + frames(1.0, 0.6)):
        pending = [Frame((i + 1) * FRAME_S, p)]
        while pending:
            for a in m.decide(pending.pop(0)):
                if isinstance(a, NeedScore | NeedTranscript):
                    asked.append(a)
                    pending.append(Score(0.2) if isinstance(a, NeedScore) else Transcript("x", [], a.purpose))
    assert [type(a) for a in asked] == [NeedScore, NeedScore]  # one look per pause, no transcript


def test_an_open_sentence_holds_a_confident_smart_turn_until_the_ramp():
    cfg = TurnConfig(silence_ramp_ms=1000, open_sentence_cap=0.3)
    # Smart Turn says 0.95, but Whisper heard "I would like to book a": no end 0.5 s into the pause...
    held = drive(TurnMachine(cfg), frames(1.0, 0.5), score=0.95, text="I would like to book a")
    assert not [e for e in held if e.event is E.END_OF_TURN]
    # ...while the ramp (0.3 -> 1.0 over 1 s after the first look) still ends it in a long silence.
    late = drive(TurnMachine(cfg), frames(1.0, 1.5), score=0.95, text="I would like to book a")
    end = [e for e in late if e.event is E.END_OF_TURN]
    assert len(end) == 1 and end[0].end - 1.0 >= 0.2 + 0.55  # 0.7 needs (0.7-0.3)/0.7 of the ramp
    # The same verdict on a finished sentence ends the turn at the first look.
    done = drive(TurnMachine(cfg), frames(1.0, 0.5), score=0.95, text="I would like to book a table.")
    end = [e for e in done if e.event is E.END_OF_TURN]
    assert len(end) == 1 and end[0].end - 1.0 < 0.3


def test_eager_goes_by_smart_turn_alone_and_the_end_keeps_its_transcript():
    m = TurnMachine(TurnConfig(eager_eot_threshold=0.5, silence_ramp_ms=1000))
    out = drive(m, frames(1.0, 1.5), score=0.9, text="a table for two")
    kinds = [(e.event, e.transcript) for e in out if e.event is not E.UPDATE]
    assert kinds == [
        (E.START_OF_TURN, None),
        (E.EAGER_END_OF_TURN, "a table for two"),
        (E.END_OF_TURN, "a table for two"),
    ]
    assert check_flux_order(as_events(out), max_update_gap_s=0.3) == []


def test_force_end_and_timeout_in_a_pause_reuse_its_transcript():
    m = TurnMachine(TurnConfig(silence_ramp_ms=60000))
    drive(m, frames(0.5, 0.4), score=0.95, text="so")  # Whisper asked (0.95), "so" holds the end
    acts = m.decide(ForceEnd(1.0))
    assert [(a.event, a.transcript, a.trigger) for a in acts if isinstance(a, Emit)] == [
        (E.END_OF_TURN, "so", "manual")
    ]
    m2 = TurnMachine(TurnConfig(eot_timeout_ms=800, silence_ramp_ms=60000))  # 0.95 then "so": held to the timeout
    asked = []

    def answer(a):
        asked.append(a)
        return Score(0.95) if isinstance(a, NeedScore) else Transcript("so", [], a.purpose, a.trigger, a.pause)

    out = []
    for i, p in enumerate(frames(0.5, 1.0)):
        pending = [Frame((i + 1) * FRAME_S, p)]
        while pending:
            for a in m2.decide(pending.pop(0)):
                if isinstance(a, Emit):
                    out.append(a)
                elif not isinstance(a, BeginTurn):
                    pending.append(answer(a)) if isinstance(a, NeedScore | NeedTranscript) else None
    assert [e.trigger for e in out if e.event is E.END_OF_TURN] == ["timeout"]
    assert [getattr(a, "purpose", "score") for a in asked] == ["pause", "score"]  # no second Whisper call


def test_a_started_transcript_is_awaited_only_when_needed_and_one_of_an_ended_pause_is_dropped():
    m = TurnMachine(TurnConfig())

    def feed(probs: list[float], t0: float, score: float) -> list[object]:
        acts: list[object] = []
        for i, p in enumerate(probs):
            for a in m.decide(Frame(t0 + (i + 1) * FRAME_S, p)):
                acts += m.decide(Score(score)) if isinstance(a, NeedScore) else [a]
        return [a for a in acts if isinstance(a, NeedTranscript)]

    # A 0.15 s pause: Whisper is started at 96 ms (not awaited); the user goes on before Smart Turn's look.
    first = feed(frames(1.0, 0.15), 0.0, score=0.95)
    assert [(a.purpose, a.wait) for a in first] == [("pause", False)]
    # The next pause: started again; Smart Turn says 0.95, so the machine now waits for that pause's text.
    second = feed(frames(0.5, 0.3), 1.15, score=0.95)
    # (unanswered here, the waiting ask repeats each frame; the driver answers it before the next one)
    assert (second[0].wait, second[0].pause) == (False, m.pause_index) and len(second) >= 2
    assert all(a.wait and a.pause == m.pause_index for a in second[1:])
    assert first[0].pause != m.pause_index
    assert m.decide(Transcript("I would like.", [], "pause", pause=first[0].pause)) == []  # stale: dropped
    assert m.pause_text is None
    end = m.decide(Transcript("I would like a table.", [], "pause", pause=m.pause_index))
    assert [(e.event, e.transcript) for e in end if isinstance(e, Emit)] == [(E.END_OF_TURN, "I would like a table.")]


def test_a_pause_smart_turn_rates_mid_turn_never_waits_for_whisper():
    m = TurnMachine(TurnConfig(silence_ramp_ms=60000))
    waited = []
    for i, p in enumerate(frames(1.0, 0.6)):
        for a in m.decide(Frame((i + 1) * FRAME_S, p)):
            for b in m.decide(Score(0.2)) if isinstance(a, NeedScore) else [a]:
                waited += [b] if isinstance(b, NeedTranscript) and b.wait else []
    assert waited == []  # the text could only hold an end back, and Smart Turn alone ends nothing


def test_ends_sentence():
    assert ends_sentence("Book a table.") and ends_sentence("Is it open?") and ends_sentence('He said "no!"')
    assert not ends_sentence("I would like to") and not ends_sentence("Unless to be rather...")
    assert not ends_sentence("self-") and not ends_sentence("") and not ends_sentence("for two,")
    # Whisper's full stop after a fragment does not make it a sentence.
    assert not ends_sentence("in his power to do for his.") and not ends_sentence("Book it for the.")
    assert ends_sentence("He was not an ill-disposed young man.") and ends_sentence("More than he was.")
    assert ends_sentence("Who is it for?")
