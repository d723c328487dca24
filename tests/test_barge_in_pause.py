"""Pause first, decide after: user speech during a reply pauses it at once (``audio.pause``); the
false-barge-in guard then clears it (``audio.clear``) or resumes it (``audio.resume``) with nothing
repeated or lost. Real gateway, hosts and pipeline on the provider emulators (app ``agent``)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.adapters.audio import silence, speech
from tests.agent_helpers import CLIENT_CHUNK, AgentClient, script, utterance
from tests.test_agent_pipeline import LONG_REPLY, agent_url, reply_done, sid, snapshot, transitions

CHUNK_S = CLIENT_CHUNK / 32000  # 256 ms of 16 kHz PCM16 per client chunk
FRAME_S = 0.02  # the emulated Flux's audio clock step
MENU_REPLY = (
    "We cook Indian home food today. The kitchen opens at noon, and dinner is served until ten. "
    "Ask me about the specials."
)


async def first_audio(c: AgentClient, turn_id: int) -> None:
    await c.wait_type("audio.start", 20.0, turn_id=turn_id)
    while c.audio.get(turn_id, 0) == 0:  # noqa: ASYNC110 - the reader task fills c.audio
        await asyncio.sleep(0.01)


def index_of(c: AgentClient, kind: str, turn_id: int) -> int:
    return next(i for i, a in enumerate(c.arrivals) if a[0] == kind and a[1] == turn_id)


async def test_interrupting_speech_pauses_then_clears(vani_cluster, provider_emulator):
    s = sid("pause-int")
    await script(provider_emulator, s, transcripts=["tell me everything", "no wait stop please"], reply=LONG_REPLY)
    c = await AgentClient.connect(agent_url(vani_cluster, s))
    await c.send_audio(utterance(0.6, 0.5, seed=0))  # 1.1 s: the next speech starts on a chunk boundary
    await first_audio(c, 1)
    sent_at = time.monotonic()
    await c.send_audio(speech(0.9, seed=5) + silence(0.5))
    await c.wait_type("audio.pause", 20.0, turn_id=1)
    await c.wait_type("audio.clear", 20.0, turn_id=1)
    m = await reply_done(c, 1)
    report = await c.wait_type("LatencyReport", 20.0, turn_id=1)
    await c.wait_type("audio.start", 20.0, turn_id=2)  # the interrupting turn gets its reply
    await asyncio.sleep(0.3)  # a straggler frame of turn 1 would now be recorded as a violation
    # Paused first, then cleared; no frame of the turn after the pause; never resumed.
    pause_at, clear_at = index_of(c, "audio.pause", 1), index_of(c, "audio.clear", 1)
    assert pause_at < clear_at
    assert [a for a in c.arrivals[pause_at:] if a[:2] == ("audio", 1)] == []
    assert c.of_type("audio.resume", turn_id=1) == [] and c.violations == []
    moves = transitions(c)
    paused = next(i for i, t in enumerate(moves) if t[1] == "PAUSE")
    assert moves[paused][0] in ("thinking", "speaking") and moves[paused][2] == "paused"
    assert ("paused", "BARGE_IN", "interrupted") in moves[paused + 1 :]
    assert m["interrupted"] and m["outcome"] == "interrupted"
    assert m["text"] != LONG_REPLY and LONG_REPLY.startswith(m["text"].rstrip(".,"))  # heard before the pause
    # interrupt_stop_latency runs from the interrupting speech's start on the audio timeline (> 0: measured
    # from the barge-in decision it was 0), and the output stopped (last frame / audio.pause) before the
    # client got the pause. No lower bound beyond 0: how far a chunk is back-dated depends on when the one
    # before it arrived (speech_clock never dates before that), i.e. on the box's load.
    lat = report["interrupt_stop_latency"]
    assert report["outcome"] == "interrupted" and lat > 0
    pause_rcvd = c.arrivals[pause_at][2]
    assert lat <= (pause_rcvd - sent_at) + CHUNK_S + FRAME_S, (lat, pause_rcvd - sent_at)
    snap = await snapshot(vani_cluster, s)
    assert snap["history"][1] == {"role": "assistant", "content": f"{m['text']} [interrupted]".strip()}
    await c.close()


@pytest.mark.parametrize("overlap", ["uh-huh", ""], ids=["backchannel", "noise"])
async def test_backchannel_pauses_then_resumes_with_nothing_lost(vani_cluster, provider_emulator, overlap):
    s = sid("pause-bc")
    await script(provider_emulator, s, transcripts=["tell me about the menu", overlap], reply=MENU_REPLY)
    c = await AgentClient.connect(agent_url(vani_cluster, s))
    await c.send_audio(utterance(0.6, 0.5, seed=1))
    await first_audio(c, 1)
    await c.send_audio(speech(0.3, seed=2) + silence(0.5))  # "uh-huh" while the assistant speaks
    await c.wait_type("audio.pause", 20.0, turn_id=1)
    await c.wait_type("audio.resume", 20.0, turn_id=1)
    bc = await c.wait_type("backchannel", 20.0)
    m = await reply_done(c, 1, timeout=40.0)
    end = c.of_type("audio.end", turn_id=1)[0]
    report = await c.wait_type("LatencyReport", 20.0, turn_id=1)
    assert bc["transcript"] == overlap and bc["turn_id"] == 1
    pause_at, resume_at = index_of(c, "audio.pause", 1), index_of(c, "audio.resume", 1)
    assert pause_at < resume_at
    # Nothing between the pause and the resume, the rest of the reply after it.
    assert [a for a in c.arrivals[pause_at:resume_at] if a[0] == "audio"] == []
    assert [a for a in c.arrivals[resume_at:] if a[:2] == ("audio", 1)]
    assert c.violations == [] and c.of_type("audio.clear") == []
    # Nothing repeated or lost: chunk indexes contiguous, and all of the announced audio arrived.
    assert c.indexes[1] == list(range(end["chunks"]))
    assert abs(c.audio[1] / (24000 * 2) - end["duration_s"]) <= 0.001, (c.audio[1], end)
    assert not m["interrupted"] and m["outcome"] == "done" and m["text"] == MENU_REPLY
    assert report["outcome"] == "done" and "interrupt_stop_latency" not in report
    moves = transitions(c)
    assert ("paused", "RESUME_REPLY", "speaking") in moves and ("paused", "BARGE_IN", "interrupted") not in moves
    snap = await snapshot(vani_cluster, s)
    assert snap["history"] == [
        {"role": "user", "content": "tell me about the menu"},
        {"role": "assistant", "content": MENU_REPLY},
    ]
    assert snap["stats"]["backchannels"] == 1 and snap["stats"]["interrupted"] == 0
    await c.close()
