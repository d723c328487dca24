"""Live partials run pocketsphinx in worker processes: the host's GIL stays free, a dead worker costs one turn."""

from __future__ import annotations

import os
import threading
import time

from tests.local.conftest import read_wav
from vani.adapters.local import partials

WAV = "booking_espeak.wav"


def test_a_decoder_runs_in_a_process_of_its_own_and_gives_text():
    dec = partials.lease()
    assert dec is not None
    try:
        worker = dec._worker
        assert worker is not None and worker.proc.pid != os.getpid()
        pcm = read_wav(WAV)
        text = ""
        for i in range(0, len(pcm), 2560):
            text = dec.feed(pcm[i : i + 2560])
        assert len(text.split()) >= 5, text  # rough (WER ~0.3), but text
    finally:
        dec.release()


def test_decoding_leaves_this_process_free_to_run_python():
    # In-process pocketsphinx holds the GIL for a whole process_raw call (a 6 s clip fed at once: ~1 s
    # of nothing else running). Here the other thread only waits on a pipe, so this one keeps counting.
    dec = partials.lease()
    assert dec is not None
    pcm = read_wav(WAV) * 3
    done = threading.Event()
    counted = 0

    def feed() -> None:
        try:
            dec.feed(pcm)
        finally:
            done.set()

    t = threading.Thread(target=feed)
    t.start()
    try:
        while not done.is_set():
            counted += 1
            time.sleep(0.001)
    finally:
        t.join()
        dec.release()
    # Decoding 18 s of audio takes hundreds of ms; a held GIL would have let this loop run a handful of times.
    assert counted >= 50, counted


def test_a_dead_worker_costs_only_its_turns_partials():
    dec = partials.lease()
    assert dec is not None
    worker = dec._worker
    assert worker is not None
    worker.proc.kill()
    worker.proc.wait()
    assert dec.feed(read_wav(WAV)[:32000]) == ""  # no exception: the turn goes on without partials
    assert dec.feed(b"\0\0" * 1600) == ""
    dec.release()
    assert worker not in partials._idle  # never leased again
    fresh = partials.lease()
    assert fresh is not None and fresh._worker is not None and fresh._worker.proc.poll() is None
    try:
        assert isinstance(fresh.feed(read_wav(WAV)[:32000]), str)
    finally:
        fresh.release()
