"""Band-limited resampling in numpy (windowed sinc), streaming or one-shot.

Used for TTS output (Piper / espeak-ng produce 22050 Hz; sessions want 16/24/48 kHz) and for STT
input at rates other than 16 kHz. Pure numpy so the core needs no LGPL/GPL resampler.
"""

from __future__ import annotations

import numpy as np

_HALF_TAPS = 16  # 32-tap kernel: ~-60 dB sidelobes with a Kaiser window, cheap enough per chunk
_BLOCK = 8192  # outputs computed per vectorised block (bounds temporary memory)
_PHASES = 512  # fractional-delay resolution of the polyphase table (error < -70 dB)


class StreamResampler:
    """Resample a stream of float32 mono chunks from ``src_rate`` to ``dst_rate``.

    Keeps the input tail between calls so chunk boundaries leave no clicks. ``flush()`` drains the
    last samples (pads with zeros). Not thread-safe: one per stream.
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        self.src_rate = int(src_rate)
        self.dst_rate = int(dst_rate)
        self._step = self.src_rate / self.dst_rate
        self._cutoff = min(1.0, self.dst_rate / self.src_rate)  # anti-alias when downsampling
        # Left context of zeros so the first output is centred on input sample 0.
        self._buf = np.zeros(_HALF_TAPS, dtype=np.float64)
        self._pos = float(_HALF_TAPS)  # position of the next output, in samples of _buf
        self._taps = np.arange(-_HALF_TAPS + 1, _HALF_TAPS + 1)
        # Polyphase table: the kernel precomputed at _PHASES fractional offsets, so each output
        # is a gather and a dot product instead of evaluating sinc and the window per tap.
        frac = np.arange(_PHASES + 1)[:, None] / _PHASES
        d = self._taps[None, :] - frac
        self._table = self._cutoff * np.sinc(self._cutoff * d) * _window(d)

    def process(self, x: np.ndarray) -> np.ndarray:
        if self.src_rate == self.dst_rate:
            return np.asarray(x, dtype=np.float32)
        self._buf = np.concatenate([self._buf, np.asarray(x, dtype=np.float64)])
        last = len(self._buf) - 1 - _HALF_TAPS  # an output needs _HALF_TAPS samples to its right
        n_out = int(np.floor((last - self._pos) / self._step)) + 1 if last >= self._pos else 0
        out = self._compute(n_out)
        self._pos += n_out * self._step
        drop = max(0, int(np.floor(self._pos)) - _HALF_TAPS)
        self._buf = self._buf[drop:]
        self._pos -= drop
        return out

    def flush(self) -> np.ndarray:
        if self.src_rate == self.dst_rate:
            return np.zeros(0, dtype=np.float32)
        return self.process(np.zeros(_HALF_TAPS + int(np.ceil(self._step)), dtype=np.float32))

    def _compute(self, n_out: int) -> np.ndarray:
        out = np.empty(n_out, dtype=np.float32)
        for b in range(0, n_out, _BLOCK):
            t = self._pos + np.arange(b, min(n_out, b + _BLOCK)) * self._step
            base = np.floor(t).astype(np.int64)
            phase = np.rint((t - base) * _PHASES).astype(np.int64)
            idx = base[:, None] + self._taps[None, :]
            out[b : b + len(t)] = np.einsum("ij,ij->i", self._buf[idx], self._table[phase])
        return out


def _window(d: np.ndarray) -> np.ndarray:
    # Blackman window evaluated at fractional offsets (~-58 dB sidelobes); cosines are cheap,
    # unlike np.i0 for a Kaiser window, which made the first TTS chunk noticeably late.
    r = np.clip(d / (_HALF_TAPS + 1), -1.0, 1.0)
    return 0.42 + 0.5 * np.cos(np.pi * r) + 0.08 * np.cos(2 * np.pi * r)


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """One-shot resample of a whole float32 buffer; output length ~ len(x) * dst / src."""
    if src_rate == dst_rate:
        return np.asarray(x, dtype=np.float32)
    rs = StreamResampler(src_rate, dst_rate)
    out = np.concatenate([rs.process(x), rs.flush()])
    expected = round(len(x) * dst_rate / src_rate)
    return out[:expected]


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
