"""One handle per assistant turn (actors/agent/turn.py): the outcome set once, awaiting it, the turn's own
cancellation scope, what was heard when it stopped, and the tokens held by a speculative turn. No Ray."""

from __future__ import annotations

import asyncio

import pytest

from vani.actors.agent.chunker import SpeakableChunker
from vani.actors.agent.playback import SpokenPiece
from vani.actors.agent.turn import TurnHandle, TurnKind, TurnOutcome
from vani.actors.clock import LoopClock, ManualClock


def handle(clock: ManualClock | None = None, turn_id: int = 1, *, speculative: bool = False) -> TurnHandle:
    return TurnHandle(turn_id, "hello", clock or ManualClock(), SpeakableChunker(), speculative=speculative)


def test_a_new_turn_is_pending():
    turn = handle()
    assert turn.outcome is TurnOutcome.PENDING
    assert not turn.done and not turn.interrupted
    assert turn.kind is TurnKind.REPLY and turn.played_at_interrupt is None
    assert turn.released.is_set()  # not speculative: its output may leave at once


@pytest.mark.parametrize(
    ("outcome", "interrupted"),
    [(TurnOutcome.INTERRUPTED, True), (TurnOutcome.WATCHDOG, True), (TurnOutcome.DISCARDED, False)],
)
def test_interrupt_sets_the_outcome(outcome: TurnOutcome, interrupted: bool):
    turn = handle()
    turn.interrupt(outcome)
    assert turn.outcome is outcome and turn.done
    assert turn.interrupted is interrupted


def test_finish_first_wins():
    turn = handle()
    turn.finish()
    turn.interrupt(TurnOutcome.INTERRUPTED)
    turn.interrupt(TurnOutcome.WATCHDOG)
    assert turn.outcome is TurnOutcome.DONE and turn.done and not turn.interrupted
    assert turn.played_at_interrupt is None  # it was not stopped early


def test_interrupt_first_wins():
    turn = handle()
    turn.interrupt(TurnOutcome.INTERRUPTED)
    turn.finish()
    turn.interrupt(TurnOutcome.WATCHDOG)
    assert turn.outcome is TurnOutcome.INTERRUPTED


async def test_await_returns_when_the_turn_is_settled():
    turn = handle()
    waiter = asyncio.ensure_future(asyncio.wait_for(turn, 5))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not waiter.done()
    turn.finish()
    assert await waiter is True
    assert await asyncio.wait_for(turn, 1) is True  # settled: awaiting again returns at once


async def test_await_returns_on_interrupt_too():
    turn = handle()
    waiter = asyncio.ensure_future(asyncio.wait_for(turn, 5))
    await asyncio.sleep(0)
    turn.interrupt(TurnOutcome.WATCHDOG)
    await waiter
    assert turn.outcome is TurnOutcome.WATCHDOG


async def test_interrupt_cancels_the_turns_tasks_and_only_them():
    turn, other = handle(turn_id=1), handle(turn_id=2)
    never = asyncio.Event()
    mine = [turn.spawn(never.wait(), "llm"), turn.spawn(never.wait(), "tts")]
    theirs = other.spawn(never.wait(), "llm")
    assert mine[0].get_name() == "llm:turn1"
    await asyncio.sleep(0)
    turn.interrupt(TurnOutcome.INTERRUPTED)
    assert await turn.wait_cancelled(1.0) is True
    assert all(t.cancelled() for t in mine)
    assert not theirs.done()
    other.cancel()
    assert await other.wait_cancelled(1.0) is True and theirs.cancelled()


async def test_interrupt_after_finish_still_cancels_leftover_tasks():
    turn = handle()
    task = turn.spawn(asyncio.Event().wait(), "late")
    turn.finish()
    turn.interrupt(TurnOutcome.INTERRUPTED)
    assert await turn.wait_cancelled(1.0) and task.cancelled()
    assert turn.outcome is TurnOutcome.DONE


async def test_wait_cancelled_is_bounded_and_says_so():
    turn = TurnHandle(1, "hello", LoopClock(), SpeakableChunker())  # a bound in real time
    let_go = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await let_go.wait()  # e.g. a socket that takes its time to close
            raise

    task = turn.spawn(stubborn(), "stubborn")
    await asyncio.sleep(0)
    turn.interrupt(TurnOutcome.WATCHDOG)
    assert await turn.wait_cancelled(0.05) is False
    let_go.set()
    assert await turn.wait_cancelled(1.0) is True and task.cancelled()
    assert await handle().wait_cancelled(0.01) is True  # nothing to wait for


async def test_interrupt_records_what_was_heard():
    clock = ManualClock()
    turn = handle(clock)
    turn.text = "one two three four five six"
    turn.playback.pieces = [SpokenPiece("one two three four", 0.0, 2.0), SpokenPiece("five six", 2.0, 1.0)]
    turn.playback.t0, turn.playback.audio_s = clock.now(), 3.0
    await clock.advance(1.0)
    assert turn.heard_text() == turn.text  # not interrupted: the whole text
    turn.interrupt(TurnOutcome.INTERRUPTED)
    assert turn.played_at_interrupt == pytest.approx(1.0)
    await clock.advance(5.0)  # later time changes nothing: the cut is at the interrupt
    assert turn.heard_text() == "one two"
    turn.interrupt(TurnOutcome.WATCHDOG)  # a second stop does not move it
    assert turn.played_at_interrupt == pytest.approx(1.0)


async def test_a_watchdog_stop_is_cut_like_an_interrupt():
    clock = ManualClock()
    turn = handle(clock)
    turn.text = "one two"
    turn.playback.pieces = [SpokenPiece("one two", 0.0, 1.0)]
    turn.playback.t0, turn.playback.audio_s = clock.now(), 1.0
    await clock.advance(0.5)
    turn.interrupt(TurnOutcome.WATCHDOG)
    assert turn.heard_text() == "one"


def test_release_returns_the_held_tokens_in_order():
    turn = handle(speculative=True)
    assert not turn.released.is_set()
    turn.held += ["Sure", ",", " I", " can"]
    assert turn.release() == ["Sure", ",", " I", " can"]
    assert turn.released.is_set() and turn.held == []
    assert turn.release() == []  # once released, nothing more is held


async def test_wait_cancelled_is_bounded_on_the_sessions_clock():
    clock = ManualClock()
    turn = handle(clock)
    let_go = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await let_go.wait()
            raise

    turn.spawn(stubborn(), "stubborn")
    await asyncio.sleep(0)
    turn.interrupt(TurnOutcome.WATCHDOG)
    waiting = asyncio.ensure_future(turn.wait_cancelled(2.0))
    await clock.advance(1.9)
    assert not waiting.done()  # real time passes, the session's clock does not: still waiting
    await clock.advance(0.2)
    assert waiting.done() and waiting.result() is False
    let_go.set()
    assert await turn.wait_cancelled(0) is True
