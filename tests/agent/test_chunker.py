"""The speakable chunker (actors/agent/chunker.py): an LLM token stream cut into pieces for TTS."""

from __future__ import annotations

import re

import pytest

from vani.actors.agent.chunker import SpeakableChunker


def tokens_of(text: str) -> list[str]:
    """Split like an LLM stream does: a word with its leading space per token, long words in two."""
    out: list[str] = []
    for tok in re.findall(r"\s*\S+", text):
        out += [tok[:3], tok[3:]] if len(tok) > 6 else [tok]
    return out + ([text[len(text.rstrip()) :]] if text != text.rstrip() else [])


def run(text: str, first_words: int = 4, max_words: int = 30, *, by_token: bool = True) -> list[str]:
    c = SpeakableChunker(first_words, max_words)
    pieces: list[str] = []
    for tok in tokens_of(text) if by_token else [text]:
        pieces += c.feed(tok)
    rest = c.flush()
    return pieces + ([rest] if rest is not None else [])


# ------------------------------------------------------------------ the first piece goes out early


def test_first_piece_after_first_words():
    c = SpeakableChunker(first_words=4)
    assert c.feed("Hello there my") == []
    assert c.feed(" friend") == []  # the fourth word may still be growing ("friends")
    assert c.feed(" how") == ["Hello there my friend"]
    assert c.pieces_out == 1


def test_first_piece_at_the_first_clause_or_sentence():
    assert run("Sure, let me check that for you now.")[0] == "Sure,"
    assert run("Yes. I can do that for you today.")[0] == "Yes."
    assert run("Okay! Here it is then.")[0] == "Okay!"


def test_a_boundary_is_only_seen_once_the_word_is_complete():
    c = SpeakableChunker()
    assert c.feed("Sure,") == []  # the word might still grow
    assert c.feed(" let") == ["Sure,"]
    c2 = SpeakableChunker()
    assert c2.feed("It costs 3.") == []
    assert c2.feed("50 dollars") == []  # "3.50" is one word, not a sentence ending at "3."
    assert c2.feed(" now") == ["It costs 3.50 dollars"]  # first_words reached


# ------------------------------------------------------------------ later pieces: sentences, clauses, max_words


def test_later_pieces_end_at_sentence_and_clause_boundaries():
    text = "Sure, I can help with that today. First we check the calendar; then we book it. Done"
    assert run(text) == [
        "Sure,",
        "I can help with that today.",
        "First we check the calendar;",
        "then we book it.",
        "Done",
    ]


def test_later_pieces_do_not_end_at_first_words():
    pieces = run("Right. one two three four five six seven eight nine ten eleven.")
    assert pieces == ["Right.", "one two three four five six seven eight nine ten eleven."]


def test_max_words_cuts_a_long_run_without_punctuation():
    words = [f"w{i}" for i in range(25)]
    pieces = run("Go. " + " ".join(words) + " ", first_words=4, max_words=10)
    assert pieces == ["Go.", " ".join(words[:10]), " ".join(words[10:20]), " ".join(words[20:])]


def test_first_piece_obeys_first_words_even_without_punctuation():
    assert run("a b c d e f g h i j", first_words=3, max_words=4) == ["a b c", "d e f g", "h i j"]


def test_one_feed_can_release_several_pieces():
    c = SpeakableChunker()
    assert c.feed("Hi. How are you? I am fine, thanks. ") == ["Hi.", "How are you?", "I am fine,", "thanks."]
    assert c.flush() is None


def test_word_limits_are_clamped():
    c = SpeakableChunker(first_words=0, max_words=0)
    assert (c.first_words, c.max_words) == (1, 1)
    c = SpeakableChunker(first_words=5, max_words=2)
    assert (c.first_words, c.max_words) == (5, 5)


# ------------------------------------------------------------------ flush


def test_flush_returns_the_rest_once():
    c = SpeakableChunker()
    assert c.feed("Hello there") == []
    assert c.flush() == "Hello there"
    assert c.pieces_out == 1
    assert c.flush() is None
    assert c.buf == ""


def test_flush_of_whitespace_only_is_none():
    c = SpeakableChunker()
    assert c.feed("Yes. ") == ["Yes."]
    c.feed(" \n\t ")
    assert c.flush() is None
    assert c.pieces_out == 1
    assert SpeakableChunker().flush() is None


# ------------------------------------------------------------------ punctuation edge cases


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Wait... let me think about it.", "Wait..."),
        ("Really?! That is great news.", "Really?!"),
        ("Hmm\u2026 let me see that.", "Hmm\u2026"),
        ('He said "hi." Then he left the room.', 'He said "hi."'),
        ("(See below.) It is long.", "(See below.)"),
        ("Note: this is important.", "Note:"),
        ("Well\u2014maybe not today.", "Well\u2014maybe not today."),  # a dash inside a word is not a boundary
        ("Well \u2014 maybe not today.", "Well \u2014"),
        ("First \u2013 second third.", "First \u2013"),
        ("One; two three four.", "One;"),
        ("3.14 is pi, roughly.", "3.14 is pi,"),
        ("Visit example.com today please.", "Visit example.com today please."),
    ],
)
def test_punctuation(text: str, first: str):
    assert run(text)[0] == first


def test_text_is_never_lost_or_reordered():
    text = "Okay, so here's the plan: we meet at 3.30 p.m. on Friday! Bring snacks; lots of them\u2026 see you"
    for by_token in (True, False):
        for first_words, max_words in ((1, 1), (2, 3), (4, 30)):
            pieces = run(text, first_words, max_words, by_token=by_token)
            assert " ".join(pieces).split() == text.split()
            assert all(p == p.strip() and p for p in pieces)


def test_doubled_whitespace_inside_a_piece_keeps_the_boundary():
    assert run("One. Two  three  four, five six. ", by_token=False) == ["One.", "Two  three  four,", "five six."]
