"""What the user heard (actors/agent/playback.py): the playback clock on a ManualClock, paused and resumed, the
client's own position, and ``heard_text`` (whole pieces, then a word-proportional prefix). No Ray."""

from __future__ import annotations

import pytest

from vani.actors.agent.playback import Playback, SpokenPiece
from vani.actors.clock import ManualClock


def playback_with_pieces(clock: ManualClock | None = None) -> Playback:
    pb = Playback(clock or ManualClock())
    pb.pieces = [
        SpokenPiece("one two three four", 0.0, 2.0),
        SpokenPiece("five six", 2.0, 1.0),
        SpokenPiece("seven eight nine ten eleven", 3.0, 2.5),
    ]
    pb.audio_s = 5.5
    return pb


# ------------------------------------------------------------------ heard_text


@pytest.mark.parametrize(
    ("played", "heard"),
    [
        (0.0, ""),
        (0.25, ""),  # a quarter of a word is not a word
        (0.5, "one"),
        (1.0, "one two"),
        (1.99, "one two three"),
        (2.0, "one two three four"),  # a whole piece, and the next has not started
        (2.5, "one two three four five"),
        (3.0, "one two three four five six"),
        (4.0, "one two three four five six seven eight"),
        (5.5, "one two three four five six seven eight nine ten eleven"),
        (60.0, "one two three four five six seven eight nine ten eleven"),
    ],
)
def test_heard_text_is_whole_pieces_then_a_word_proportional_prefix(played: float, heard: str):
    assert playback_with_pieces().heard_text(played) == heard


def test_heard_text_stops_at_a_piece_without_audio_yet():
    pb = playback_with_pieces()
    pb.pieces[1].duration_s = 0.0  # its audio has not come back from TTS
    assert pb.heard_text(4.0) == "one two three four"


def test_heard_text_of_no_pieces_is_empty():
    assert Playback(ManualClock()).heard_text(3.0) == ""


def test_heard_text_across_a_gap_between_pieces():
    pb = Playback(ManualClock())
    pb.pieces = [SpokenPiece("a b", 0.0, 1.0), SpokenPiece("c d", 1.5, 1.0)]
    assert pb.heard_text(1.25) == "a b"  # in the gap: the first piece, none of the second
    assert pb.heard_text(2.0) == "a b c"


# ------------------------------------------------------------------ the playback clock


async def test_nothing_is_heard_before_the_first_frame():
    clock = ManualClock()
    pb = playback_with_pieces(clock)
    await clock.advance(10.0)
    assert pb.t0 is None
    assert pb.played_s() == 0.0
    assert pb.heard_text() == ""


async def test_the_clock_runs_from_t0_in_real_time_up_to_what_was_sent():
    clock = ManualClock()
    pb = playback_with_pieces(clock)
    pb.t0 = clock.now()
    assert pb.played_s() == 0.0
    await clock.advance(1.0)
    assert pb.played_s() == pytest.approx(1.0)
    assert pb.heard_text() == "one two"
    await clock.advance(1.5)
    assert pb.heard_text() == "one two three four five"
    pb.audio_s = 3.0  # only 3 s of audio sent: the user cannot have heard more
    await clock.advance(10.0)
    assert pb.played_s() == pytest.approx(3.0)
    assert pb.heard_text() == "one two three four five six"
    assert pb.played_s(now=pb.t0 - 1.0) == 0.0  # never negative


async def test_the_clock_stops_while_paused_and_moves_t0_on_resume():
    clock = ManualClock()
    pb = playback_with_pieces(clock)
    pb.t0 = clock.now()
    await clock.advance(1.0)
    pb.pause(clock.now())
    assert not pb.unpaused.is_set()
    await clock.advance(4.0)
    assert pb.played_s() == pytest.approx(1.0)  # nothing plays while paused
    assert pb.heard_text() == "one two"
    t0 = pb.t0
    pb.resume(clock.now())
    assert pb.unpaused.is_set() and pb.paused_at is None
    assert pb.t0 == pytest.approx(t0 + 4.0)
    await clock.advance(0.5)
    assert pb.played_s() == pytest.approx(1.5)
    assert pb.heard_text() == "one two three"


async def test_a_pause_before_the_first_frame_starts_the_clock_at_resume():
    clock = ManualClock()
    pb = playback_with_pieces(clock)
    pb.pause(clock.now())
    await clock.advance(1.0)
    pb.t0 = clock.now()  # a frame held by the pause: its t0 is stamped, but nobody hears it yet
    await clock.advance(2.0)
    assert pb.played_s() == 0.0
    pb.resume(clock.now())
    assert pb.t0 == pytest.approx(clock.now())
    await clock.advance(1.0)
    assert pb.played_s() == pytest.approx(1.0)


def test_resume_without_audio_leaves_t0_unset():
    pb = Playback(ManualClock())
    pb.pause(1.0)
    pb.resume(5.0)
    assert pb.t0 is None and pb.played_s() == 0.0


async def test_the_clients_reported_position_wins_over_the_clock():
    clock = ManualClock()
    pb = playback_with_pieces(clock)
    pb.t0 = clock.now()
    await clock.advance(4.0)
    pb.client_played_s = 1.0  # the client's buffer is behind the real-time estimate
    assert pb.played_s() == 1.0
    assert pb.heard_text() == "one two"
    pb.pause(clock.now())
    assert pb.played_s() == 1.0
    pb.client_played_s = 9.0  # never more than was sent
    assert pb.played_s() == 5.5
    fresh = playback_with_pieces(clock)
    fresh.client_played_s = 2.0  # reported before t0 is known: still the client's word
    assert fresh.heard_text() == "one two three four"
