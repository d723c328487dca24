"""Live partial hypotheses: pocketsphinx 5 (BSD-2) with the en-us model inside its wheel.

Partials are rough (WER ~0.4) and only feed ``Update`` events while the user speaks; the final
text comes from Whisper. A decoder holds ~90 MB and takes ~0.6 s to build, so decoders are pooled
per process and leased by a stream for the duration of one turn (decoder state is per utterance,
so a lease never carries anything across sessions: ``start_utt`` resets it). When all decoders are
leased, that turn's Updates carry no text rather than making the turn wait.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_idle: list[Any] = []
_created = 0


def _max_decoders(settings: Any) -> int:
    # 0 disables live partials (Updates then carry no text): pocketsphinx costs ~0.5 core per
    # speaking session, the biggest share of the local STT's CPU.
    value = getattr(settings, "local_partial_decoders", None)
    return 4 if value is None else int(value)


def _new_decoder(settings: Any) -> Any:
    from pocketsphinx import Decoder

    kwargs: dict[str, Any] = {"samprate": 16000, "loglevel": "ERROR"}
    model_dir = getattr(settings, "local_pocketsphinx_model", None)
    if model_dir:  # a directory laid out like pocketsphinx/model/en-us/
        import os

        kwargs.update(
            hmm=os.path.join(model_dir, "en-us"),
            lm=os.path.join(model_dir, "en-us.lm.bin"),
            dict=os.path.join(model_dir, "cmudict-en-us.dict"),
        )
    return Decoder(**kwargs)


class PartialDecoder:
    """One leased decoder for one turn. Methods run on the ``partials`` lane, never concurrently."""

    def __init__(self, decoder: Any) -> None:
        self._dec = decoder
        self._dec.start_utt()
        self._open = True

    def feed(self, pcm16: bytes) -> str:
        self._dec.process_raw(pcm16, False, False)
        hyp = self._dec.hyp()
        return hyp.hypstr if hyp is not None else ""

    def release(self) -> None:
        if self._open:
            self._open = False
            try:
                self._dec.end_utt()
            finally:
                with _lock:
                    _idle.append(self._dec)


def lease(settings: Any = None) -> PartialDecoder | None:
    """A decoder for one turn, building one if under the cap; ``None`` if all are busy."""
    global _created
    with _lock:
        if _idle:
            dec = _idle.pop()
        elif _created < _max_decoders(settings):
            _created += 1
            dec = None
        else:
            return None
    if dec is None:
        try:
            dec = _new_decoder(settings)
        except BaseException:
            with _lock:
                _created -= 1
            raise
    return PartialDecoder(dec)


def prewarm(settings: Any = None, count: int = 1) -> None:
    """Build ``count`` decoders ahead of the first turn (so turn 1 gets partials promptly)."""
    leases = [lease(settings) for _ in range(count)]
    for d in leases:
        if d is not None:
            d.release()
