"""Per-turn ``LatencyReport`` (Deepgram Voice Agent field names, seconds) and its Ray histograms.

    stt_latency        user end of speech -> EndOfTurn received
    ttt_token_latency  LLM request -> first token of any kind (text or tool call)
    ttt_text_latency   LLM request -> first text token
    ttt_tool_latency   LLM request -> first tool call
    tts_latency        first speakable text -> first audio byte
    total_latency      user end of speech -> first assistant audio byte sent
    interrupt_stop_latency  interrupting speech started (audio timeline) -> output stopped: the later of
                            the last audio frame sent and audio.pause (interrupted turns; actors/agent/barge_in.py)

"User end of speech" is the STT's end of the last word, dated on the audio timeline: when the user's
real-time audio reached it (``actors/agent/speech_clock.py``), not when the chunk holding it arrived.
A field that does not apply to the turn is omitted. For eager (speculative) turns the LLM starts
before EndOfTurn, so ``total_latency`` can be smaller than the sum of the parts.
"""

from __future__ import annotations

import functools
from typing import Any

from ray.util import metrics as rm

from vani.actors.agent.turn import TurnHandle

FIELDS = (
    "stt_latency",
    "ttt_token_latency",
    "ttt_text_latency",
    "ttt_tool_latency",
    "tts_latency",
    "total_latency",
    "interrupt_stop_latency",
)
BOUNDS_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0]


def _span(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(max(0.0, b - a), 4)


def build(turn: TurnHandle) -> dict[str, Any]:
    """The ``LatencyReport`` event for ``turn`` (only the fields that apply)."""
    t = turn.timings
    values = {
        "stt_latency": _span(t.user_end_of_speech, t.end_of_turn),
        "ttt_token_latency": _span(t.llm_request, t.first_token),
        "ttt_text_latency": _span(t.llm_request, t.first_text_token),
        "ttt_tool_latency": _span(t.llm_request, t.first_tool_token),
        "tts_latency": _span(t.first_piece, t.first_audio),
        "total_latency": _span(t.user_end_of_speech, t.first_audio),
        "interrupt_stop_latency": _span(t.interrupt_event, t.interrupt_stopped),
    }
    report: dict[str, Any] = {"type": "LatencyReport", "turn_id": turn.turn_id}
    report.update({k: v for k, v in values.items() if v is not None})
    report["speculative"] = turn.speculative
    report["outcome"] = turn.outcome.value
    return report


@functools.cache
def _histograms() -> dict[str, rm.Histogram]:
    return {
        f: rm.Histogram(
            f"vani_{f}_s", f"LatencyReport {f} per assistant turn (seconds)", boundaries=BOUNDS_S, tag_keys=("mode",)
        )
        for f in FIELDS
    }


def record(report: dict[str, Any]) -> None:
    """Observe the report's values in the Ray histograms (``vani_<field>_s``)."""
    hist = _histograms()
    for f in FIELDS:
        if f in report:
            hist[f].observe(report[f], tags={"mode": "agent"})
