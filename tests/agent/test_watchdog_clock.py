"""Named watchdog timers (actors/agent/watchdog.py) on the fake clock (actors/clock.py ManualClock): nothing
fires until the test moves time. Times are binary-exact so "just under" and "at" are exact."""

from __future__ import annotations

import asyncio

from vani.actors.agent.watchdog import Watchdog
from vani.actors.clock import ManualClock


def watchdog() -> tuple[ManualClock, Watchdog, list[tuple[str, float]]]:
    clock = ManualClock()
    calls: list[tuple[str, float]] = []
    return clock, Watchdog(lambda name: calls.append((name, clock.now())), clock), calls


# ------------------------------------------------------------------ the clock


async def test_manual_clock_fires_due_timers_in_time_order_then_call_order():
    clock = ManualClock(start=10.0)
    seen: list[tuple[str, float]] = []
    for name, delay in (("c", 0.5), ("a", 0.25), ("b", 0.5), ("late", 2.0)):
        clock.call_later(delay, lambda n: seen.append((n, clock.now())), name)
    assert clock.pending == 4
    await clock.advance(0.125)
    assert seen == [] and clock.now() == 10.125
    await clock.advance(0.375)  # to 10.5: "a", then the two due at 10.5 in the order they were set
    assert seen == [("a", 10.25), ("c", 10.5), ("b", 10.5)]
    assert clock.now() == 10.5 and clock.pending == 1


async def test_manual_clock_cancelled_timer_never_fires_and_negative_delay_is_now():
    clock = ManualClock()
    seen: list[str] = []
    clock.call_later(0.25, seen.append, "cancelled").cancel()
    clock.call_later(-1.0, seen.append, "now")
    assert clock.pending == 1
    await clock.advance(0.0)
    assert seen == ["now"]
    await clock.advance(1.0)
    assert seen == ["now"] and clock.pending == 0


async def test_manual_clock_timers_set_while_advancing_fire_in_the_same_advance():
    clock = ManualClock()
    seen: list[float] = []

    def again() -> None:
        seen.append(clock.now())
        if len(seen) < 3:
            clock.call_later(0.25, again)

    clock.call_later(0.25, again)
    await clock.advance(1.0)
    start = clock.now() - 1.0
    assert seen == [start + 0.25, start + 0.5, start + 0.75]


async def test_manual_clock_sleep_wakes_only_when_time_reaches_it():
    clock = ManualClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.ensure_future(sleeper("long", 1.0)), asyncio.ensure_future(sleeper("short", 0.5))]
    await clock.advance(0.0)
    assert woke == []
    await clock.advance(0.5)
    assert woke == ["short"]
    await clock.advance(0.25)
    assert woke == ["short"]
    await clock.advance(0.25)
    assert woke == ["short", "long"]
    await asyncio.gather(*tasks)
    await asyncio.wait_for(clock.sleep(0), 1)  # zero: a loop turn, no timer
    assert clock.pending == 0


async def test_manual_clock_cancelled_sleeper_leaves_no_timer():
    clock = ManualClock()
    task = asyncio.ensure_future(clock.sleep(5.0))
    await clock.advance(0.0)
    assert clock.pending == 1
    task.cancel()
    await clock.advance(0.0)
    assert task.cancelled() and clock.pending == 0


# ------------------------------------------------------------------ the watchdog


async def test_armed_timers_fire_in_order_and_are_recorded():
    clock, wd, calls = watchdog()
    t = clock.now()
    wd.arm("slow", 1.0)
    wd.arm("fast", 0.5)
    assert wd.armed("slow") and wd.armed("fast")
    await clock.advance(0.25)
    assert calls == [] and list(wd.fired) == []
    await clock.advance(0.5)
    assert calls == [("fast", t + 0.5)]
    assert not wd.armed("fast") and wd.armed("slow")  # a fired timer is no longer armed
    await clock.advance(0.25)
    assert calls == [("fast", t + 0.5), ("slow", t + 1.0)]
    assert list(wd.fired) == ["fast", "slow"]
    await clock.advance(10.0)
    assert len(calls) == 2  # once each


async def test_seconds_zero_or_less_means_off():
    clock, wd, calls = watchdog()
    wd.arm("off", 0)
    wd.arm("negative", -1.0)
    assert not wd.armed("off") and not wd.armed("negative")
    wd.arm("was_on", 0.5)
    wd.arm("was_on", 0)  # re-arming with 0 turns an armed watchdog off
    assert not wd.armed("was_on")
    wd.kick("off")
    assert not wd.armed("off")
    await clock.advance(10.0)
    assert calls == [] and clock.pending == 0


async def test_kick_restarts_the_period():
    clock, wd, calls = watchdog()
    wd.arm("stall", 1.0)
    await clock.advance(0.75)
    wd.kick("stall")  # progress at 0.75: due again at 1.75
    await clock.advance(0.75)  # 1.5 since arming, 0.75 since the kick
    assert calls == []
    await clock.advance(0.125)  # just under: 0.875 since the kick
    assert calls == []
    await clock.advance(0.125)  # at the period
    assert [name for name, _ in calls] == ["stall"]


async def test_kick_of_an_unarmed_watchdog_does_not_arm_it():
    clock, wd, calls = watchdog()
    wd.kick("never")
    wd.arm("gone", 0.5)
    await clock.advance(0.5)
    wd.kick("gone")  # already fired: a late kick must not start it again
    await clock.advance(5.0)
    assert [name for name, _ in calls] == ["gone"] and not wd.armed("never")


async def test_rearm_replaces_the_timer():
    clock, wd, calls = watchdog()
    wd.arm("t", 0.5)
    wd.arm("t", 2.0)
    assert clock.pending == 1
    await clock.advance(1.0)
    assert calls == []
    await clock.advance(1.0)
    assert [name for name, _ in calls] == ["t"]


async def test_disarm_and_disarm_all():
    clock, wd, calls = watchdog()
    wd.arm("a", 0.5)
    wd.arm("b", 0.5)
    wd.arm("c", 1.0)
    wd.disarm("a")
    wd.disarm("unknown")  # no-op
    assert not wd.armed("a") and wd.armed("b")
    await clock.advance(0.5)
    assert [name for name, _ in calls] == ["b"]
    wd.arm("d", 0.25)
    wd.disarm_all()
    assert not any(wd.armed(n) for n in "abcd") and clock.pending == 0
    await clock.advance(5.0)
    assert [name for name, _ in calls] == ["b"]


async def test_on_fire_may_rearm_and_fired_keeps_the_latest_32():
    clock = ManualClock()
    wd: Watchdog

    def on_fire(name: str) -> None:
        wd.arm(name, 0.25)  # an engine that re-arms on every firing

    wd = Watchdog(on_fire, clock)
    wd.arm("tick", 0.25)
    await clock.advance(10.0)  # 40 firings
    assert len(wd.fired) == 32 and set(wd.fired) == {"tick"}
    assert wd.armed("tick")
    wd.disarm_all()


class CountingClock(ManualClock):
    def __init__(self) -> None:
        super().__init__()
        self.timers_made = 0

    def call_later(self, delay, fn, *args):  # type: ignore[no-untyped-def]
        self.timers_made += 1
        return super().call_later(delay, fn, *args)


async def test_kicks_move_the_deadline_without_new_timers():
    """One kick per inbound audio frame: it must not cancel and create a clock timer each time."""
    clock = CountingClock()
    fired: list[str] = []
    wd = Watchdog(fired.append, clock)
    wd.arm("turn_no_audio", 3.0)
    for _ in range(100):
        await clock.advance(0.02)
        wd.kick("turn_no_audio")
    assert clock.timers_made == 1 and not fired  # 2 s of kicks: still the one timer, not fired
    await clock.advance(2.9)
    assert not fired and clock.timers_made == 2  # it ran out at 3 s and re-armed itself for the rest
    await clock.advance(0.2)
    assert fired == ["turn_no_audio"] and clock.pending == 0
