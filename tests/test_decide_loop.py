"""The agent's decide loop, driven step by step: scripted STT / LLM / TTS, a manual clock, no Ray, no sockets.

The engine under test is the real ``AgentEngine`` on a real ``RingBuffer`` and ``OutboundQueue``; only the
providers (external services) are scripted and the clock is a ``ManualClock``, so each test reads the exact
client events a session would send, in order, and the turn's outcome.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from vani.actors.agent.engine import AgentEngine
from vani.actors.agent.turn import TurnOutcome
from vani.actors.clock import ManualClock, settle_loop
from vani.actors.session.event_log import EventLog
from vani.actors.session.outbound import OutboundQueue
from vani.actors.session.ring_buffer import RingBuffer
from vani.actors.tracing.session_trace import SessionTrace
from vani.actors.wire.agent import decode_audio
from vani.adapters.base import (
    AudioFormat,
    ErrorKind,
    LlmToken,
    ProviderError,
    SttOptions,
    TtsChunk,
    TtsOptions,
    TurnEvent,
    TurnEventType,
)
from vani.adapters.factory import Providers
from vani.cluster.config import Settings

WORD_S = 0.1  # scripted TTS: 0.1 s of 24 kHz PCM16 per word
FMT = AudioFormat("linear16", 24000)
STALL = object()  # a scripted stream that stops sending and never ends


class ScriptedStt:
    """An STT whose events the test pushes (``say``)."""

    name = "scripted-stt"

    def __init__(self) -> None:
        self.events_q: asyncio.Queue[TurnEvent | None] = asyncio.Queue()
        self.forced = 0

    async def open(self, session_id: str, options: SttOptions) -> ScriptedStt:
        return self

    async def send_audio(self, pcm: bytes) -> None:
        pass

    async def force_end_turn(self) -> None:
        self.forced += 1

    async def events(self) -> AsyncIterator[TurnEvent]:
        while (ev := await self.events_q.get()) is not None:
            yield ev

    async def close(self) -> None:
        self.events_q.put_nowait(None)


class ScriptedLlm:
    """Replies from a list, one per request: a string (its words become tokens), an exception, or STALL."""

    name = "scripted-llm"

    def __init__(self, replies: list[Any]) -> None:
        self.replies = list(replies)
        self.requests: list[list[Any]] = []

    async def stream(self, messages: list[Any], tool: Any = None) -> AsyncIterator[Any]:
        self.requests.append(list(messages))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if reply is STALL:
            await asyncio.Event().wait()
        for i, word in enumerate(reply.split()):
            yield LlmToken(("" if i == 0 else " ") + word)


class ScriptedTts:
    """One chunk per word; ``stall_after`` words, then the stream stalls (never ends)."""

    name = "scripted-tts"

    def __init__(self, stall_after: int | None = None) -> None:
        self.stall_after = stall_after
        self.texts: list[str] = []

    async def synthesize(self, text: str, options: TtsOptions) -> AsyncIterator[TtsChunk]:
        self.texts.append(text)
        for i, _ in enumerate(text.split()):
            if self.stall_after is not None and i >= self.stall_after:
                await asyncio.Event().wait()
            yield TtsChunk(b"\0\0" * int(24000 * WORD_S), FMT)


class Io:
    """The session side of the engine seam: a real ring and outbound queue, a manual clock."""

    def __init__(self) -> None:
        self.session_id = "decide-unit"
        self.clock = ManualClock()
        self.ring = RingBuffer(1 << 20)
        self.outbound = OutboundQueue(1 << 24)
        self.events = EventLog(self.clock, 0)  # off (tests/test_replay.py records through a real Session)
        self.trace = SessionTrace("decide", self.clock)
        self.frames_ready = asyncio.Event()
        self.failed: str | None = None
        self.checkpoints = 0

    def space_freed(self) -> None:
        pass

    def checkpoint(self) -> None:
        self.checkpoints += 1

    def fail_internal(self, reason: str) -> None:
        self.failed = reason

    def close_normal(self, reason: str) -> None:
        pass


class Harness:
    def __init__(self, llm: list[Any], tts: ScriptedTts | None = None, **settings: Any) -> None:
        base = dict(watchdog_turn_no_audio_s=0, watchdog_llm_first_token_s=0, watchdog_tts_stall_s=0)
        self.settings = Settings.load(env={}, **{**base, **settings})
        self.io = Io()
        self.stt, self.llm, self.tts = ScriptedStt(), ScriptedLlm(llm), tts or ScriptedTts()
        providers = Providers(self.stt, SttOptions(), self.llm, self.tts, TtsOptions())
        self.engine = AgentEngine(self.io, self.settings, providers)  # type: ignore[arg-type]
        self.sent: list[dict[str, Any]] = []  # every client event, audio frames as {"type": "audio", ...}

    async def say(self, kind: TurnEventType, text: str = "", start: float = 0.0, end: float = 0.0) -> None:
        self.stt.events_q.put_nowait(TurnEvent(kind, 0, text, audio_window_start=start, audio_window_end=end))
        await self.step(0)

    async def step(self, seconds: float) -> None:
        await self.io.clock.advance(seconds)
        self.drain()

    def drain(self) -> None:
        """What the session's sender would send now (it tells the engine about each audio frame)."""
        while (msg := self.io.outbound.get_nowait()) is not None:
            if isinstance(msg, bytes):
                turn_id, index, _ = decode_audio(msg)
                self.engine.on_frame_sent(msg)
                self.sent.append({"type": "audio", "turn_id": turn_id, "index": index})
            else:
                self.sent.append(json.loads(msg))

    def of(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] in types]

    def script(self) -> list[tuple[Any, ...]]:
        """The client-visible story, without per-token and per-frame noise."""
        out: list[tuple[Any, ...]] = []
        for m in self.sent:
            t = m["type"]
            if t == "conversation":
                out.append(("conversation", m["event"], m["to"]))
            elif t in ("audio.start", "audio.pause", "audio.resume", "audio.end"):
                out.append((t, m["turn_id"]))
            elif t == "audio.clear":
                out.append((t, m["turn_id"], m["reason"]))
            elif t == "assistant.message":
                out.append((t, m["turn_id"], m["text"], m["outcome"]))
            elif t in ("error", "watchdog"):
                out.append((t, m.get("code") or m.get("name"), m.get("outcome")))
            elif t == "backchannel":
                out.append((t, m["transcript"]))
        return out

    async def user_turn(self, text: str, start: float = 0.0) -> None:
        end = start + 0.3 * max(1, len(text.split()))
        await self.say(TurnEventType.START_OF_TURN, "", start, start)
        await self.say(TurnEventType.UPDATE, text, start, end)
        await self.say(TurnEventType.END_OF_TURN, text, start, end)

    async def close(self) -> None:
        await self.engine.aclose()


@pytest.fixture
async def make():
    made: list[Harness] = []

    def build(llm: list[Any], tts: ScriptedTts | None = None, **settings: Any) -> Harness:
        h = Harness(llm, tts, **settings)
        made.append(h)
        return h

    yield build
    for h in made:
        await h.close()


async def settle_engine(h: Harness) -> None:
    await settle_loop(50)
    h.drain()


async def test_a_turn_is_answered_and_played_out(make):
    h = make(["It is noon."])
    await settle_engine(h)
    await h.user_turn("what time is it")
    await h.step(0.3)  # 3 words of audio = 0.3 s: played out
    assert h.script() == [
        ("conversation", "TURN_START", "transcribing"),
        ("conversation", "TRANSCRIPT_FINAL", "thinking"),
        ("audio.start", 1),
        ("audio.end", 1),  # the whole reply fits in the playout lead: sent before the machine hears of it
        ("conversation", "AUDIO_STARTED", "speaking"),
        ("assistant.message", 1, "It is noon.", "done"),
        ("conversation", "REPLY_DONE", "listening"),
    ]
    assert "".join(m["text"] for m in h.of("assistant.text")) == "It is noon."
    assert [m["index"] for m in h.of("audio")] == list(range(len(h.of("audio"))))
    report = h.of("LatencyReport")[0]
    assert report["outcome"] == "done" and report["turn_id"] == 1
    assert [m.role for m in h.engine.conv.history] == ["user", "assistant"]


async def test_interruption_mid_sentence_cuts_the_history_to_what_was_heard(make):
    reply = "one two three four five six seven eight nine ten"
    h = make([reply, "Sure."], audio_frame_ms=0)
    await settle_engine(h)
    await h.user_turn("count to ten")
    await h.step(0.35)  # ~3 words heard
    await h.say(TurnEventType.START_OF_TURN, "", 10.0, 10.0)  # the user talks over the reply: pause first
    assert h.script()[-2:] == [("audio.pause", 1), ("conversation", "PAUSE", "paused")]
    await h.step(0.2)  # paused: nothing more plays
    await h.say(TurnEventType.UPDATE, "no stop", 10.0, 10.2)  # too short for the policy yet
    assert h.engine.conv.conv_state == "paused"
    await h.say(TurnEventType.UPDATE, "no stop please", 10.0, 10.5)  # 500 ms and 3 words: barge-in
    story = h.script()
    heard = story[-2]
    assert story[-5:] == [
        ("audio.clear", 1, "barge_in"),
        ("conversation", "BARGE_IN", "interrupted"),
        ("conversation", "CANCEL", "cancelling"),
        ("assistant.message", 1, heard[2], "interrupted"),
        ("conversation", "CANCELLED", "transcribing"),  # the user's turn is still open
    ]
    assert heard[2] in ("one two three", "one two three four"), heard  # what played before the pause
    assert list(h.engine.conv.history)[-1].content == f"{heard[2]} [interrupted]"
    await h.say(TurnEventType.END_OF_TURN, "no stop please", 10.0, 10.5)
    await h.step(0.2)
    assert h.script()[-2:] == [("assistant.message", 2, "Sure.", "done"), ("conversation", "REPLY_DONE", "listening")]
    assert h.engine.conv.stats["interrupted"] == 1


async def test_eager_end_of_turn_confirmed_releases_the_held_reply(make):
    h = make(["A table for two, done."])
    await settle_engine(h)
    await h.say(TurnEventType.START_OF_TURN)
    await h.say(TurnEventType.UPDATE, "book a table", 0.0, 0.9)
    await h.say(TurnEventType.EAGER_END_OF_TURN, "book a table", 0.0, 0.9)
    await h.step(0.5)
    assert h.engine.conv.conv_state == "speculating"
    assert len(h.llm.requests) == 1  # the LLM already runs ...
    assert not h.of("assistant.text", "audio.start", "audio")  # ... but nothing leaves before EndOfTurn
    await h.say(TurnEventType.END_OF_TURN, "book a table", 0.0, 0.9)
    await h.step(1.0)
    assert h.script() == [
        ("conversation", "TURN_START", "transcribing"),
        ("conversation", "EAGER_EOT", "speculating"),
        ("conversation", "TRANSCRIPT_FINAL", "thinking"),
        ("audio.start", 1),
        ("conversation", "AUDIO_STARTED", "speaking"),  # 0.5 s of reply: the producer waits past the lead
        ("audio.end", 1),
        ("assistant.message", 1, "A table for two, done.", "done"),
        ("conversation", "REPLY_DONE", "listening"),
    ]
    assert "".join(m["text"] for m in h.of("assistant.text")) == "A table for two, done."
    assert h.of("LatencyReport")[0]["speculative"] is True
    stats = h.engine.conv.stats
    assert (stats["eager_started"], stats["eager_discarded"]) == (1, 0)


async def test_eager_end_of_turn_discarded_when_the_user_goes_on(make):
    h = make(["Held words nobody hears.", "Booked."])
    await settle_engine(h)
    await h.say(TurnEventType.START_OF_TURN)
    await h.say(TurnEventType.EAGER_END_OF_TURN, "book a table", 0.0, 0.9)
    await h.step(0.2)
    speculative = h.engine.conv.turn
    assert speculative is not None and speculative.speculative
    await h.say(TurnEventType.TURN_RESUMED, "book a table for", 0.0, 1.2)
    assert speculative.outcome is TurnOutcome.DISCARDED
    assert h.engine.conv.turn is None and h.engine.conv.conv_state == "transcribing"
    await h.say(TurnEventType.END_OF_TURN, "book a table for two", 0.0, 1.5)
    await h.step(1.0)
    assert h.script() == [
        ("conversation", "TURN_START", "transcribing"),
        ("conversation", "EAGER_EOT", "speculating"),
        ("conversation", "TURN_RESUMED", "transcribing"),
        ("conversation", "TRANSCRIPT_FINAL", "thinking"),
        ("audio.start", 2),
        ("audio.end", 2),
        ("conversation", "AUDIO_STARTED", "speaking"),
        ("assistant.message", 2, "Booked.", "done"),
        ("conversation", "REPLY_DONE", "listening"),
    ]
    assert {m["turn_id"] for m in h.of("assistant.text", "audio", "LatencyReport")} == {2}  # none of turn 1
    assert h.llm.requests[1][-1].content == "book a table for two"  # the final transcript, not the eager one
    stats = h.engine.conv.stats
    assert (stats["eager_started"], stats["eager_discarded"]) == (1, 1)


async def test_llm_failure_is_reported_and_the_conversation_goes_on(make):
    h = make([ProviderError("scripted-llm", ErrorKind.UNAVAILABLE, "down"), "Back again."])
    await settle_engine(h)
    await h.user_turn("hello")
    await h.step(0.1)
    assert h.script() == [
        ("conversation", "TURN_START", "transcribing"),
        ("conversation", "TRANSCRIPT_FINAL", "thinking"),
        ("error", "llm_failed", None),
        ("assistant.message", 1, "", "done"),
        ("conversation", "REPLY_DONE", "listening"),
    ]
    assert h.io.failed is None  # the session lives on
    await h.user_turn("hello again", start=5.0)
    await h.step(0.5)
    assert h.script()[-2:] == [
        ("assistant.message", 2, "Back again.", "done"),
        ("conversation", "REPLY_DONE", "listening"),
    ]


async def test_tts_stall_ends_the_turn_by_watchdog(make):
    h = make(["one two three four five six"], ScriptedTts(stall_after=2), watchdog_tts_stall_s=4.0)
    await settle_engine(h)
    await h.user_turn("talk to me")
    await h.step(3.9)  # two words of audio, then nothing: not yet
    assert h.engine.conv.conv_state == "speaking"
    await h.step(0.2)  # 4 s without TTS audio
    assert h.script()[2:] == [
        ("audio.start", 1),
        ("conversation", "AUDIO_STARTED", "speaking"),
        ("audio.clear", 1, "watchdog"),
        ("watchdog", "tts_stall", "reply_ended"),
        ("conversation", "WATCHDOG", "cancelling"),
        # heard: the first piece ("one two three four") played to the end of the audio it got
        ("assistant.message", 1, "one two three four", "watchdog"),
        ("conversation", "CANCELLED", "listening"),
    ]
    turn_text = h.of("assistant.message")[0]
    assert turn_text["interrupted"] is True
    assert list(h.engine.watchdog.fired) == ["tts_stall"]


async def test_immediate_policy_interrupts_at_the_first_sound(make):
    h = make(["one two three four five six seven eight", "Yes?"], barge_in_policy="immediate", audio_frame_ms=0)
    await settle_engine(h)
    await h.user_turn("talk")
    await h.step(0.25)
    await h.say(TurnEventType.START_OF_TURN, "", 10.0, 10.0)  # no words yet: "immediate" does not wait for them
    story = h.script()
    assert story[-7:] == [
        ("audio.pause", 1),
        ("conversation", "PAUSE", "paused"),
        ("audio.clear", 1, "barge_in"),
        ("conversation", "BARGE_IN", "interrupted"),
        ("conversation", "CANCEL", "cancelling"),
        ("assistant.message", 1, story[-2][2], "interrupted"),
        ("conversation", "CANCELLED", "transcribing"),
    ]
    await h.say(TurnEventType.END_OF_TURN, "uh-huh", 10.0, 10.4)  # even a backchannel: it is a new user turn
    await h.step(0.2)
    assert h.script()[-2:] == [("assistant.message", 2, "Yes?", "done"), ("conversation", "REPLY_DONE", "listening")]


async def test_backchannel_resumes_the_paused_reply(make):
    h = make(["one two three four five six"], audio_frame_ms=0)
    await settle_engine(h)
    await h.user_turn("talk")
    await h.step(0.25)
    await h.say(TurnEventType.START_OF_TURN, "", 10.0, 10.0)
    await h.say(TurnEventType.END_OF_TURN, "uh-huh", 10.0, 10.3)
    assert h.script()[-5:] == [
        ("audio.pause", 1),
        ("conversation", "PAUSE", "paused"),
        ("backchannel", "uh-huh"),
        ("audio.resume", 1),
        ("conversation", "RESUME_REPLY", "speaking"),
    ]
    await h.step(1.0)
    assert h.script()[-2:] == [
        ("assistant.message", 1, "one two three four five six", "done"),
        ("conversation", "REPLY_DONE", "listening"),
    ]
    audio = h.of("audio")
    assert [m["index"] for m in audio] == list(range(len(audio)))  # nothing repeated or lost
    assert h.engine.conv.stats["backchannels"] == 1


async def test_audio_frame_ms_0_sends_each_tts_chunk_as_one_frame(make):
    """The setting's documented meaning: no coalescing and no cutting (not one frame per sample)."""
    h = make(["one two three four"], audio_frame_ms=0)
    await settle_engine(h)
    await h.user_turn("count")
    await h.step(1.0)
    frames = h.of("audio")
    assert len(frames) == 4 == len(h.tts.texts[0].split())  # the scripted TTS: one chunk per word


async def test_assistant_text_is_sent_at_once_then_batched(make):
    reply = "one two three four five six seven eight nine ten"
    per_token = make([reply], assistant_text_interval_ms=0)
    batched = make([reply])  # the default: the first text at once, then at most every 100 ms
    for h in (per_token, batched):
        await settle_engine(h)
        await h.user_turn("count")
        await h.step(0.05)
    assert [m["text"] for m in per_token.of("assistant.text")] == ["one", *(f" {w}" for w in reply.split()[1:])]
    texts = [m["text"] for m in batched.of("assistant.text")]
    assert texts == ["one"]  # the rest waits (50 ms into the turn)
    await batched.step(0.06)
    assert [m["text"] for m in batched.of("assistant.text")] == ["one", reply[3:]]  # one event for the rest
    for h in (per_token, batched):
        await h.step(2.0)
        kinds = [m["type"] for m in h.sent]
        assert kinds.index("assistant.message") > max(i for i, k in enumerate(kinds) if k == "assistant.text")
        assert "".join(m["text"] for m in h.of("assistant.text")) == reply


async def test_pending_text_reaches_the_client_before_an_interrupted_turns_summary(make):
    reply = "one two three four five six seven eight nine ten"
    h = make([reply, "Ok."], assistant_text_interval_ms=10_000, audio_frame_ms=0)
    await settle_engine(h)
    await h.user_turn("count")
    await h.step(0.3)
    assert [m["text"] for m in h.of("assistant.text")] == ["one"]  # the rest is pending (10 s interval)
    await h.say(TurnEventType.START_OF_TURN, "", 10.0, 10.0)
    await h.say(TurnEventType.UPDATE, "no stop please", 10.0, 10.5)
    kinds = [m["type"] for m in h.sent]
    assert "".join(m["text"] for m in h.of("assistant.text")) == reply
    assert kinds.index("assistant.message") > max(i for i, k in enumerate(kinds) if k == "assistant.text")


class LateClock(ManualClock):
    """A stalled event loop: every timer fires ``late`` seconds after it is due (sleeps are not late, so
    the paced LLM's tokens come at the same times)."""

    late = 0.0
    current: LateClock | None = None  # the newest (the harness's Io makes one)

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__(start)
        LateClock.current = self

    def call_later(self, delay: float, fn: Any, *args: Any) -> Any:
        return super().call_later(delay + self.late, fn, *args)

    async def sleep(self, seconds: float) -> None:
        woke = asyncio.get_running_loop().create_future()
        timer = super().call_later(seconds, lambda: woke.done() or woke.set_result(None))
        try:
            await woke
        finally:
            timer.cancel()


class PacedLlm(ScriptedLlm):
    """Tokens every ``gap`` seconds of the session's clock (the harness's ``LateClock``)."""

    def __init__(self, replies: list[Any], gap: float = 0.03) -> None:
        super().__init__(replies)
        self.clock, self.gap = LateClock.current, gap

    async def stream(self, messages: list[Any], tool: Any = None) -> AsyncIterator[Any]:
        async for token in super().stream(messages, tool):
            await self.clock.sleep(self.gap)
            yield token


async def test_text_batches_follow_the_tokens_times_not_a_late_timer(make, monkeypatch):
    """A busy loop fires the batching timer late; the batches must still close at their deadlines (what a
    replay, whose timers are on time, says), so the assistant.text events are the same either way."""
    monkeypatch.setattr(sys.modules[__name__], "ManualClock", LateClock)
    monkeypatch.setattr(sys.modules[__name__], "ScriptedLlm", PacedLlm)
    reply = "one two three four five six seven eight nine ten eleven twelve"
    texts = []
    for late in (0.0, 0.25):
        LateClock.late = late
        h = make([reply])
        await settle_engine(h)
        await h.user_turn("count")
        await h.step(1.5)
        texts.append([m["text"] for m in h.of("assistant.text")])
    LateClock.late = 0.0
    assert "".join(texts[0]) == reply and len(texts[0]) > 2  # batched: not one event per token, nor one
    assert texts[1] == texts[0]
