"""Word error rate with light normalisation (shared by the tests and the benchmark).

Numbers are compared in one canonical form on both sides: spelled-out cardinals ("two", "twenty seven",
"four hundred and twenty seven") and digit strings ("2", "27", "427", "1,000") all become their digits
read one by one as words ("two"; "two seven"; "four two seven"; "one zero zero zero"). So "2" and "two"
match, and a recogniser that writes "427" for the words "four two seven" is not charged three errors.
"""

from __future__ import annotations

import re

_ALIASES = {"mr": "mister", "mrs": "missus"}
_DIGITS = "zero one two three four five six seven eight nine".split()
_SMALL = {w: i for i, w in enumerate([*_DIGITS, *"ten eleven twelve thirteen fourteen fifteen".split()])}
_SMALL.update({"sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19})
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
_SCALES = {"hundred": 100, "thousand": 1000}


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, aliases expanded, numbers in canonical form."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text.lower())  # 1,000 -> 1000
    t = re.sub(r"[^a-z0-9' ]+", " ", text.replace("-", " "))
    out: list[str] = []
    for number in _numbers([_ALIASES.get(w, w) for w in t.split()]):
        out += [_DIGITS[int(d)] for d in number] if number.isdigit() else [number]
    return out


def _numbers(tokens: list[str]) -> list[str]:
    """``tokens`` with each run of spelled-out number words replaced by its digit string."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] in _SMALL or tokens[i] in _TENS:
            value, i = _cardinal(tokens, i)
            out.append(str(value))
        else:
            out.append(tokens[i])
            i += 1
    return out


def _cardinal(tokens: list[str], i: int) -> tuple[int, int]:
    """The number spelled from ``tokens[i]`` on (up to 999 999) and the index after it. A run such as
    "two seven" is two numbers ("2", "7"): a digit or teen is not followed by another one."""
    total, group, last = 0, 0, ""  # last: kind of the previous word ("small", "tens", "scale")
    while i < len(tokens):
        w = tokens[i]
        if w in _SMALL and last in ("", "tens", "scale") and not (last == "tens" and _SMALL[w] >= 10):
            group, last = group + _SMALL[w], "small"
        elif w in _TENS and last in ("", "scale") and group % 100 == 0:
            group, last = group + _TENS[w], "tens"
        elif w == "hundred" and last == "small" and group < 10:
            group, last = group * 100, "scale"
        elif w == "thousand" and last in ("small", "tens", "scale") and not total and group:
            total, group, last = group * 1000, 0, "scale"
        elif w == "and" and last == "scale" and i + 1 < len(tokens) and tokens[i + 1] in {**_SMALL, **_TENS}:
            pass  # "four hundred and twenty"
        else:
            break
        i += 1
    return total + group, i


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
