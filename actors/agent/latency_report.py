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

from typing import Any

from vani.actors.agent.turn import TurnHandle
from vani.actors.metrics import metric, process_host
from vani.cluster.config import Settings

FIELDS = (
    "stt_latency",
    "ttt_token_latency",
    "ttt_text_latency",
    "ttt_tool_latency",
    "tts_latency",
    "total_latency",
    "interrupt_stop_latency",
)


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


def record(report: dict[str, Any], turn: TurnHandle, settings: Settings) -> None:
    """Observe the report's values in the Ray histograms (``vani_<field>_s``, by provider), and vani's own share
    of the turn's latency (``vani_added_latency_ms``, mode agent; ``vani_added``)."""
    providers = {"stt": settings.stt_provider, "ttt": settings.llm_provider, "tts": settings.tts_provider}
    for f in FIELDS:
        if f in report:
            tags = {"mode": "agent", "provider": providers.get(f.split("_")[0], "")}
            metric(f"vani_{f}_s").observe(report[f], tags=tags)
    added = vani_added(turn)
    if added is not None:
        metric("vani_added_latency_ms").observe(added * 1000.0, tags={"host": process_host(), "mode": "agent"})


def vani_added(turn: TurnHandle) -> float | None:
    """The part of end-to-end latency that is vani's: everything but the STT's end-of-turn delay, the LLM's
    time to the first speakable piece and the TTS's time to its first byte (None: a turn with no audio, or a
    speculative one, whose LLM started before the end of turn)."""
    t = turn.timings
    marks = (t.user_end_of_speech, t.end_of_turn, t.llm_request, t.first_piece, t.tts_request, t.tts_first_byte)
    if turn.speculative or t.first_audio is None or any(m is None for m in marks):
        return None
    total = t.first_audio - t.user_end_of_speech  # type: ignore[operator]
    providers = (
        (t.end_of_turn - t.user_end_of_speech)  # type: ignore[operator]
        + (t.first_piece - t.llm_request)  # type: ignore[operator]
        + (t.tts_first_byte - t.tts_request)  # type: ignore[operator]
    )
    return max(0.0, total - providers)
