"""Local STT on real speech: transcripts by WER, Flux event order and timing, isolation, fairness."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.local.conftest import TRANSCRIPTS, read_wav, run_stream, silence
from tests.support.flux_rules import check_flux_order
from tests.support.speech import speech_end_s
from tests.support.wer import wer, words
from vani.adapters.base import SttOptions, TurnEventType
from vani.adapters.local import inference_pool

E = TurnEventType
# Measured WER on these files: Whisper tiny.en ~0.07. Thresholds leave a wide margin for CPU
# variation, not for regressions of the pipeline (a lost or merged turn blows far past them).
TURN_WER_MAX = 0.25
# Utterances Smart Turn rates as complete (p > 0.9) and the generated booking request.
CONFIDENT = ["librivox_0870.wav", "librivox_0920.wav", "booking_espeak.wav"]


def finals(events):
    return [e for e in events if e.event is E.END_OF_TURN]


async def test_turns_transcripts_and_flux_order(local_stt):
    pcm = silence(0.5)
    spans = []
    for name in CONFIDENT:
        start = len(pcm) / 32000
        speech = read_wav(name)
        pcm += speech
        # Where the speech ends, not the file: booking_espeak.wav ends with 0.35 s of silence, and a turn
        # may end inside it.
        spans.append((start, start + speech_end_s(speech)))
        pcm += silence(3.0)
    # At 4x real time: the live partials (a worker process, beside the turn logic) keep up, as they do live.
    events = await run_stream(local_stt, pcm, SttOptions(), pace=4.0)

    assert check_flux_order(events, max_update_gap_s=0.3) == []
    ends = finals(events)
    assert len(ends) == len(CONFIDENT), [(e.event.value, e.transcript) for e in events if e.event is not E.UPDATE]
    for end, name, (s, t) in zip(ends, CONFIDENT, spans, strict=True):
        assert wer(TRANSCRIPTS[name], end.transcript) <= TURN_WER_MAX, (name, end.transcript)
        assert end.trigger == "model"
        # Turn boundaries on the audio clock: starts near the speech, ends after it within the
        # ramp (Smart Turn + at most silence_ramp_ms of silence).
        assert s - 0.3 <= end.audio_window_start <= s + 0.6
        assert t <= end.audio_window_end <= t + 2.5
    starts = [e for e in events if e.event is E.START_OF_TURN]
    assert [e.turn_index for e in starts] == [0, 1, 2]
    # Live partials: Updates during each turn, and some carry pocketsphinx text.
    updates = [e for e in events if e.event is E.UPDATE]
    assert len(updates) >= 3 * 10
    assert any(u.transcript for u in updates)


async def test_eager_mode_resume_and_end(local_stt):
    # A mid-paragraph sentence (Smart Turn says "not done"), a short pause, then more speech:
    # eager fires on the silence ramp, TurnResumed when speech comes back, then one EndOfTurn.
    pcm = silence(0.3) + read_wav("librivox_0880.wav") + silence(1.3) + read_wav("librivox_0930.wav") + silence(3.5)
    opts = SttOptions(eager_eot_threshold=0.3, eot_threshold=0.85)
    events = await run_stream(local_stt, pcm, opts)
    assert check_flux_order(events, max_update_gap_s=0.3) == []
    kinds = [e.event for e in events if e.event is not E.UPDATE]
    assert kinds[0] is E.START_OF_TURN and kinds[-1] is E.END_OF_TURN
    assert E.EAGER_END_OF_TURN in kinds and E.TURN_RESUMED in kinds
    assert kinds.count(E.END_OF_TURN) == 1
    eager = [e for e in events if e.event is E.EAGER_END_OF_TURN]
    assert all(e.transcript for e in eager)
    end = finals(events)[0]
    assert end.transcript == eager[-1].transcript
    ref = TRANSCRIPTS["librivox_0880.wav"] + " " + TRANSCRIPTS["librivox_0930.wav"]
    assert wer(ref, end.transcript) <= 0.35, end.transcript


async def test_timeout_and_force_end(local_stt):
    # Smart Turn rates 0880 as unfinished (p~0.06), so with a slow ramp only the timeout ends it.
    pcm = silence(0.3) + read_wav("librivox_0880.wav") + silence(2.0)
    opts = SttOptions(eot_timeout_ms=1000)
    stt = type(local_stt)(type("S", (), {"local_turn_silence_ramp_ms": 60000})())
    events = await run_stream(stt, pcm, opts)
    assert check_flux_order(events) == []
    (end,) = finals(events)
    assert end.trigger == "timeout"
    # 1.0 s of silence after the last speech frame; the recording itself ends with ~0.1-0.3 s of
    # room tone, so measured from the end of the file the gap is a little shorter.
    silence_s = end.audio_window_end - (0.3 + 2.99)
    assert 0.6 <= silence_s <= 1.4, silence_s

    async def force(stream, _events):
        await stream.force_end_turn()

    # Speech still going when the audio stops: ForceEndTurn ends it with trigger manual.
    cut = silence(0.3) + read_wav("librivox_0870.wav")[: 32000 * 4]
    events = await run_stream(local_stt, cut, SttOptions(), before_close=force)
    assert check_flux_order(events) == []
    (end,) = finals(events)
    assert end.trigger == "manual" and end.transcript


async def test_close_sends_no_end_of_turn(local_stt):
    events = await run_stream(local_stt, silence(0.3) + read_wav("librivox_0870.wav")[: 32000 * 3], SttOptions())
    assert check_flux_order(events) == []
    assert events and events[0].event is E.START_OF_TURN
    assert not finals(events) and events[-1].event is E.UPDATE


async def test_sessions_are_isolated(local_stt):
    a = silence(0.3) + read_wav("librivox_0920.wav") + silence(3.0)
    b = silence(0.3) + read_wav("booking_espeak.wav") + silence(3.0)
    ev_a, ev_b = await asyncio.gather(
        run_stream(local_stt, a, SttOptions()), run_stream(local_stt, b, SttOptions(sample_rate=16000))
    )
    assert wer(TRANSCRIPTS["librivox_0920.wav"], finals(ev_a)[0].transcript) <= TURN_WER_MAX
    assert wer(TRANSCRIPTS["booking_espeak.wav"], finals(ev_b)[0].transcript) <= TURN_WER_MAX
    assert "table" not in words(finals(ev_a)[0].transcript)


async def test_other_rates_are_resampled(local_stt):
    from vani.adapters.local.resample import float_to_pcm16, pcm16_to_float, resample

    pcm8k = float_to_pcm16(resample(pcm16_to_float(read_wav("booking_espeak.wav")), 16000, 8000))
    pcm = bytes(8000) + pcm8k + bytes(16000 * 3)
    events = await run_stream(local_stt, pcm, SttOptions(sample_rate=8000), chunk=1280)
    (end,) = finals(events)
    assert wer(TRANSCRIPTS["booking_espeak.wav"], end.transcript) <= TURN_WER_MAX, end.transcript


async def test_busy_heavy_lane_does_not_stall_other_sessions(local_stt):
    """Block every heavy worker (as busy sessions running Whisper would): another session must
    still get StartOfTurn and Updates, which need only the vad and partials lanes."""
    release = threading.Event()
    blockers = [
        asyncio.ensure_future(inference_pool.run("heavy", release.wait, 60))
        for _ in range(inference_pool.sizes()["heavy"])
    ]
    stream = await local_stt.open("other", SttOptions())
    try:
        pcm = silence(0.3) + read_wav("librivox_0870.wav")
        for i in range(0, len(pcm), 2560):
            await stream.send_audio(pcm[i : i + 2560])
        seen = []

        async def collect():
            async for ev in stream.events():
                seen.append(ev)
                if sum(e.event is E.UPDATE for e in seen) >= 5:
                    return

        await asyncio.wait_for(collect(), 60)
        assert not release.is_set() and not any(b.done() for b in blockers)
        assert seen[0].event is E.START_OF_TURN
    finally:
        release.set()
        await asyncio.gather(*blockers)
        await stream.close()


@pytest.mark.parametrize("encoding", ["mulaw"])
async def test_unsupported_encoding(local_stt, encoding):
    from vani.adapters.base import ProviderError

    with pytest.raises(ProviderError):
        await local_stt.open("x", SttOptions(encoding=encoding))
