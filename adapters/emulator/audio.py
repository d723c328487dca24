"""Real audio for the emulators: frame energy for speech detection, and speech-like TTS output.

The TTS signal is deterministic for a given text (a voiced buzz per word with a pitch contour, gaps
between words), so tests can check durations and formats, and energy-based STT can hear it.
"""

from __future__ import annotations

import functools
import io
import struct
import wave

import numpy as np

SPEECH_DBFS = -40.0  # frame RMS above this counts as speech
CHAR_S = 0.065  # ~15 characters per second, a normal speaking rate
GAP_S = 0.07


SPEECH_RMS = 32768.0 * 10 ** (SPEECH_DBFS / 20)  # the same threshold as linear RMS


def frame_dbfs(pcm: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of each row of an int16 frame matrix."""
    x = pcm.astype(np.float32)
    rms = np.sqrt(np.mean(x * x, axis=1) + 1e-9)
    return 20.0 * np.log10(rms / 32768.0 + 1e-12)


def speech_frames(data: bytes, frame_bytes: int) -> list[bool]:
    """Which ``frame_bytes`` frames of PCM16 ``data`` are louder than the speech threshold.

    This runs for every 80 ms chunk of every emulated session, so it avoids numpy's per-call overhead
    when the C ``audioop`` module is available (Python <= 3.12).
    """
    if _audioop is not None:
        return [_audioop.rms(data[i : i + frame_bytes], 2) > SPEECH_RMS for i in range(0, len(data), frame_bytes)]
    levels = frame_dbfs(np.frombuffer(data, dtype="<i2").reshape(-1, frame_bytes // 2))
    return (levels > SPEECH_DBFS).tolist()


try:  # deprecated since 3.11, removed in 3.13: numpy fallback above
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop as _audioop
except ImportError:  # pragma: no cover
    _audioop = None


@functools.lru_cache(maxsize=256)
def speech_pcm(text: str, sample_rate: int) -> bytes:
    """Speech-like int16 mono PCM for ``text`` (cached: the same text is asked for often)."""
    words = text.split() or ["."]
    parts: list[np.ndarray] = []
    gap = np.zeros(int(GAP_S * sample_rate), dtype=np.float32)
    for i, w in enumerate(words):
        dur = max(0.12, CHAR_S * len(w))
        t = np.arange(int(dur * sample_rate), dtype=np.float32) / sample_rate
        f0 = 140.0 + 30.0 * np.sin(2 * np.pi * (0.7 + 0.1 * (i % 5)) * t)  # intonation
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        sig = sum(np.sin(k * phase) / k for k in (1, 2, 3, 4))
        env = np.sin(np.pi * np.clip(t / dur, 0, 1)) ** 0.5
        parts.append((0.25 * sig * env).astype(np.float32))
        parts.append(gap)
    audio = np.concatenate(parts)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def to_mulaw(pcm: bytes) -> bytes:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    y = np.sign(x) * np.log1p(255 * np.abs(x)) / np.log1p(255)
    return ((~((y * 127.5 + 127.5).astype(np.int32).clip(0, 255).astype(np.uint8))) & 0xFF).tobytes()


def to_alaw(pcm: bytes) -> bytes:
    x = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0)
    sign = np.frombuffer(pcm, dtype="<i2") >= 0
    a = 87.6
    y = np.where(x < 1 / a, a * x / (1 + np.log(a)), (1 + np.log(np.maximum(a * x, 1e-9))) / (1 + np.log(a)))
    code = (y * 127).astype(np.int32).clip(0, 127) | np.where(sign, 0x80, 0)
    return (code.astype(np.uint8) ^ 0x55).tobytes()


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


@functools.lru_cache(maxsize=256)
def mp3_bytes(pcm: bytes, sample_rate: int, bit_rate: int) -> bytes:
    import lameenc

    enc = lameenc.Encoder()
    enc.set_bit_rate(max(8, bit_rate // 1000))
    enc.set_in_sample_rate(sample_rate)
    enc.set_channels(1)
    enc.set_quality(7)  # fast: the emulator encodes for many sessions at once
    return bytes(enc.encode(pcm) + enc.flush())


CONTENT_TYPES = {
    ("linear16", "none"): "audio/l16",
    ("linear16", "wav"): "audio/wav",
    ("mulaw", "none"): "audio/basic",
    ("mulaw", "wav"): "audio/wav",
    ("alaw", "none"): "audio/x-alaw-basic",
    ("alaw", "wav"): "audio/wav",
    ("mp3", "none"): "audio/mpeg",
}


def encode(pcm: bytes, sample_rate: int, encoding: str, container: str, bit_rate: int | None) -> bytes:
    """Encode PCM as asked. Raises ``ValueError`` for what the emulator does not produce."""
    if (encoding, container) not in CONTENT_TYPES:
        raise ValueError(f"emulator cannot produce encoding={encoding} container={container}")
    if encoding == "mp3":
        return mp3_bytes(pcm, sample_rate, bit_rate or 48000)
    body = pcm if encoding == "linear16" else to_mulaw(pcm) if encoding == "mulaw" else to_alaw(pcm)
    if container == "wav":
        if encoding == "linear16":
            return wav_bytes(pcm, sample_rate)
        fmt = 7 if encoding == "mulaw" else 6
        hdr = struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            b"RIFF",
            36 + len(body),
            b"WAVE",
            b"fmt ",
            16,
            fmt,
            1,
            sample_rate,
            sample_rate,
            1,
            8,
            b"data",
            len(body),
        )
        return hdr + body
    return body
