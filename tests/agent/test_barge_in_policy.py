"""The barge-in policy (actors/agent/barge_in_policy.py): does this STT event of the overlapping user turn
interrupt the reply? Thresholds on the audio clock, backchannels, noise, reset; the immediate policy; the
settings names. Plain objects, no Ray."""

from __future__ import annotations

import pytest

from vani.actors.agent.barge_in_policy import (
    POLICIES,
    GuardedBargeIn,
    ImmediateBargeIn,
    Verdict,
    is_backchannel,
    make_policy,
    words_of,
)
from vani.adapters.base import TurnEvent, TurnEventType, Word

SOT, UPD, EAGER, RESUMED, EOT = (
    TurnEventType.START_OF_TURN,
    TurnEventType.UPDATE,
    TurnEventType.EAGER_END_OF_TURN,
    TurnEventType.TURN_RESUMED,
    TurnEventType.END_OF_TURN,
)
# Audio-clock seconds exact in binary, so "at the threshold" is exactly at it.
T0 = 2.0


def ev(kind: TurnEventType, transcript: str = "", start: float = T0, end: float = T0) -> TurnEvent:
    return TurnEvent(
        event=kind,
        turn_index=1,
        transcript=transcript,
        words=[Word(w) for w in transcript.split()],
        audio_window_start=start,
        audio_window_end=end,
    )


def started(min_ms: float = 500.0, min_words: int = 2) -> GuardedBargeIn:
    policy = GuardedBargeIn(min_ms, min_words)
    assert policy.decide(ev(SOT)) is Verdict.UNDECIDED  # the first sound never decides
    return policy


# ------------------------------------------------------------------ duration and words


@pytest.mark.parametrize(
    ("end", "verdict"),
    [
        (T0 + 0.25, Verdict.UNDECIDED),
        (T0 + 0.499, Verdict.UNDECIDED),  # just under min_ms
        (T0 + 0.5, Verdict.INTERRUPT),  # at min_ms
        (T0 + 0.75, Verdict.INTERRUPT),  # over
    ],
)
def test_duration_threshold_on_the_audio_clock(end: float, verdict: Verdict):
    assert started().decide(ev(UPD, "wait stop", end=end)) is verdict


@pytest.mark.parametrize(
    ("transcript", "verdict"),
    [
        ("wait", Verdict.UNDECIDED),  # just under min_words
        ("wait stop", Verdict.INTERRUPT),  # at
        ("no wait stop", Verdict.INTERRUPT),  # over
        ("", Verdict.UNDECIDED),
        ("wait ... !", Verdict.UNDECIDED),  # punctuation is not a word
    ],
)
def test_word_threshold(transcript: str, verdict: Verdict):
    assert started().decide(ev(UPD, transcript, end=T0 + 1.0)) is verdict


def test_both_thresholds_are_needed():
    assert started().decide(ev(UPD, "one two three four", end=T0 + 0.25)) is Verdict.UNDECIDED  # words, too short
    assert started().decide(ev(UPD, "one", end=T0 + 5.0)) is Verdict.UNDECIDED  # long enough, one word


def test_duration_is_measured_from_the_start_of_turn_not_the_update_window():
    policy = started()
    # The update's own window starts later; the speech has lasted since the StartOfTurn at T0.
    assert policy.decide(ev(UPD, "wait stop", start=T0 + 0.25, end=T0 + 0.5)) is Verdict.INTERRUPT


def test_eager_end_of_turn_and_turn_resumed_count_like_updates():
    assert started().decide(ev(EAGER, "wait stop", end=T0 + 0.25)) is Verdict.UNDECIDED
    assert started().decide(ev(EAGER, "wait stop", end=T0 + 0.5)) is Verdict.INTERRUPT
    assert started().decide(ev(RESUMED, "wait stop", end=T0 + 0.5)) is Verdict.INTERRUPT


def test_an_update_without_a_start_of_turn_starts_the_clock_itself():
    policy = GuardedBargeIn(500.0, 2)
    assert policy.decide(ev(UPD, "wait stop", start=T0, end=T0 + 0.25)) is Verdict.UNDECIDED
    assert policy.start_s == T0
    assert policy.decide(ev(UPD, "wait stop", start=T0 + 0.25, end=T0 + 0.5)) is Verdict.INTERRUPT


def test_a_new_start_of_turn_restarts_the_clock():
    policy = started()
    assert policy.decide(ev(SOT, start=T0 + 4.0, end=T0 + 4.0)) is Verdict.UNDECIDED
    assert policy.decide(ev(UPD, "wait stop", end=T0 + 4.25)) is Verdict.UNDECIDED
    assert policy.decide(ev(UPD, "wait stop", end=T0 + 4.5)) is Verdict.INTERRUPT


def test_custom_thresholds():
    policy = started(min_ms=1000.0, min_words=3)
    assert policy.decide(ev(UPD, "one two three", end=T0 + 0.75)) is Verdict.UNDECIDED
    assert policy.decide(ev(UPD, "one two", end=T0 + 1.0)) is Verdict.UNDECIDED
    assert policy.decide(ev(UPD, "one two three", end=T0 + 1.0)) is Verdict.INTERRUPT


# ------------------------------------------------------------------ end of the overlapping turn: backchannels, noise


@pytest.mark.parametrize(
    "transcript",
    ["uh-huh", "Uh-huh.", "yeah okay", "Yeah, okay.", "mhm", "Right, I see.", "oh wow, cool!", "OK", "got it"],
)
def test_backchannels_end_the_turn_without_interrupting(transcript: str):
    policy = started()
    assert policy.decide(ev(UPD, transcript, end=T0 + 0.25)) is Verdict.UNDECIDED
    assert policy.decide(ev(EOT, transcript, end=T0 + 0.5)) is Verdict.BACKCHANNEL


@pytest.mark.parametrize("transcript", ["yeah but wait", "stop", "no", "okay so what about tomorrow", "hmm, actually"])
def test_a_turn_with_any_other_word_interrupts_when_it_ends(transcript: str):
    """At EndOfTurn the thresholds no longer matter: one real word, however short the speech, interrupts."""
    assert started().decide(ev(EOT, transcript, end=T0 + 0.125)) is Verdict.INTERRUPT


def test_backchannel_words_over_the_thresholds_still_interrupt_before_the_turn_ends():
    """The thresholds count words, not meaning: a long "yeah okay" crosses them before its EndOfTurn."""
    assert started().decide(ev(UPD, "yeah okay", end=T0 + 0.5)) is Verdict.INTERRUPT


def test_noise_without_words():
    policy = started()
    for end in (T0 + 0.5, T0 + 2.0, T0 + 10.0):  # however long, no words never interrupt
        assert policy.decide(ev(UPD, "", end=end)) is Verdict.UNDECIDED
    assert policy.decide(ev(EOT, "", end=T0 + 10.0)) is Verdict.BACKCHANNEL
    assert started().decide(ev(EOT, "  ", end=T0 + 0.125)) is Verdict.BACKCHANNEL


def test_reset_forgets_the_overlapping_turn():
    policy = started()
    assert policy.decide(ev(UPD, "wait", end=T0 + 3.0)) is Verdict.UNDECIDED
    policy.reset()
    assert policy.start_s is None
    # The next update starts the clock again at its own window: 0.25 s of speech, not 3.25.
    assert policy.decide(ev(UPD, "wait stop", start=T0 + 3.0, end=T0 + 3.25)) is Verdict.UNDECIDED
    assert policy.decide(ev(UPD, "wait stop", start=T0 + 3.0, end=T0 + 3.5)) is Verdict.INTERRUPT


def test_words_and_backchannels():
    assert words_of("Uh-huh, I'm OK -- right?") == ["uh-huh", "i'm", "ok", "right"]
    assert words_of("... - ' !") == []
    assert is_backchannel("") and is_backchannel("...") and is_backchannel("Yeah. Okay. Sure.")
    assert not is_backchannel("yeah but wait")


# ------------------------------------------------------------------ immediate, and the setting


@pytest.mark.parametrize("kind", [SOT, UPD, EAGER, RESUMED, EOT])
def test_immediate_interrupts_on_any_speech(kind: TurnEventType):
    policy = ImmediateBargeIn()
    assert policy.decide(ev(kind)) is Verdict.INTERRUPT  # no words, no duration: still an interruption
    assert policy.decide(ev(kind, "uh-huh")) is Verdict.INTERRUPT  # no backchannels either
    policy.reset()
    assert policy.decide(ev(kind)) is Verdict.INTERRUPT


def test_make_policy_by_name():
    guarded = make_policy("guarded", 300.0, 3)
    assert isinstance(guarded, GuardedBargeIn)
    assert (guarded.min_ms, guarded.min_words) == (300.0, 3)
    default = make_policy("guarded")
    assert isinstance(default, GuardedBargeIn) and (default.min_ms, default.min_words) == (400.0, 2)
    assert isinstance(make_policy("immediate", 300.0, 3), ImmediateBargeIn)
    assert POLICIES == ("guarded", "immediate")


@pytest.mark.parametrize("name", ["", "Guarded", "vad", "immediate "])
def test_make_policy_refuses_unknown_names(name: str):
    with pytest.raises(ValueError, match=r"barge_in_policy must be one of \('guarded', 'immediate'\)"):
        make_policy(name)


def test_an_unknown_policy_fails_when_settings_load():
    from vani.cluster.config import Settings

    with pytest.raises(ValueError, match="barge_in_policy must be one of guarded, immediate"):
        Settings.load(env={"VANI_BARGE_IN_POLICY": "sometimes"})
    assert Settings.load(env={"VANI_BARGE_IN_POLICY": "immediate"}).barge_in_policy == "immediate"
