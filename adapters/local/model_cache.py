"""Process-wide, thread-safe, lazy cache of loaded models (one copy per process, shared by sessions).

Only immutable-after-load models live here (ONNX sessions, Whisper, Piper voices). Anything with
per-session state (VAD recurrent state, a decoder mid-utterance) lives in the stream object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_models: dict[str, Any] = {}
_key_locks: dict[str, threading.Lock] = {}


def get_model(key: str, loader: Callable[[], Any]) -> Any:
    """Return the model cached under ``key``, loading it once with ``loader`` if absent.

    Loads of different keys run in parallel; concurrent loads of one key wait for the first.
    """
    model = _models.get(key)
    if model is not None:
        return model
    with _lock:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        model = _models.get(key)
        if model is None:
            model = loader()
            _models[key] = model
    return model
