"""The pacing clock for compressed TTS (actors/agent/audio_duration.py), on real encoded audio.

MP3 is made by lameenc (what the provider emulator's Aura uses), Ogg/Opus by libopus through PyAV;
durations are checked against the PCM that went in and against PyAV's own decoder.
"""

from __future__ import annotations

import io
import wave

import av
import lameenc
import numpy as np
import pytest

from vani.actors.agent.audio_duration import framer_for, mp3_frame
from vani.adapters.emulator.audio import speech_pcm


def tone(seconds: float, rate: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()


def mp3(pcm: bytes, rate: int, kbps: int) -> bytes:
    enc = lameenc.Encoder()
    enc.set_bit_rate(kbps)
    enc.set_in_sample_rate(rate)
    enc.set_channels(1)
    enc.set_quality(7)
    return bytes(enc.encode(pcm) + enc.flush())


def ogg_opus(pcm: bytes, rate: int) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000, layout="mono")
        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def decoded_seconds(data: bytes, fmt: str) -> float:
    with av.open(io.BytesIO(data), format=fmt) as f:
        return sum(fr.samples / fr.sample_rate for fr in f.decode(audio=0))


def feed_in_chunks(framer, data: bytes, size: int) -> list[tuple[bytes, float]]:
    out = []
    for i in range(0, len(data), size):
        framer.feed(data[i : i + size])
        if framer.has_frames():
            out.append(framer.take())
    out.append(framer.rest())
    return [o for o in out if o[0]]


@pytest.mark.parametrize(("rate", "kbps"), [(24000, 48), (24000, 32), (44100, 128), (16000, 24), (8000, 8)])
def test_mp3_duration_matches_the_pcm_and_frames_stay_whole(rate: int, kbps: int):
    pcm = speech_pcm("Sure. You said: hello there. Anything else?", rate)
    data = mp3(pcm, rate, kbps)
    pieces = feed_in_chunks(framer_for("mp3", "none", 24000, 1, None), data, 97)  # odd chunks split frames
    assert b"".join(p for p, _ in pieces) == data  # nothing lost, nothing reordered
    total = sum(s for _, s in pieces)
    pcm_s = len(pcm) / (2 * rate)
    frame_s = (1152 if rate >= 32000 else 576) / rate
    # LAME adds its encoder delay and pads the last frame: at most a few frames more than the input.
    assert pcm_s <= total <= pcm_s + 4 * frame_s, (total, pcm_s)
    assert total == pytest.approx(decoded_seconds(data, "mp3"), abs=2 * frame_s)
    for payload, secs in pieces[:-1]:  # every piece handed out starts and ends on a frame boundary
        head = mp3_frame(payload[:4])
        assert head is not None, payload[:4]
        assert secs > 0


def test_mp3_with_id3_tag_and_junk_is_timed_by_its_frames_only():
    pcm = tone(1.0, 24000)
    data = mp3(pcm, 24000, 48)
    tag = b"ID3\x04\x00\x00\x00\x00\x01\x00" + bytes(128)  # 10-byte header, 128-byte body (syncsafe)
    framer = framer_for("mp3", "none", 24000, 1, None)
    framer.feed(tag + data)
    payload, secs = framer.rest()
    assert payload == tag + data
    assert secs == pytest.approx(decoded_seconds(data, "mp3"), abs=0.05)


def test_mp3_frame_header_fields():
    # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417 bytes, 1152 samples.
    assert mp3_frame(bytes([0xFF, 0xFB, 0x90, 0x00])) == (417, 1152, 44100)
    # MPEG-2 Layer III, 48 kbit/s, 24 kHz, padded: 72 * 48000 / 24000 + 1 = 145 bytes, 576 samples.
    assert mp3_frame(bytes([0xFF, 0xF3, 0x66, 0x00])) == (145, 576, 24000)
    assert mp3_frame(b"RIFF") is None and mp3_frame(bytes([0xFF, 0xFB, 0xF0, 0])) is None  # bad bit rate


def test_ogg_opus_duration_from_granules_and_pages_stay_whole():
    pcm = tone(2.0, 48000)
    data = ogg_opus(pcm, 48000)
    pieces = feed_in_chunks(framer_for("opus", "ogg", 48000, 1, None), data, 333)
    assert b"".join(p for p, _ in pieces) == data
    for payload, _ in pieces:
        assert payload[:4] == b"OggS"
    total = sum(s for _, s in pieces)
    assert total == pytest.approx(2.0, abs=0.03)
    assert total == pytest.approx(decoded_seconds(data, "ogg"), abs=0.03)


def test_ogg_opus_streams_back_to_back_restart_the_count():
    """Each TTS request is its own Ogg stream (granules from 0 again): durations add up."""
    first, second = ogg_opus(tone(1.0, 48000), 48000), ogg_opus(tone(0.5, 48000), 48000)
    framer = framer_for("opus", "ogg", 48000, 1, None)
    framer.feed(first)
    framer.feed(second)
    _, secs = framer.rest()
    assert secs == pytest.approx(1.5, abs=0.05)


def test_pcm_raw_and_wav_keep_whole_samples():
    pcm = tone(0.5, 24000)
    framer = framer_for("linear16", "none", 24000, 1, None)
    framer.feed(pcm[:1001])  # an odd byte waits for its partner
    data, secs = framer.take()
    assert len(data) == 1000 and secs == pytest.approx(1000 / 48000)
    framer.feed(pcm[1001:])
    data, secs = framer.rest()
    assert len(data) == len(pcm) - 1000 and secs == pytest.approx(0.5 - 1000 / 48000)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(tone(0.75, 16000))
    wav = buf.getvalue()
    framer = framer_for("linear16", "wav", 16000, 1, None)
    for i in range(0, len(wav), 7):
        framer.feed(wav[i : i + 7])
    data, secs = framer.rest()
    assert data == wav and secs == pytest.approx(0.75)
    mulaw = framer_for("mulaw", "none", 8000, 1, None)
    mulaw.feed(bytes(4000))
    assert mulaw.rest()[1] == pytest.approx(0.5)


def test_unparsed_formats_use_the_bit_rate_or_are_not_paced():
    aac = framer_for("aac", "none", 24000, 1, 48000)
    aac.feed(bytes(3000))
    assert aac.rest()[1] == pytest.approx(0.5)
    unknown = framer_for("flac", "none", 24000, 1, None)
    unknown.feed(bytes(3000))
    assert unknown.rest() == (bytes(3000), 0.0)


def take_all(framer, max_s: float) -> list[tuple[bytes, float]]:
    """Take until empty; a piece longer than ``max_s`` must be one indivisible frame (e.g. a long Ogg page)."""
    out = []
    while framer.has_frames():
        before = len(framer.frames)
        payload, secs = framer.take(max_s)
        assert secs <= max_s + 1e-6 or before - len(framer.frames) == 1, (secs, before, len(framer.frames))
        out.append((payload, secs))
    return out


@pytest.mark.parametrize("fmt", ["mp3", "opus", "linear16", "wav"])
def test_take_cuts_one_big_provider_piece_into_frames_of_at_most_max_s(fmt: str):
    """A provider may send seconds of audio in one HTTP chunk; the reply must still pace it frame by frame
    (reply._AudioOut sends take(audio_frame_ms) per paced step)."""
    rate = 48000 if fmt == "opus" else 24000
    pcm = speech_pcm("Sure. You said: hello there. Anything else?", rate)
    if fmt == "mp3":
        data, framer = mp3(pcm, rate, 48), framer_for("mp3", "none", rate, 1, None)
    elif fmt == "opus":
        data, framer = ogg_opus(pcm, rate), framer_for("opus", "ogg", rate, 1, None)
    elif fmt == "linear16":
        data, framer = pcm, framer_for("linear16", "none", rate, 1, None)
    else:
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate), w.writeframes(pcm)
        data, framer = buf.getvalue(), framer_for("linear16", "wav", rate, 1, None)
    framer.feed(data)  # the whole reply in one piece
    total = framer.ready_s()
    pieces = take_all(framer, 0.1)
    pieces.append(framer.rest())
    assert b"".join(p for p, _ in pieces) == data  # nothing lost, nothing reordered
    assert sum(s for _, s in pieces) == pytest.approx(total, abs=1e-6)
    assert len(pieces) >= 4
    for payload, secs in pieces[:-1]:
        if fmt == "mp3":
            assert mp3_frame(payload[:4]) is not None  # every piece starts on a frame boundary
        if fmt == "linear16":
            assert len(payload) % 2 == 0 and secs == pytest.approx(len(payload) / (2 * rate))
