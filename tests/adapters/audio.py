"""Speech-like test audio: modulated harmonic tones (syllables) with short gaps, and silences."""

from __future__ import annotations

import numpy as np

RATE = 16000
CHUNK = 2560  # 80 ms of 16 kHz PCM16, as Flux recommends


def speech(seconds: float, seed: int = 0, rate: int = RATE) -> bytes:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 120 + 40 * rng.random()
    sig = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3))
    syllable = 0.55 + 0.45 * np.abs(np.sin(2 * np.pi * 3.0 * t))  # ~6 syllables/s, never silent
    noise = 0.05 * rng.standard_normal(n)
    x = 0.3 * (sig * syllable + noise)
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def silence(seconds: float, rate: int = RATE) -> bytes:
    return bytes(2 * int(seconds * rate))


def turns(*spans: tuple[float, float]) -> bytes:
    """``(speech_s, silence_s)`` pairs, starting with 0.3 s of silence."""
    out = [silence(0.3)]
    for i, (sp, si) in enumerate(spans):
        out += [speech(sp, seed=i), silence(si)]
    return b"".join(out)


def chunks(pcm: bytes, size: int = CHUNK) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]
