"""Mid-sentence pauses, generated from the test recordings: the false cut-off set of ``bench_local``.

A false cut-off is an end of turn while the speaker only paused inside a sentence. Real recordings with
such pauses are rare in the public domain, so they are made from the real ones in ``tests/data``: Whisper
(the full 30 s path, word timestamps) finds each clip's word boundaries; at boundaries inside a sentence
(the word before it ends in no punctuation, at least two words on each side) silence of 0.3-0.9 s is
inserted, and the clip then goes on to its end. The clip's own audio is never altered, only spread apart.

    .venv/bin/python -m load.pause_set   # prints the set (clip, cut time, words before the pause)
"""

from __future__ import annotations

import json
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
PAUSES_S = (0.3, 0.6, 0.9)
PER_CLIP = 4  # boundaries per clip, spread over it
RATE = 16000


@dataclass(frozen=True)
class PausedClip:
    name: str
    cut_s: float  # where the silence goes, on the clip's own time
    pause_s: float
    before: str  # the words said before the pause

    def pcm(self) -> bytes:
        """The clip with ``pause_s`` of silence at ``cut_s`` (16-bit mono 16 kHz)."""
        x = read(self.name)
        at = int(self.cut_s * RATE) * 2
        return x[:at] + bytes(2 * int(self.pause_s * RATE)) + x[at:]


def read(name: str) -> bytes:
    with wave.open(str(DATA / name)) as w:
        return w.readframes(w.getnframes())


def boundaries(name: str) -> list[tuple[float, str]]:
    """Mid-sentence word boundaries of one clip: (time between the two words, the words before)."""
    from vani.adapters.local import whisper_final

    model = whisper_final.shared()._model  # the process's shared model (the full path gives word times)
    audio = np.frombuffer(read(name), dtype="<i2").astype(np.float32) / 32768
    segments, _ = model.transcribe(audio, language="en", beam_size=1, word_timestamps=True, vad_filter=False)
    words = [w for s in segments for w in (s.words or [])]
    out = []
    for i in range(2, len(words) - 2):
        prev, nxt = words[i - 1], words[i]
        if prev.word.strip()[-1:] in ".,;:?!":
            continue
        out.append(((prev.end + nxt.start) / 2, " ".join(w.word.strip() for w in words[:i])))
    return out


def build(names: list[str] | None = None) -> list[PausedClip]:
    names = names or list(json.loads((DATA / "transcripts.json").read_text()))
    clips = []
    for name in names:
        found = boundaries(name)
        step = max(1, len(found) // PER_CLIP)
        for cut_s, before in found[step // 2 :: step][:PER_CLIP]:
            clips += [PausedClip(name, round(cut_s, 3), pause, before) for pause in PAUSES_S]
    return clips


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    for c in build():
        print(f"{c.name}  {c.cut_s:6.2f} s  +{c.pause_s} s  ...{c.before[-50:]!r}")
