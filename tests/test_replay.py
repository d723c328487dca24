"""Record -> replay round trips (issue 13, items 1-2): a real ``Session`` with the agent engine records its event
log on a manual clock, with scripted providers; ``actors/replay`` re-runs the engine from the log alone and
must say exactly what the session said. Then the same log replayed with a changed setting says something
else, 100 replays agree, and broken logs are refused with the line named.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.test_audio_duration import mp3 as encode_mp3
from tests.test_audio_duration import tone
from tests.test_decide_loop import ScriptedStt, ScriptedTts
from vani.actors.agent.engine import AgentEngine
from vani.actors.agent.recording import recording
from vani.actors.clock import ManualClock, settle_loop
from vani.actors.replay import compare, driver, log_file
from vani.actors.session.checkpoints import Checkpointer
from vani.actors.session.session import Hooks, Session
from vani.actors.store.record import SessionRecord, token_digest
from vani.actors.store.sqlite_store import SqliteStore
from vani.adapters.base import (
    AudioFormat,
    LlmToken,
    LlmToolCall,
    SttOptions,
    ToolCall,
    TtsChunk,
    TtsOptions,
    TurnEvent,
    TurnEventType,
)
from vani.adapters.factory import Providers
from vani.cluster.config import SessionLimits, Settings

FRAME = bytes(640)  # 20 ms of 16 kHz PCM16


class ToolLlm:
    """Replies from a list, one per request: a string (its words become tokens) or a ``ToolCall``."""

    name = "scripted-llm"

    def __init__(self, replies: list[Any]) -> None:
        self.replies = list(replies)

    async def stream(self, messages: list[Any], tool: Any = None) -> AsyncIterator[Any]:
        reply = self.replies.pop(0)
        if isinstance(reply, ToolCall):
            yield LlmToolCall(reply)
            return
        for i, word in enumerate(reply.split()):
            await asyncio.sleep(0)
            yield LlmToken(("" if i == 0 else " ") + word)


class Link:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, message: str | bytes) -> None:
        self.sent.append(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass


class Recorder:
    """A live session on a manual clock: audio frames through the session, STT events scripted."""

    def __init__(self, replies: list[Any], tts: Any = None, llm: Any = None, **settings: Any) -> None:
        self.settings = Settings.load(env={}, agent_tool="clock", **settings)
        tts = tts or ScriptedTts()
        self.clock = ManualClock()
        self.stt = ScriptedStt()
        self.seq = -1  # the gateway numbers frames from 0

        def build(io: Any) -> AgentEngine:
            io.events.begin(session_id=io.session_id, mode="agent", settings=self.settings.public())
            providers = Providers(self.stt, SttOptions(), llm or ToolLlm(replies), tts, TtsOptions())
            return AgentEngine(io, self.settings, recording(providers, io.events))

        limits = SessionLimits.from_settings(self.settings)
        self.session = Session("rec-1", limits, Hooks(on_closed=lambda s, c: None), build, clock=self.clock)
        self.link = Link()

    async def start(self) -> None:
        self.session.attach(self.link)
        await settle_loop(50)

    async def talk(self, seconds: float) -> None:
        """The client streams ``seconds`` of audio in 20 ms frames, in real time."""
        for _ in range(round(seconds / 0.02)):
            self.seq += 1
            await self.session.on_frame(self.seq, FRAME)
            await self.clock.advance(0.02, settle=50)

    async def say(self, kind: TurnEventType, text: str = "", start: float = 0.0, end: float = 0.0) -> None:
        self.stt.events_q.put_nowait(TurnEvent(kind, 0, text, audio_window_start=start, audio_window_end=end))
        await settle_loop(50)

    def log(self) -> log_file.SessionLog:
        return log_file.parse(self.session.events.lines())

    async def close(self) -> None:
        await self.session.aclose()


async def conversation() -> Recorder:
    """A normal turn, a tool call, an eager end of turn discarded, and a barge-in."""
    rec = Recorder(
        [
            "It is noon.",
            ToolCall("call-1", "clock", {}),
            "The clock says noon.",
            "Held.",
            "one two three four five six seven eight nine ten",
            "Sure.",
        ],
        audio_frame_ms=0,
    )
    await rec.start()
    # 1. a plain turn
    await rec.say(TurnEventType.START_OF_TURN)
    await rec.talk(0.4)
    await rec.say(TurnEventType.UPDATE, "what time is it", 0.0, 0.4)
    await rec.say(TurnEventType.END_OF_TURN, "what time is it", 0.0, 0.4)
    await rec.talk(1.0)
    # 2. a tool call: the LLM asks the clock, then answers with its result
    await rec.say(TurnEventType.START_OF_TURN, "", 1.4, 1.4)
    await rec.talk(0.4)
    await rec.say(TurnEventType.END_OF_TURN, "check the clock", 1.4, 1.8)
    await rec.talk(1.0)
    # 3. an eager end of turn, discarded when the user goes on
    await rec.say(TurnEventType.START_OF_TURN, "", 2.8, 2.8)
    await rec.say(TurnEventType.EAGER_END_OF_TURN, "book a table", 2.8, 3.2)
    await rec.talk(0.2)
    await rec.say(TurnEventType.TURN_RESUMED, "book a table for", 2.8, 3.4)
    await rec.talk(0.2)
    await rec.say(TurnEventType.END_OF_TURN, "book a table for ten", 2.8, 3.6)
    await rec.talk(0.35)
    # 4. the user talks over the reply: pause, then barge-in
    await rec.say(TurnEventType.START_OF_TURN, "", 4.0, 4.0)
    await rec.talk(0.2)
    await rec.say(TurnEventType.UPDATE, "no stop please", 4.0, 4.5)
    await rec.talk(0.2)
    await rec.say(TurnEventType.END_OF_TURN, "no stop please", 4.0, 4.6)
    await rec.talk(1.0)
    return rec


@pytest.fixture
async def recorded() -> AsyncIterator[Recorder]:
    rec = await conversation()
    yield rec
    await rec.close()


def types(log: log_file.SessionLog) -> list[str]:
    return [json.dumps(e["msg"]["type"]) if e["k"] == "out" else e["k"] for e in log.outputs()]


async def test_a_recorded_session_replays_to_the_same_outputs(recorded: Recorder):
    log = recorded.log()
    kinds = {e["k"] for e in log.entries}
    assert {"frame", "stt", "llm.request", "llm", "tts.request", "tts", "tool", "out", "audio"} <= kinds
    script = [compare.line(e) for e in log.outputs() if e["k"] == "out"]
    assert any('"event":"BARGE_IN"' in s for s in script) and any('"event":"TURN_RESUMED"' in s for s in script)
    assert any(e["k"] == "tool" and e["name"] == "clock" for e in log.entries)
    replayed = await driver.run(log)
    assert compare.first_divergence(log.outputs(), replayed) is None
    assert len(replayed) == len(log.outputs())


async def test_a_changed_setting_changes_the_story(recorded: Recorder):
    log = recorded.log()
    before = compare.story(log.outputs())
    # The reply paused by the user's speech resumes after 50 ms instead of 3 s: the client hears more of it.
    quick = await driver.run(log, {"watchdog_paused_s": 0.05})
    divergence = compare.first_divergence(log.outputs(), quick)
    assert divergence is not None
    after = compare.story(quick)
    assert not any('"type":"audio.resume"' in line for line in before)
    assert any('"type":"audio.resume"' in line for line in after)
    # The immediate policy interrupts at the first sound: before the user's words arrive (only the order
    # across streams changes here: the per-stream comparison sees the same outputs, the story does not).
    immediate = compare.story(await driver.run(log, {"barge_in_policy": "immediate"}))
    assert immediate != before


async def test_replays_of_one_log_agree_100_times(recorded: Recorder):
    log = recorded.log()
    first = await driver.run(log)
    for _ in range(99):
        assert await driver.run(log) == first


def write(path: Any, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def vani(*args: str) -> subprocess.CompletedProcess[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "vani")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


async def test_vani_replay_compares_and_diffs_a_changed_setting(recorded: Recorder, tmp_path):
    path = write(tmp_path / "s.jsonl", list(recorded.session.events.lines()))
    same = await asyncio.to_thread(vani, "replay", path)
    assert same.returncode == 0 and "the same as logged" in same.stdout, same.stdout + same.stderr
    changed = await asyncio.to_thread(vani, "replay", path, "--set", "watchdog_paused_s=0.05")
    assert changed.returncode == 0, changed.stderr
    assert "+++ watchdog_paused_s=0.05" in changed.stdout and '+{"turn_id":4,"type":"audio.resume"}' in changed.stdout
    # An output the session never made: the first divergence is shown with what came before it.
    lines = list(recorded.session.events.lines())
    edited = [
        line.replace('"text":"Sure."', '"text":"Sure!"') if '"assistant.message"' in line else line for line in lines
    ]
    assert edited != lines
    differs = await asyncio.to_thread(vani, "replay", write(tmp_path / "e.jsonl", edited))
    assert differs.returncode == 1 and "replay differs at output" in differs.stdout, differs.stdout
    assert '"text":"Sure!"' in differs.stdout.split("logged:")[1] and '"text":"Sure."' in differs.stdout


async def test_broken_logs_are_refused_with_the_line_named(recorded: Recorder, tmp_path):
    lines = list(recorded.session.events.lines())
    bad = [*lines[:5], '{"i": 4, "t": ', *lines[6:]]
    with pytest.raises(log_file.LogError, match=r"log:6: not JSON"):
        log_file.parse(bad)
    with pytest.raises(log_file.LogError, match=r"truncated: the header says \d+ entries, the file has 10"):
        log_file.parse(lines[:11])
    newer = json.loads(lines[0]) | {"version": 99}
    with pytest.raises(log_file.LogError, match="format version 99; this vani reads version 1"):
        log_file.parse([json.dumps(newer), *lines[1:]])
    with pytest.raises(log_file.LogError, match="log:3: unknown entry kind 'bogus'"):
        log_file.parse([lines[0], lines[1], '{"k": "bogus", "t": 1}'])
    with pytest.raises(log_file.LogError, match="not a vani event log"):
        log_file.parse(['{"hello": 1}'])
    cli = await asyncio.to_thread(vani, "replay", write(tmp_path / "bad.jsonl", bad))
    assert cli.returncode == 2 and ":6: not JSON" in cli.stderr
    unknown = await asyncio.to_thread(vani, "replay", write(tmp_path / "ok.jsonl", lines), "--set", "no_such=1")
    assert unknown.returncode == 2 and "unknown setting(s) for --set: no_such" in unknown.stderr


async def test_a_log_that_lost_its_start_is_refused():
    rec = Recorder(["Hello there."], event_log_entries=20)
    await rec.start()
    await rec.talk(1.0)  # 50 frames: the ring of 20 wraps
    with pytest.raises(log_file.LogError, match=r"lost its first 3\d entries .* raise event_log_entries"):
        rec.log()
    await rec.close()


async def test_the_stored_log_holds_the_same_entries_and_replays(tmp_path):
    """The event log appended to a real session store in batches (actors/session/checkpoints.py) while the
    session runs: the stored run holds exactly the entries of the ring, and replays to the same outputs."""
    store = SqliteStore(str(tmp_path / "store" / "app-node.sqlite3"))
    checkpoints = Checkpointer(store, ttl_s=60.0, live=lambda: [], log_keep=100_000)
    rec = Recorder(["It is noon.", "Sure."])
    await rec.start()
    stub = SessionRecord("rec-1", token_digest("t"), "agent", {}, {}, {}, time.time())  # the log lives with it
    checkpoints.save("rec-1", lambda: stub, rec.session.events)
    await rec.say(TurnEventType.START_OF_TURN)
    await rec.talk(0.4)
    assert await checkpoints.flush()  # a first batch: the run's header and what came so far
    await rec.say(TurnEventType.END_OF_TURN, "what time is it", 0.0, 0.4)
    await rec.talk(1.0)
    assert await checkpoints.flush()
    await rec.say(TurnEventType.START_OF_TURN, "", 1.4, 1.4)
    await rec.talk(0.4)
    await rec.say(TurnEventType.END_OF_TURN, "thanks", 1.4, 1.8)
    await rec.talk(1.0)
    assert await checkpoints.flush()
    raw = await store.read_log("rec-1")
    assert raw[0].startswith('{"format":"vani-event-log"') and sum(line.startswith('{"format"') for line in raw) == 1
    assert raw[1:] == list(rec.session.events.lines())[1:]  # the same entries, written once each, in order
    lines, orphans = log_file.stored_runs(raw)
    (log,) = log_file.parse_runs(lines)
    assert orphans == 0 and log.header["cut"] is True and log.header["entries"] == len(raw) - 1
    path = write(tmp_path / "stored.jsonl", lines)
    same = await asyncio.to_thread(vani, "replay", path)
    assert same.returncode == 0 and "the same as logged" in same.stdout, same.stdout + same.stderr
    await rec.close()
    await checkpoints.aclose()


async def test_entries_the_ring_let_go_before_a_write_are_noted_and_the_run_refused():
    rec = Recorder(["Hello there."], event_log_entries=20)
    await rec.start()
    events = rec.session.events
    first, mark = events.unwritten()
    events.stored(mark)
    assert json.loads(first[0])["format"] == "vani-event-log"
    await rec.talk(1.0)  # 50 frames before the next write: the ring of 20 let go of the first 30-odd
    later, _ = events.unwritten()
    lost = json.loads(later[0])
    assert lost["k"] == "session" and lost["lost"] > 20 and len(later) == 21
    lines, _ = log_file.stored_runs(first + later)
    with pytest.raises(log_file.LogError, match=r"lost its first \d+ entries"):
        log_file.parse_runs(lines)
    await rec.close()


async def test_a_cut_run_is_checked_up_to_where_its_log_ends(recorded: Recorder):
    """A stored run may end before its session did (its host died): its logged outputs must all be said
    again, and what the replay says past the logged end is not a difference; in a whole log it is."""
    lines = list(recorded.session.events.lines())
    outputs = [i for i, line in enumerate(lines) if '"k":"out"' in line or '"k":"audio"' in line]
    kept = [line for i, line in enumerate(lines[1:], start=1) if i not in outputs[-10:]]  # its last outputs lost
    log = log_file.parse([json.dumps(json.loads(lines[0]) | {"entries": len(kept)}), *kept])
    replayed = await driver.run(log)
    missing = compare.first_divergence(log.outputs(), replayed)
    assert missing is not None and missing.logged is None  # a whole log: the replay said more
    assert compare.first_divergence(log.outputs(), replayed, cut=True) is None
    first_text = next(i for i, line in enumerate(kept) if '"type":"assistant.text"' in line)
    edited = [*kept[:first_text], kept[first_text].replace('"text":"', '"text":"Not '), *kept[first_text + 1 :]]
    wrong = log_file.parse([json.dumps(json.loads(lines[0]) | {"entries": len(kept)}), *edited])
    assert edited != kept and compare.first_divergence(wrong.outputs(), replayed, cut=True) is not None


class Mp3Tts:
    """Real MP3 (LAME, tests/test_audio_duration.py), 0.3 s per word, in pieces that split its frames anywhere:
    the reply paces it by its own frame headers (actors/agent/audio_duration.py)."""

    name = "mp3-tts"

    async def synthesize(self, text: str, options: TtsOptions) -> AsyncIterator[TtsChunk]:
        mp3 = encode_mp3(tone(0.3 * len(text.split()), 24000), 24000, 64)
        for i in range(0, len(mp3), 700):
            yield TtsChunk(mp3[i : i + 700], AudioFormat("mp3", 24000))


async def test_a_session_with_compressed_tts_replays_to_the_same_outputs():
    """MP3 TTS is logged with its bytes (a replay needs them: the reply's pacing and the heard text come
    from its frames); a turn and a barge-in mid-reply replay to the same outputs, audio frames included."""
    rec = Recorder(["It is noon, and the sun is high up in the sky today.", "Sure."], tts=Mp3Tts())
    await rec.start()
    await rec.say(TurnEventType.START_OF_TURN)
    await rec.talk(0.4)
    await rec.say(TurnEventType.END_OF_TURN, "what time is it", 0.0, 0.4)
    await rec.talk(1.5)  # the reply is speaking
    await rec.say(TurnEventType.START_OF_TURN, "", 1.9, 1.9)
    await rec.talk(0.3)
    await rec.say(TurnEventType.END_OF_TURN, "stop please", 1.9, 2.2)
    await rec.talk(1.0)
    log = rec.log()
    tts = [e for e in log.entries if e["k"] == "tts" and "n" in e]
    assert tts and all(e["format"]["encoding"] == "mp3" and "audio" in e for e in tts)
    script = [compare.line(e) for e in log.outputs() if e["k"] == "out"]
    assert any('"event":"BARGE_IN"' in s for s in script), script
    assert sum(e["k"] == "audio" for e in log.outputs()) > 5
    replayed = await driver.run(log)
    found = compare.first_divergence(log.outputs(), replayed)
    assert found is None, f"{found.stream} at {found.index}:\n{found.logged}\n{found.replayed}" if found else ""
    await rec.close()


def test_measured_latencies_are_not_compared_but_their_presence_is():
    """A live run's LatencyReport measured its own loop and host (a busy box's stalls included): a replay
    cannot reproduce those durations. Other measured times keep their tolerance."""

    def report(**fields: Any) -> dict[str, Any]:
        msg = {"type": "LatencyReport", "turn_id": 2, "outcome": "done", "total_latency": 0.35, **fields}
        return {"i": 0, "t": 1.0, "k": "out", "msg": msg}

    assert compare.first_divergence([report()], [report(total_latency=0.087)]) is None
    assert compare.first_divergence([report()], [report(total_latency=None)]) is not None
    assert compare.first_divergence([report()], [report(outcome="interrupted")]) is not None
    end = {"i": 0, "t": 1.0, "k": "out", "msg": {"type": "audio.end", "turn_id": 1, "duration_s": 3.43}}
    longer = {**end, "msg": {**end["msg"], "duration_s": 3.6}}
    assert compare.first_divergence([end], [longer]) is not None
