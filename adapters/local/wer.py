"""Word error rate with light normalisation (shared by the tests and the benchmark)."""

from __future__ import annotations

import re

_NUMBERS = {"2": "two", "7": "seven", "mr": "mister", "mrs": "missus"}


def words(text: str) -> list[str]:
    t = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " "))
    return [_NUMBERS.get(w, w) for w in t.split()]


def wer(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over words / reference length."""
    ref, hyp = words(reference), words(hypothesis)
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / max(1, len(ref))
