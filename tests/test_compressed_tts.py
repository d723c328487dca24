"""Compressed TTS through the real gateway: Aura's MP3 from the provider emulator (``/mp3`` app).

The reply is paced by the MP3's own frame headers (actors/agent/audio_duration.py), so what was sent is
what was heard (within ``playout_lead_ms``), the turn ends when playback does, and a barge-in cuts
playback and the history at the words heard. Durations are measured by decoding the MP3 the client got.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid

import av

from tests.adapters.audio import silence, speech
from tests.agent_helpers import AgentClient, script, utterance
from vani.actors.agent.audio_duration import mp3_frame

LEAD_S = 0.3  # playout_lead_ms of the app
FRAME_S = 0.1  # audio_frame_ms: audio is sent in frames of about this much
# Client-side timing is off by the network delay of the first frame vs later ones (a busy box delays any
# of them): margin for that. Unpaced audio would be seconds ahead (the emulator synthesises 50x real time).
SLACK_S = 0.5
REPLY = " ".join(f"Sentence number {i} is here, and it keeps going." for i in range(8))


def sid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def url(cluster, session_id: str) -> str:
    return f"{cluster.url('mp3')}/v1/sessions/{session_id}"


def packets(mp3: bytes) -> list[tuple[int, float]]:
    """(byte offset, seconds) of each MP3 packet, as PyAV's demuxer and decoder see them."""
    out = []
    with av.open(io.BytesIO(mp3), format="mp3") as f:
        for packet in f.demux(audio=0):
            secs = sum(fr.samples / fr.sample_rate for fr in packet.decode())
            if packet.pos is not None and packet.pos >= 0:
                out.append((packet.pos, secs))
    return out


def decoded_s(mp3: bytes) -> float:
    return sum(secs for _, secs in packets(mp3))


def sent_ahead(c: AgentClient, turn_id: int) -> float:
    """How far (s) the server was ever ahead of real-time playback, as the client saw frames arrive."""
    timeline = packets(b"".join(c.payloads[turn_id]))
    t0, offset, worst = c.audio_at[turn_id][0], 0, 0.0
    for at, payload in zip(c.audio_at[turn_id], c.payloads[turn_id], strict=True):
        offset += len(payload)
        got = sum(secs for pos, secs in timeline if pos < offset)  # audio received up to this frame
        worst = max(worst, got - (at - t0))
    return worst


async def test_mp3_reply_is_paced_whole_frames_and_ends_after_playback(vani_cluster, provider_emulator):
    s = sid("mp3")
    await script(provider_emulator, s, transcripts=["tell me a few things"], reply=REPLY[:120])
    c = await AgentClient.connect(url(vani_cluster, s))
    await c.send_audio(utterance(0.6, 0.5, seed=1))
    start = await c.wait_type("audio.start", 20.0, turn_id=1)
    assert start["format"]["encoding"] == "mp3"
    m = await c.wait_type("assistant.message", 60.0, turn_id=1)
    done_at = time.monotonic()
    assert m["outcome"] == "done" and m["text"] == m["full_text"] == REPLY[:120]
    audio = b"".join(c.payloads[1])
    played = decoded_s(audio)
    assert played > 3.0, played
    # Every frame is whole MP3 frames: it starts on a frame header (or an ID3 tag) and decodes alone.
    for payload in c.payloads[1]:
        assert payload[:3] == b"ID3" or mp3_frame(payload[:4]) is not None, payload[:4]
    end = c.of_type("audio.end", turn_id=1)[0]
    assert abs(end["duration_s"] - played) < 0.1, (end, played)
    # Paced: never more than the playout lead (+ one frame) ahead of real time ...
    assert sent_ahead(c, 1) <= LEAD_S + FRAME_S + SLACK_S, sent_ahead(c, 1)
    # ... and the turn ends when the user has heard it, not when the bytes are out.
    assert done_at - c.audio_at[1][0] >= played - SLACK_S, (done_at - c.audio_at[1][0], played)
    assert c.violations == []
    await c.close()


async def test_mp3_barge_in_cuts_playback_at_the_words_heard(vani_cluster, provider_emulator):
    s = sid("mp3bi")
    await script(provider_emulator, s, transcripts=["tell me everything", "no wait stop please"], reply=REPLY)
    c = await AgentClient.connect(url(vani_cluster, s))
    await c.send_audio(utterance(0.6, 0.5, seed=2))
    await c.wait_type("audio.start", 20.0, turn_id=1)
    while not c.audio_at.get(1):  # noqa: ASYNC110 - the reader task fills it
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.5)  # the user hears a few words, then talks over the reply
    await c.send_audio(speech(0.9, seed=3) + silence(0.5))
    await c.wait_type("audio.clear", 20.0, turn_id=1)
    cleared_at = time.monotonic()
    m = await c.wait_type("assistant.message", 20.0, turn_id=1)
    assert m["interrupted"] and m["outcome"] == "interrupted"
    heard = m["text"]
    assert heard and heard != REPLY and REPLY.startswith(heard.rstrip(".,")), heard
    # Playback was cut: the client got about as much audio as had time to play, not the whole reply.
    got = decoded_s(b"".join(c.payloads[1]))
    assert got <= cleared_at - c.audio_at[1][0] + LEAD_S + FRAME_S + SLACK_S, (got, cleared_at - c.audio_at[1][0])
    await c.wait_type("audio.start", 20.0, turn_id=2)
    await asyncio.sleep(0.3)  # a straggler frame of turn 1 would be recorded as a violation
    assert c.violations == []
    await c.close()


async def test_inbound_ring_bytes_setting_holds_in_agent_mode(vani_cluster):
    c = await AgentClient.connect(url(vani_cluster, sid("ring")))
    assert c.first["mode"] == "agent"
    assert c.first["limits"]["inbound_buffer_bytes"] == 98304  # the app's setting, not a hard-coded 128 KB
    await c.close()
