"""The scale harness's own bookkeeping (no Ray, no timing): what counts as bleed, how many sessions were open at
once, and that the emulator's script matches the turns a session speaks (a barge turn is two user turns)."""

from __future__ import annotations

import random
from types import SimpleNamespace

from load.agent_client import Conversation, SessionResult
from load.bench_scale import peak_open, plan, transcripts
from vani.adapters.emulator.latency import Latency


def test_bleed_is_a_reply_naming_another_session_and_a_cut_reply_is_only_mismatched() -> None:
    res = SessionResult()
    conv = Conversation(SimpleNamespace(send=None), 0.256, Latency(), res)
    words = "this is scale-1-300-5-77 turn 2 please"
    conv._check_reply(words, {"full_text": f"Sure. You said: {words}. Anything else?"})
    assert (res.bleed, res.mismatched) == (0, 0)
    conv._check_reply(words, {"full_text": "Sure. You said: this is scale-1-300-6-77 turn 2 please."})
    assert (res.bleed, res.mismatched) == (1, 0)
    conv._check_reply(words, {"full_text": "Sure. You sa", "outcome": "watchdog"})
    conv._check_reply(words, {"full_text": "Sure. You said: this is scale-1-300-5-77 turn 1 please."})
    assert (res.bleed, res.mismatched) == (1, 2)
    assert len(res.samples) == 3


def test_peak_open_counts_overlapping_sessions_only() -> None:
    results = [
        {"opened_at": 0.0, "connected_s": 10.0},
        {"opened_at": 5.0, "connected_s": 10.0},
        {"opened_at": 12.0, "connected_s": 1.0},
        {"opened_at": None, "connected_s": 0.0},  # never connected
    ]
    assert peak_open(results) == 2


def test_script_has_one_transcript_per_user_turn() -> None:
    sid = "scale-1-10-0-1"
    turns = plan(sid, 40, 0.5, random.Random(1))
    heard = transcripts(sid, turns)
    barges = sum(1 for kind, _ in turns if kind == "barge")
    assert 0 < barges < 40 and len(heard) == 40 + barges
    assert all(sid in words for words in heard)
