"""``StreamContinuity``: the Flux client's replay/turn ledger, driven directly (no sockets)."""

from __future__ import annotations

from vani.adapters.base import TurnEvent, TurnEventType, Word
from vani.adapters.stt.flux_continuity import StreamContinuity

E = TurnEventType
BPS = 32000  # 16 kHz PCM16


def ev(kind: TurnEventType, index: int, start: float, end: float, words: list[Word] | None = None) -> TurnEvent:
    return TurnEvent(kind, index, audio_window_start=start, audio_window_end=end, words=words or [])


def test_end_of_turn_acknowledges_audio_and_frees_the_replay():
    c = StreamContinuity(BPS, replay_max_s=30)
    c.accept(bytes(2 * BPS))
    assert c.on_turn(ev(E.START_OF_TURN, 0, 0.1, 0.2)) is not None
    assert c.acked == 0 and c.replay_s == 2.0  # inside a turn, nothing is acknowledged
    c.on_turn(ev(E.END_OF_TURN, 0, 0.1, 1.5))
    assert c.acked == int(1.5 * BPS) and c.replay_s == 0.5


def test_replay_is_bounded_by_replay_max_s():
    c = StreamContinuity(BPS, replay_max_s=1)
    c.accept(bytes(3 * BPS))
    assert c.replay_s == 1.0 and c.acked == 2 * BPS and c.sent == 3 * BPS


def test_reconnect_mid_turn_keeps_one_continuous_stream():
    c = StreamContinuity(BPS, replay_max_s=30)
    c.accept(bytes(4 * BPS))
    c.on_turn(ev(E.START_OF_TURN, 0, 0.0, 0.1))
    c.on_turn(ev(E.END_OF_TURN, 0, 0.0, 1.0))  # acknowledged up to 1.0 s
    c.on_turn(ev(E.START_OF_TURN, 1, 2.0, 2.1))
    c.on_turn(ev(E.EAGER_END_OF_TURN, 1, 2.0, 3.0))
    c.connection_lost()
    resumed, replay = c.switch_over()
    # The lost connection had said EagerEndOfTurn: the new one re-decides the turn, so the caller is told.
    assert resumed is not None and (resumed.event, resumed.turn_index) == (E.TURN_RESUMED, 1)
    assert len(replay) == 3 * BPS  # everything after the acknowledged 1.0 s
    # The new connection's clock starts at 1.0 s and its turn count at 0: shifted to the stream's.
    again = c.on_turn(ev(E.START_OF_TURN, 0, 1.0, 1.1))
    assert again is None  # the caller already knows this turn is open
    end = c.on_turn(ev(E.END_OF_TURN, 0, 1.0, 2.5, [Word("hi", start=1.0, end=1.4)]))
    assert end is not None and end.turn_index == 1
    assert (end.audio_window_start, end.audio_window_end) == (2.0, 3.5)
    assert (end.words[0].start, end.words[0].end) == (2.0, 2.4)


def test_updates_already_delivered_are_not_repeated():
    c = StreamContinuity(BPS, replay_max_s=30)
    c.accept(bytes(2 * BPS))
    c.on_turn(ev(E.START_OF_TURN, 0, 0.0, 0.1))
    c.on_turn(ev(E.UPDATE, 0, 0.0, 1.2))
    c.connection_lost()
    resumed, _ = c.switch_over()
    assert resumed is None  # no eager end was pending
    assert c.on_turn(ev(E.UPDATE, 0, 0.0, 0.8)) is None  # re-describes audio the caller has had
    assert c.on_turn(ev(E.UPDATE, 0, 0.0, 1.3)) is not None
