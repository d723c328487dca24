"""Cut a token stream into speakable pieces for TTS.

The first piece goes out early (at the first clause boundary, or after ``first_words`` words) so
speech starts as soon as possible; later pieces end at sentence or clause boundaries (or after
``max_words`` words) so the TTS gets natural prosody units.
"""

from __future__ import annotations

import re

SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*$")
CLAUSE_END = re.compile("[,;:\u2014\u2013]$")  # comma, semicolon, colon, em / en dash


class SpeakableChunker:
    def __init__(self, first_words: int = 4, max_words: int = 30) -> None:
        self.first_words = max(1, first_words)
        self.max_words = max(self.first_words, max_words)
        self.buf = ""
        self.pieces_out = 0

    def feed(self, token: str) -> list[str]:
        """Add an LLM token; return the pieces that became speakable (usually none or one)."""
        self.buf += token
        out: list[str] = []
        while True:
            piece = self._cut()
            if piece is None:
                return out
            out.append(piece)

    def flush(self) -> str | None:
        """The rest of the text at end of stream (None if only whitespace remains)."""
        rest, self.buf = self.buf.strip(), ""
        if not rest:
            return None
        self.pieces_out += 1
        return rest

    def _cut(self) -> str | None:
        # Only whole words count: the last word may still be growing unless whitespace follows it.
        matches = list(re.finditer(r"\S+\s", self.buf))
        words = [m.group() for m in matches]
        if not words:
            return None
        first = self.pieces_out == 0
        limit = self.first_words if first else self.max_words
        n = 0
        for i, w in enumerate(words, start=1):
            w = w.strip()
            boundary = SENTENCE_END.search(w) or CLAUSE_END.search(w)
            if boundary or i >= limit:
                n = i
                break
        if n == 0:
            return None
        cut = matches[n - 1].end()  # (not the words' summed length: whitespace between them may be doubled)
        piece, self.buf = self.buf[:cut].strip(), self.buf[cut:]
        self.pieces_out += 1
        return piece
