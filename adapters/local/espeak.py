"""espeak-ng synthesis (GPL-3.0; extra ``voice-gpl``): the library bundled in ``espeakng-loader``
through ctypes, or the Debian ``espeak-ng`` command as a second choice.

libespeak-ng keeps global state, so calls are serialised by a process lock; a sentence takes a few
milliseconds, so the lock is never held long.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
from typing import Any

import numpy as np

from vani.adapters.base import ErrorKind, ProviderError

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: espeak_Synth returns when the text is done
_CHARS_UTF8 = 1
_RATE = 1  # espeakRATE parameter


class EspeakLib:
    """ctypes binding to one libespeak-ng; ``synthesize`` returns int16 samples at ``sample_rate``."""

    def __init__(self, lib_path: str, data_dir: str, voice: str = "en-us", rate_wpm: int = 170) -> None:
        self._lib = ctypes.CDLL(lib_path)
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._cb = _CALLBACK(self._on_audio)  # keep a reference: espeak calls it from C
        # espeak_Initialize wants the directory that *contains* espeak-ng-data.
        parent = os.path.dirname(data_dir.rstrip("/"))
        self._lib.espeak_Initialize.restype = ctypes.c_int
        rate = self._lib.espeak_Initialize(_SYNCHRONOUS, 0, parent.encode(), 0)
        if rate <= 0:
            raise ProviderError("espeak", ErrorKind.CONFIG, f"espeak_Initialize failed ({rate})")
        self.sample_rate = int(rate)
        self._lib.espeak_SetSynthCallback(self._cb)
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ProviderError("espeak", ErrorKind.CONFIG, f"espeak-ng voice {voice!r} not found")
        self._lib.espeak_SetParameter(_RATE, int(rate_wpm), 0)

    def _on_audio(self, wav: Any, n: int, _events: Any) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def synthesize(self, text: str) -> np.ndarray:
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            self._chunks = []
            self._lib.espeak_Synth(data, len(data), 0, 1, 0, _CHARS_UTF8, None, None)
            out = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            self._chunks = []
        return out.astype(np.int16)


class EspeakCli:
    """Fallback: the ``espeak-ng`` program (Debian package), raw PCM on stdout."""

    sample_rate = 22050

    def __init__(self, exe: str, voice: str = "en-us", rate_wpm: int = 170) -> None:
        self._cmd = [exe, "-v", voice, "-s", str(rate_wpm), "--stdout"]

    def synthesize(self, text: str) -> np.ndarray:
        wav = subprocess.run([*self._cmd, text], capture_output=True, check=True, timeout=30).stdout
        return np.frombuffer(wav[44:], dtype="<i2").copy()  # skip the 44-byte WAV header


def load(settings: Any = None) -> EspeakLib | EspeakCli:
    """The best espeak-ng available: bundled library, else the system program."""
    voice = str(getattr(settings, "local_espeak_voice", "en-us") or "en-us")
    rate = int(getattr(settings, "local_espeak_rate_wpm", 170) or 170)
    try:
        import espeakng_loader

        return EspeakLib(espeakng_loader.get_library_path(), espeakng_loader.get_data_path(), voice, rate)
    except ImportError:
        pass
    exe = shutil.which("espeak-ng")
    if exe:
        return EspeakCli(exe, voice, rate)
    raise ProviderError(
        "espeak", ErrorKind.CONFIG, 'espeak-ng not found: pip install -e ".[voice-gpl]" or apt-get install espeak-ng'
    )
