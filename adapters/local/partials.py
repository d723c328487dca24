"""Live partial hypotheses: pocketsphinx 5 (BSD-2) with the en-us model inside its wheel.

Partials are rough (WER ~0.3) and only feed ``Update`` events while the user speaks; the final
text comes from Whisper. Each decoder runs in a worker process of its own (``partials_worker``):
pocketsphinx holds the GIL while it decodes, which in the host's process would stall the event loop of
every session there. A decoder holds ~90 MB and takes ~0.6 s to build, so workers are pooled per
process and leased by a stream for the duration of one turn (decoder state is per utterance, so a lease
never carries anything across sessions: ``start_utt`` resets it). When all decoders are leased, that
turn's Updates carry no text rather than making the turn wait; a worker that dies only costs its turn's
partials.

The search is pocketsphinx's documented fast setting (no second pass, narrower beams, at most 3000 HMMs
per frame): measured on the six test recordings, 0.125 s of CPU per second of audio instead of 0.33, at
WER 0.30 instead of 0.29.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import subprocess
import sys
import threading
from typing import Any

from vani.adapters.local.partials_worker import HEADER, LENGTH

log = logging.getLogger(__name__)

FAST_SEARCH = {"fwdflat": False, "bestpath": False, "maxhmmpf": 3000, "beam": 1e-40, "wbeam": 1e-30, "pbeam": 1e-40}

_lock = threading.Lock()
_idle: list[Worker] = []
_created = 0


def _max_decoders(settings: Any) -> int:
    # 0 disables live partials (Updates then carry no text).
    value = getattr(settings, "local_partial_decoders", None)
    return 4 if value is None else int(value)


def _decoder_kwargs(settings: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"samprate": 16000, "loglevel": "ERROR", **FAST_SEARCH}
    model_dir = getattr(settings, "local_pocketsphinx_model", None)
    if model_dir:  # a directory laid out like pocketsphinx/model/en-us/
        kwargs.update(
            hmm=os.path.join(model_dir, "en-us"),
            lm=os.path.join(model_dir, "en-us.lm.bin"),
            dict=os.path.join(model_dir, "cmudict-en-us.dict"),
        )
    return kwargs


class Worker:
    """A decoder process. Its methods block on the pipe (GIL released); one caller at a time."""

    def __init__(self, decoder_kwargs: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vani.adapters.local.partials_worker", json.dumps(decoder_kwargs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self._read(LENGTH.size)  # the worker says ready once its decoder is built

    def _read(self, n: int) -> bytes:
        assert self.proc.stdout is not None
        buf = bytearray()
        while len(buf) < n:
            chunk = self.proc.stdout.read(n - len(buf))
            if not chunk:
                raise EOFError("partials worker exited")
            buf += chunk
        return bytes(buf)

    def send(self, op: bytes, payload: bytes = b"") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(HEADER.pack(op, len(payload)) + payload)

    def feed(self, pcm16: bytes) -> str:
        self.send(b"F", pcm16)
        (n,) = LENGTH.unpack(self._read(LENGTH.size))
        return self._read(n).decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class PartialDecoder:
    """One leased decoder for one turn. Methods run on the ``partials`` lane, never concurrently."""

    def __init__(self, worker: Worker) -> None:
        self._worker: Worker | None = worker
        worker.send(b"S")

    def feed(self, pcm16: bytes) -> str:
        if self._worker is None:
            return ""
        try:
            return self._worker.feed(pcm16)
        except (OSError, EOFError) as e:  # the worker died: this turn goes on without partials
            log.warning("partials worker failed: %r", e)
            self._discard()
            return ""

    def release(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            worker.send(b"E")
        except OSError:
            self._worker = worker
            self._discard()
            return
        with _lock:
            _idle.append(worker)

    def _discard(self) -> None:
        global _created
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()
            with _lock:
                _created -= 1


def lease(settings: Any = None) -> PartialDecoder | None:
    """A decoder for one turn, starting a worker if under the cap; ``None`` if all are busy."""
    global _created
    with _lock:
        if _idle:
            worker: Worker | None = _idle.pop()
        elif _created < _max_decoders(settings):
            _created += 1
            worker = None
        else:
            return None
    if worker is None:
        try:
            worker = Worker(_decoder_kwargs(settings))
        except BaseException:
            with _lock:
                _created -= 1
            raise
    return PartialDecoder(worker)


def prewarm(settings: Any = None, count: int = 1) -> None:
    """Start ``count`` workers ahead of the first turn (so turn 1 gets partials promptly)."""
    leases = [lease(settings) for _ in range(count)]
    for d in leases:
        if d is not None:
            d.release()


@atexit.register
def _stop_idle() -> None:
    with _lock:
        workers, _idle[:] = list(_idle), []
    for w in workers:
        w.stop()
