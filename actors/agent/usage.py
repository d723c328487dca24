"""What a session used, as a team bills and budgets by: per turn, per session, and in metrics by provider.

    stt_s                  audio streamed to the STT (seconds of the client's 16 kHz PCM that reached it)
    llm_prompt_tokens      LLM input tokens, every request of the turn (a tool call makes two)
    llm_completion_tokens  LLM output tokens
    llm_usage              "provider" when every request's numbers came from the provider's usage field
                           (OpenAI-compatible ``stream_options.include_usage``, Workers AI's usage frame);
                           "counted" when vani counted some: completion tokens as streamed tokens, prompt
                           tokens estimated at 4 characters a token
    tts_characters         text sent to the TTS
    audio_out_s            assistant audio sent to the client
    tool_calls             tools executed (by tool: the count of the ``vani_tool_s`` histogram)

A turn's usage is in its ``assistant.message`` (``usage``; its ``stt_s`` is the audio streamed since the
previous turn ended); the session's totals in its status
(``vani status`` with the API key) and, by provider, in the ``vani_usage_*`` counters. A discarded
speculative turn is not in any ``assistant.message`` (nothing of it reached the client) but its LLM tokens
are in the session's totals and the counters: the provider billed them. The client's audio received is the
session's ``counters.bytes_in`` (32 000 bytes a second).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from vani.actors.metrics import metric
from vani.cluster.config import Settings

CHARS_PER_TOKEN = 4  # the estimate for prompts whose provider sent no usage
PCM_BYTES_PER_S = 32000


@dataclass
class Usage:
    stt_s: float = 0.0
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    llm_counted: bool = False  # some of the LLM numbers are vani's count, not the provider's
    tts_characters: int = 0
    audio_out_s: float = 0.0
    tool_calls: int = 0

    def llm_stream(self, provider_usage: dict[str, Any] | None, tokens: int, prompt_chars: int) -> None:
        """One LLM stream's tokens: the provider's numbers if it sent them, else counted."""
        prompt, completion = _provider_numbers(provider_usage)
        if prompt is None or completion is None:
            self.llm_counted = True
            prompt, completion = prompt_chars // CHARS_PER_TOKEN, tokens
        self.llm_prompt_tokens += prompt
        self.llm_completion_tokens += completion

    def add(self, other: Usage) -> None:
        for f in fields(self):
            if f.name == "llm_counted":
                self.llm_counted |= other.llm_counted
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["llm_usage"] = "counted" if d.pop("llm_counted") else "provider"
        d["stt_s"], d["audio_out_s"] = round(self.stt_s, 3), round(self.audio_out_s, 3)
        return d


def _provider_numbers(usage: dict[str, Any] | None) -> tuple[int | None, int | None]:
    if not usage:
        return None, None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    ok = isinstance(prompt, int) and isinstance(completion, int) and prompt >= 0 and completion >= 0
    return (prompt, completion) if ok else (None, None)


def record(usage: Usage, settings: Settings) -> None:
    """Add ``usage`` to the ``vani_usage_*`` counters, by provider (Ray's counters take > 0 only)."""
    for name, value, tags in (
        ("vani_usage_stt_seconds", usage.stt_s, {"provider": settings.stt_provider}),
        ("vani_usage_llm_tokens", usage.llm_prompt_tokens, {"provider": settings.llm_provider, "kind": "prompt"}),
        (
            "vani_usage_llm_tokens",
            usage.llm_completion_tokens,
            {"provider": settings.llm_provider, "kind": "completion"},
        ),
        ("vani_usage_tts_characters", usage.tts_characters, {"provider": settings.tts_provider}),
        ("vani_usage_audio_out_seconds", usage.audio_out_s, {"provider": settings.tts_provider}),
    ):
        if value > 0:
            metric(name).inc(value, tags=tags)


class SessionUsage:
    """A session's totals: each turn's usage once it is over, and the STT's seconds as audio streams."""

    def __init__(self, settings: Settings, stt_bytes: Any) -> None:
        self.settings, self._stt_bytes = settings, stt_bytes  # stt_bytes(): client audio streamed to the STT
        self.total = Usage()
        self._stt_counted = 0

    def turn_over(self, usage: Usage, audio_out_s: float, *, stt: bool = True) -> Usage:
        """Book a turn that is over; ``stt``: it also takes the STT seconds streamed since the last one."""
        usage.audio_out_s = audio_out_s
        if stt:
            usage.stt_s = self._stt_since()
        self.total.add(usage)
        record(usage, self.settings)
        return usage

    def close(self) -> None:
        """The session ends: the STT seconds not booked by a turn yet."""
        self.turn_over(Usage(), 0.0)

    def snapshot(self) -> dict[str, Any]:
        d = self.total.to_dict()
        d["stt_s"] = round(self.total.stt_s + (self._stt_bytes() - self._stt_counted) / PCM_BYTES_PER_S, 3)
        return d

    def _stt_since(self) -> float:
        now = self._stt_bytes()
        seconds, self._stt_counted = (now - self._stt_counted) / PCM_BYTES_PER_S, now
        return seconds
