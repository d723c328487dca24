"""``LatencyReport`` dates the user's end of speech on the audio timeline, not by chunk arrival.

Unit tests of ``vani.actors.agent.speech_clock`` (no Ray), then one end-to-end check through the real gateway on the
provider emulator: a client streaming 256 ms chunks (the browser's size) at real time measures its own
"end of speech -> first assistant audio" and the server's ``total_latency`` must agree with it.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any

from tests.adapters.audio import speech
from tests.agent_helpers import AgentClient, script
from vani.actors.agent.speech_clock import moment_of

BPS = 32000  # 16 kHz PCM16
CHUNK_S = 0.256
CHUNK = int(CHUNK_S * BPS)  # 8192 bytes: the browser's 4096-sample chunks


def test_moment_subtracts_the_audio_after_the_point_within_its_chunk():
    # Three 256 ms chunks, each arriving at its end (a real-time microphone) on a clock starting at 100.
    clock = [(CHUNK * (k + 1), 100.0 + CHUNK_S * (k + 1)) for k in range(3)]
    # Speech ended 16 ms into the second chunk: the user was there at 100.272, not at 100.512.
    assert abs(moment_of(clock, 0.272, BPS) - 100.272) < 1e-9
    assert abs(moment_of(clock, 0.512, BPS) - 100.512) < 1e-9  # exactly at a chunk end
    assert abs(moment_of(clock, 0.0, BPS) - 100.0) < 1e-9


def test_moment_uses_the_chunk_holding_the_point_when_chunks_arrive_late():
    # The second chunk was held up 50 ms on its way: the estimate carries that delay (it is what the
    # session saw), and never more than the delay of the one chunk that holds the point.
    clock = [(CHUNK, 10.256), (2 * CHUNK, 10.562), (3 * CHUNK, 10.768)]
    assert abs(moment_of(clock, 0.3, BPS) - (10.562 - 0.212)) < 1e-9
    assert abs(moment_of(clock, 0.6, BPS) - (10.768 - 0.168)) < 1e-9


def test_moment_of_audio_not_yet_arrived_is_unknown():
    assert moment_of([], 0.1, BPS) is None
    assert moment_of([(CHUNK, 1.0)], 0.3, BPS) is None


def test_moment_with_uneven_chunks():
    clock = [(1000, 5.0), (1640, 5.02), (33640, 6.02)]  # 31.25 ms, 20 ms, 1 s
    assert abs(moment_of(clock, 0.04, BPS) - (5.02 - 0.01125)) < 1e-9  # 360 bytes after it
    assert abs(moment_of(clock, 0.5, BPS) - (6.02 - (33640 / BPS - 0.5))) < 1e-9


class Microphone:
    """A real-time microphone: chunk ``k`` (audio ``[k, k+1) * CHUNK_S``) is sent at ``t0 + (k+1) * CHUNK_S``,
    once it has been "recorded"; silence unless an utterance is planned. Stamps each send as it happens."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.audio, self.sent_at = ws, bytearray(), []

    def say(self, chunks_of_speech: int = 3, seed: int = 0) -> float:
        """Plan speech from the next unsent chunk; return where it ends (stream seconds).

        The end is a whole number of the emulator's 20 ms frames (its words end exactly there) and
        10-30 ms into a chunk, so that chunk holds ~230 ms of silence after the last word.
        """
        self.audio += bytes(max(0, (len(self.sent_at) + 1) * CHUNK - len(self.audio)))  # start after a sent chunk
        start = len(self.audio) / BPS
        last_chunk = round(start / CHUNK_S) + chunks_of_speech
        end_s = math.ceil((last_chunk * CHUNK_S + 0.01) / 0.02) * 0.02
        n = round(end_s * BPS) - len(self.audio)  # bytes of speech, even (20 ms = 640 bytes)
        self.audio += speech(n / BPS + 0.05, seed=seed)[:n]
        self.audio += bytes((last_chunk + 1) * CHUNK - len(self.audio))
        return end_s

    async def run(self) -> None:
        t0 = time.monotonic()
        k = 0
        while True:
            await asyncio.sleep(max(0.0, t0 + (k + 1) * CHUNK_S - time.monotonic()))
            pcm = bytes(self.audio[k * CHUNK : (k + 1) * CHUNK])
            pcm += bytes(CHUNK - len(pcm))
            await self.ws.send(pcm)
            self.sent_at.append(time.monotonic())
            k += 1

    def moment_of(self, audio_s: float) -> float:
        """When the user's speech was at ``audio_s``: the send of the chunk holding it, less what follows."""
        k = int(audio_s // CHUNK_S)
        return self.sent_at[k] - ((k + 1) * CHUNK_S - audio_s)


async def test_total_latency_matches_the_client_with_256ms_chunks(vani_cluster, provider_emulator):
    """The client's end of speech -> first assistant audio vs the server's ``total_latency``, per turn.

    Each turn's speech ends 10-30 ms into a 256 ms chunk: dating end of speech by that chunk's arrival
    under-reports by the ~230 ms of audio after the word end in every turn. Both sides measure spans of
    the same turn on the same clock, so the server's figure is the client's less the transit through
    the gateway (up and down), which is never negative: the server must never report more than the
    client saw, and on the turn with the least transit (a loaded 2-core box delays some) the two agree
    within 60 ms. Neither bound depends on how fast the machine is.
    """
    s = f"lat-{uuid.uuid4().hex[:10]}"
    turns = 3
    await script(provider_emulator, s, transcripts=["what time is it"] * turns)
    c = await AgentClient.connect(f"{vani_cluster.url('agent')}/v1/sessions/{s}")
    mic = Microphone(c.ws)
    running = asyncio.create_task(mic.run())
    gaps: list[float] = []
    try:
        for turn in range(1, turns + 1):
            end_s = mic.say(seed=turn)
            report = await c.wait_type("LatencyReport", 30.0, turn_id=turn)
            assert report["outcome"] == "done", report
            client_total = c.first_audio_at[turn] - mic.moment_of(end_s)
            gaps.append(client_total - report["total_latency"])
    finally:
        running.cancel()
    await c.close()
    assert all(g > -0.03 for g in gaps), gaps  # the server never reports more than the user experienced
    assert min(gaps) < 0.06, gaps  # the bug: every gap >= ~230 ms
