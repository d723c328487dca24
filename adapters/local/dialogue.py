"""Intent and slot parsing for the local reply engine's demo persona (a restaurant host).

Plain regular expressions over the transcript: deterministic, <1 ms, no weights. Tolerates the
shapes Whisper produces for spoken numbers ("two", "2", "7 p.m.", "7:30", and "for 2.7" for
"for two at seven").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple": 2, "couple": 2,
}  # fmt: skip
DAYS = ("today", "tonight", "tomorrow", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUM = r"(\d{1,2}|" + "|".join(sorted(NUMBERS, key=len, reverse=True)) + r")"


@dataclass
class Slots:
    party_size: int | None = None
    time: str | None = None  # "HH:MM", 24 h
    day: str | None = None

    def merge(self, other: Slots) -> Slots:
        return Slots(
            other.party_size or self.party_size,
            other.time or self.time,
            other.day or self.day,
        )


def normalize(text: str) -> str:
    t = text.lower().replace("p.m.", "pm").replace("a.m.", "am").replace("o'clock", "")
    return re.sub(r"[^a-z0-9:.' ]+", " ", t)


def _num(s: str) -> int:
    return int(s) if s.isdigit() else NUMBERS[s]


def _hhmm(hour: int, minute: int, suffix: str | None) -> str | None:
    if suffix == "am":
        hour = 0 if hour == 12 else hour
    elif hour < 12 and (suffix == "pm" or hour <= 11):
        hour += 12  # a restaurant: "at seven" means the evening
    if not (0 <= hour < 24 and 0 <= minute < 60):
        return None
    return f"{hour:02d}:{minute:02d}"


def parse_slots(text: str) -> Slots:
    t = normalize(text)
    slots = Slots()
    m = re.search(r"\bfor (\d{1,2})\.(\d{1,2})\b", t)  # Whisper writes "for two at seven" as "for 2.7"
    if m:
        slots.party_size = int(m.group(1))
        slots.time = _hhmm(int(m.group(2)), 0, None)
    m = re.search(rf"\b(?:for|party of|table for|of us|us)\s+{_NUM}\b(?!\s*(?::|am|pm))", t) or re.search(
        rf"\b{_NUM}\s+(?:people|persons|guests|of us)\b", t
    )
    if m and slots.party_size is None:
        slots.party_size = _num(m.group(1))
    m = re.search(r"\b(\d{1,2}):(\d{2})\s*(am|pm)?", t)
    if m:
        slots.time = _hhmm(int(m.group(1)), int(m.group(2)), m.group(3))
    else:
        m = re.search(rf"\b(?:at|around|about|by)\s+{_NUM}(?:\s+(thirty|fifteen|forty five))?\s*(am|pm)?", t)
        m = m or re.search(rf"\b{_NUM}\s*(am|pm)\b()", t)
        if m:
            minute = {"thirty": 30, "fifteen": 15, "forty five": 45}.get(m.group(2) or "", 0)
            suffix = m.group(3) if m.lastindex and m.lastindex >= 3 else None
            if m.re.pattern.endswith("()"):
                suffix, minute = m.group(2), 0
            slots.time = _hhmm(_num(m.group(1)), minute, suffix)
        m = re.search(rf"\bhalf past {_NUM}\b", t)
        if m:
            slots.time = _hhmm(_num(m.group(1)), 30, None)
    for day in DAYS:
        if re.search(rf"\b{day}\b", t):
            slots.day = "today" if day == "tonight" else day
            break
    return slots


INTENT_PATTERNS: list[tuple[str, str]] = [
    ("goodbye", r"\b(bye|goodbye|that's all|that is all|nothing else)\b"),
    ("thanks", r"\b(thank you|thanks)\b"),
    ("hours", r"\b(open|opening|close|closing|hours)\b"),
    ("location", r"\b(where are you|address|located|location|directions|parking|park)\b"),
    ("menu", r"\b(menu|vegetarian|vegan|gluten|food|dishes|serve)\b"),
    ("book", r"\b(book|booking|reserve|reservation|table)\b"),
    ("no", r"^\s*(no|nope|no thanks)\b"),
    ("yes", r"^\s*(yes|yeah|yep|sure|please do|ok|okay)\b"),
    ("greeting", r"\b(hi|hello|hey|good morning|good evening)\b"),
]


def intents(text: str) -> list[str]:
    """All intents found in ``text``, in priority order."""
    t = normalize(text)
    return [name for name, pat in INTENT_PATTERNS if re.search(pat, t)]
