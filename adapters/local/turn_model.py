"""End-of-turn probability: Smart Turn v3.2 (ONNX, BSD-2) shipped inside the ``pipecat-ai`` wheel.

Input is the Whisper log-mel of the last 8 s of the user's turn; output is P(turn complete). The
feature code is pipecat's numpy-only ``_whisper_features.py``, loaded by file path (pinned version)
so that importing it does not run pipecat's package ``__init__`` (logging setup, heavy imports).
One ONNX session per process, shared by all streams (``InferenceSession.run`` is thread-safe).
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType
from typing import Any

import numpy as np

from vani.adapters.base import ErrorKind, ProviderError
from vani.adapters.local.model_cache import get_model

WINDOW = 8 * 16000  # the model sees the last 8 s


def _pipecat_dir() -> str:
    spec = importlib.util.find_spec("pipecat")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError("local-stt", ErrorKind.CONFIG, 'Smart Turn model not found: pip install -e ".[local]"')
    return os.path.join(next(iter(spec.submodule_search_locations)), "audio", "turn", "smart_turn")


def model_path(settings: Any = None) -> str:
    return getattr(settings, "local_smart_turn_model", None) or os.path.join(
        _pipecat_dir(), "data", "smart-turn-v3.2-cpu.onnx"
    )


def _load_features() -> ModuleType:
    path = os.path.join(_pipecat_dir(), "_whisper_features.py")
    spec = importlib.util.spec_from_file_location("vani_smart_turn_features", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class TurnModel:
    """Shared Smart Turn session + feature extractor."""

    def __init__(self, path: str) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # parallelism comes from the heavy lane, not from ORT
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self._features = _load_features()

    def probability(self, audio: np.ndarray) -> float:
        """P(end of turn) for ``audio`` (16 kHz float32, the turn so far incl. trailing silence)."""
        x = np.asarray(audio, dtype=np.float32)[-WINDOW:]
        x = np.pad(x, (WINDOW - len(x), 0))
        feats = self._features.compute_whisper_log_mel_features(x, do_normalize=True)[None]
        return float(self._session.run(None, {"input_features": feats.astype(np.float32)})[0].reshape(-1)[0])


def shared(settings: Any = None) -> TurnModel:
    path = model_path(settings)
    return get_model(f"smart-turn:{path}", lambda: TurnModel(path))
