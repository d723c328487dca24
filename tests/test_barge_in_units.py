"""Pause first, decide after (actors/agent/barge_in.py): the machine's table, the held audio lane, the paused
playback clock and producer, the speech-start timeline and the gateway's gate. No Ray: these are the
real classes, driven directly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from vani.actors.agent.listener import BYTES_PER_S
from vani.actors.agent.machine import ConversationMachine
from vani.actors.agent.playback import Playback
from vani.actors.agent.reply import pace
from vani.actors.agent.speech_clock import moment_of
from vani.actors.clock import LoopClock
from vani.actors.fsm import InvalidEvent
from vani.actors.session.outbound import OutboundQueue
from vani.actors.wire.agent import audio_start, encode_audio, event
from vani.client.session_client import AgentPlayback
from vani.gateway.dialect import AudioGate


class Model:
    """The conversation machine's model: conditions from fields, actions recorded by name."""

    def __init__(self, audio: bool = True, user_turn_open: bool = True) -> None:
        self.conv_state = "idle"
        self.audio = audio
        self.open = user_turn_open
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("start_", "finish_", "stop_", "pause_", "resume_", "cancel_", "on_exit_", "record_")):
            return lambda *a, **k: self.calls.append(name)
        raise AttributeError(name)

    def has_audio(self, *_: Any) -> bool:
        return self.audio

    def is_current(self, *_: Any) -> bool:
        return True

    def user_turn_is_open(self, *_: Any) -> bool:
        return self.open

    def wants_reply(self, *_: Any) -> bool:
        return True

    def is_agent(self, *_: Any) -> bool:
        return True


def machine_in(state: str, **kw: Any) -> tuple[Model, ConversationMachine]:
    m = Model(**kw)
    cm = ConversationMachine(m, "unit")
    m.conv_state = state
    return m, cm


def test_pause_then_backchannel_resumes_speaking():
    m, cm = machine_in("speaking")
    assert cm.fire("PAUSE") == "paused"
    for ev in ("TRANSCRIPT_PARTIAL", "TURN_START", "AUDIO_STARTED"):  # the guard is still deciding
        assert cm.fire(ev) == "paused"
    assert cm.fire("RESUME_REPLY", 1) == "speaking"
    assert m.calls == ["pause_output", "on_exit_paused", "resume_output"]


def test_pause_while_thinking_resumes_to_thinking_until_audio_started():
    _m, cm = machine_in("thinking", audio=False)
    cm.fire("PAUSE")
    assert cm.fire("RESUME_REPLY", 1) == "thinking"  # no audio yet: the reply goes on thinking
    _m2, cm2 = machine_in("thinking", audio=True)  # its first frame was queued (held) during the pause
    cm2.fire("PAUSE")
    cm2.fire("AUDIO_STARTED", 1)
    assert cm2.fire("RESUME_REPLY", 1) == "speaking"


def test_pause_then_guard_confirms_barge_in():
    m, cm = machine_in("speaking")
    cm.fire("PAUSE")
    assert cm.fire("BARGE_IN") == "interrupted"
    assert cm.fire("CANCEL") == "cancelling"
    assert m.calls == ["pause_output", "on_exit_paused", "stop_output", "cancel_turn"]


def test_pause_timeout_says_so_then_resumes():
    m, cm = machine_in("speaking")
    cm.fire("PAUSE")
    assert cm.fire("PAUSE_TIMEOUT", 1) == "speaking"
    assert m.calls == ["pause_output", "on_exit_paused", "pause_timed_out", "resume_output"]


def test_reply_done_while_paused_ends_the_reply():
    m, cm = machine_in("speaking")
    cm.fire("PAUSE")
    assert cm.fire("REPLY_DONE", 1) == "transcribing"  # the user turn that paused it is still open
    assert m.calls == ["pause_output", "on_exit_paused", "finish_reply"]


def test_pause_only_during_a_reply():
    for state in ("idle", "listening", "transcribing", "speculating", "interrupted", "cancelling", "paused"):
        _m, cm = machine_in(state)
        with pytest.raises(InvalidEvent):
            cm.fire("PAUSE")
    for state in ("speaking", "thinking", "listening"):
        _m, cm = machine_in(state)
        with pytest.raises(InvalidEvent):
            cm.fire("RESUME_REPLY", 1)
    _m, cm = machine_in("paused")
    with pytest.raises(InvalidEvent):
        cm.fire("WATCHDOG", "tts_stall")  # the reply's stall watchdogs are suspended while paused


async def test_outbound_lane_holds_audio_but_not_control():
    q = OutboundQueue(1 << 20)
    await q.put_audio(b"a0")
    q.hold_audio()
    await q.put_audio(b"a1")  # a frame produced after the pause waits too
    q.put_control("pause")
    assert q.get_nowait() == "pause"
    assert q.get_nowait() is None  # held: nothing more of the reply goes out
    getter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.release_audio()
    assert await asyncio.wait_for(getter, 5) == b"a0"  # from the next unsent frame, in order
    assert q.get_nowait() == b"a1"
    q.hold_audio()
    await q.put_audio(b"b0")
    assert q.clear_audio() == 1  # a confirmed barge-in drops what was held
    q.release_audio()
    assert q.get_nowait() is None


def test_playback_clock_stops_while_paused_and_shifts_on_resume():
    turn = Playback(LoopClock())
    turn.t0, turn.audio_s = 100.0, 10.0
    assert turn.played_s(now=102.0) == pytest.approx(2.0)
    turn.pause(102.0)
    assert turn.played_s(now=105.0) == pytest.approx(2.0)  # nothing plays while paused
    turn.resume(105.0)
    assert turn.t0 == pytest.approx(103.0)  # shifted by the 3 s paused
    assert turn.played_s(now=106.0) == pytest.approx(3.0)
    fresh = Playback(LoopClock())  # paused before its first frame: the clock starts when audio does
    fresh.pause(50.0)
    fresh.t0 = 51.0
    fresh.resume(54.0)
    assert fresh.t0 == pytest.approx(54.0)


async def test_producer_holds_while_paused_and_goes_on_after_resume():
    clock = LoopClock()
    turn = Playback(clock)
    turn.pause(0.0)
    first = asyncio.ensure_future(pace(turn, 0.3, clock))  # no audio yet: the first frame waits too
    await asyncio.sleep(0.05)
    assert not first.done()
    turn.resume(0.0)
    await asyncio.wait_for(first, 5)
    turn.t0, turn.audio_s = clock.now(), 0.0
    turn.pause(clock.now())
    held = asyncio.ensure_future(pace(turn, 0.3, clock))
    await asyncio.sleep(0.05)
    assert not held.done()
    turn.resume(clock.now())
    await asyncio.wait_for(held, 5)


def audio_arrival(clock: list[tuple[int, float]], audio_s: float) -> float | None:
    """What ``Listener.arrival_of(audio_s, starts=True)`` answers for the audio clock ``clock``."""
    return moment_of(clock, audio_s, BYTES_PER_S, starts=True)


def test_speech_start_on_the_audio_timeline():
    clock = [(8192, 10.0), (16384, 10.256), (24576, 10.512)]
    # Speech at 0.3 s is in the second chunk, 0.212 s before its end arrived.
    assert audio_arrival(clock, 0.3) == pytest.approx(10.256 - (16384 - 9600) / 32000)
    assert audio_arrival(clock, 0.0) == pytest.approx(10.0 - 0.256)
    burst = [(8192, 5.0), (16384, 5.001)]  # chunks sent at once are not back-dated past the previous one
    assert audio_arrival(burst, 0.256) == pytest.approx(5.0)
    # Speech starting exactly where a chunk ends is in the next chunk (not the one that ended there).
    later = [(8192, 10.0), (16384, 12.0)]  # the user spoke again 2 s later
    assert audio_arrival(later, 0.256) == pytest.approx(12.0 - 0.256)
    assert audio_arrival(clock, 9.0) is None


def test_gateway_gate_admits_a_paused_then_resumed_turn():
    gate = AudioGate()
    gate.observe(audio_start(3, {"encoding": "linear16"}))
    assert gate.admit(encode_audio(3, 0, b"xx"))
    gate.observe(event("audio.pause", turn_id=3))
    assert gate.admit(encode_audio(3, 1, b"xx"))  # frames in flight before the pause are still the turn's
    gate.observe(event("audio.resume", turn_id=3))
    assert gate.admit(encode_audio(3, 2, b"xx"))
    gate.observe(event("audio.clear", turn_id=3, reason="barge_in"))
    assert not gate.admit(encode_audio(3, 3, b"xx"))


def test_talk_client_holds_a_paused_turn_and_plays_it_on_in_order():
    """``vani talk`` (client/talk.py) records what a player plays: ``AgentPlayback``."""
    pb = AgentPlayback()
    fmt = {"encoding": "linear16", "sample_rate": 24000, "channels": 1, "container": "none"}
    played: list[bytes] = []
    played += pb.on_event(json.loads(audio_start(1, fmt)))
    played += pb.on_frame(encode_audio(1, 0, b"a0"))
    played += pb.on_event(json.loads(event("audio.pause", turn_id=1)))
    played += pb.on_frame(encode_audio(1, 1, b"a1"))  # in flight at the pause: held, not lost
    assert played == [b"a0"]
    played += pb.on_event(json.loads(event("audio.resume", turn_id=1)))
    played += pb.on_frame(encode_audio(1, 2, b"a2"))
    assert played == [b"a0", b"a1", b"a2"] and pb.rate == 24000
    played += pb.on_event(json.loads(audio_start(2, fmt)))
    played += pb.on_frame(encode_audio(2, 0, b"b0"))
    played += pb.on_event(json.loads(event("audio.pause", turn_id=2)))
    played += pb.on_frame(encode_audio(2, 1, b"b1"))
    played += pb.on_event(json.loads(event("audio.clear", turn_id=2, reason="barge_in")))  # confirmed
    played += pb.on_frame(encode_audio(2, 2, b"b2"))
    assert played == [b"a0", b"a1", b"a2", b"b0"]
    assert pb.counts == {"pauses": 2, "resumes": 1, "clears": 1, "dropped": 1}
    assert AgentPlayback().on_frame(b"raw-echo-pcm") == [b"raw-echo-pcm"]  # echo sessions: no header
