"""The provider contract: what a session needs from STT, LLM and TTS.

Every provider (Workers AI, Deepgram, OpenAI-compatible, the embedded offline models) implements
these shapes, so the session cannot tell them apart. Events are plain dataclasses; STT events use
Deepgram Flux semantics and field names (``TurnInfo``), because Flux is the production source of
transcripts and turn boundaries.

Cancellation: every stream is cancellable at any point by cancelling the task that iterates it, or
by calling ``aclose()`` / ``close()``. A cancelled stream releases its socket at once (barge-in
depends on it). Failures that a provider could not recover from surface as ``ProviderError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ErrorKind(StrEnum):
    AUTH = "auth"  # 401/403, bad credentials
    BAD_REQUEST = "bad_request"  # 400, invalid parameters
    RATE_LIMITED = "rate_limited"  # 429
    UNAVAILABLE = "unavailable"  # 5xx, connection refused, socket dropped and not recovered
    TIMEOUT = "timeout"  # no first byte / stalled stream
    PROTOCOL = "protocol"  # malformed message from the provider
    CONFIG = "config"  # provider not configured (missing env var)


@dataclass
class ProviderError(Exception):
    """A provider failure that was not recovered. ``message`` never contains secrets."""

    provider: str
    kind: ErrorKind
    message: str
    status: int | None = None
    retryable: bool = False

    def __str__(self) -> str:
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{self.provider}: {self.kind.value}{status}: {self.message}"


# --------------------------------------------------------------------------------------------
# STT (Flux semantics)
# --------------------------------------------------------------------------------------------


class TurnEventType(StrEnum):
    UPDATE = "Update"
    START_OF_TURN = "StartOfTurn"
    EAGER_END_OF_TURN = "EagerEndOfTurn"
    TURN_RESUMED = "TurnResumed"
    END_OF_TURN = "EndOfTurn"


@dataclass
class Word:
    word: str
    confidence: float = 1.0
    start: float | None = None
    end: float | None = None


@dataclass
class TurnEvent:
    """One Flux ``TurnInfo`` message. Times are seconds on the stream's audio clock."""

    event: TurnEventType
    turn_index: int
    transcript: str = ""
    words: list[Word] = field(default_factory=list)
    end_of_turn_confidence: float = 0.0
    audio_window_start: float = 0.0
    audio_window_end: float = 0.0
    trigger: str | None = None  # only on EndOfTurn: "model" | "manual" | "timeout"

    def to_flux(self) -> dict[str, Any]:
        """The ``TurnInfo`` body (without ``request_id`` / ``sequence_id``)."""
        d: dict[str, Any] = {
            "type": "TurnInfo",
            "event": self.event.value,
            "turn_index": self.turn_index,
            "audio_window_start": self.audio_window_start,
            "audio_window_end": self.audio_window_end,
            "transcript": self.transcript,
            "words": [{k: v for k, v in asdict(w).items() if v is not None} for w in self.words],
            "end_of_turn_confidence": self.end_of_turn_confidence,
        }
        if self.event is TurnEventType.END_OF_TURN and self.trigger:
            d["trigger"] = self.trigger
        return d

    @staticmethod
    def from_flux(msg: dict[str, Any]) -> TurnEvent:
        return TurnEvent(
            event=TurnEventType(msg["event"]),
            turn_index=int(msg.get("turn_index", 0)),
            transcript=msg.get("transcript", "") or "",
            words=[
                Word(w.get("word", ""), float(w.get("confidence", 1.0)), w.get("start"), w.get("end"))
                for w in msg.get("words") or []
            ],
            end_of_turn_confidence=float(msg.get("end_of_turn_confidence", 0.0) or 0.0),
            audio_window_start=float(msg.get("audio_window_start", 0.0) or 0.0),
            audio_window_end=float(msg.get("audio_window_end", 0.0) or 0.0),
            trigger=msg.get("trigger"),
        )


@dataclass
class SttOptions:
    sample_rate: int = 16000
    encoding: str = "linear16"
    eot_threshold: float = 0.7
    eager_eot_threshold: float | None = None  # set = eager mode (EagerEndOfTurn / TurnResumed)
    eot_timeout_ms: int = 5000
    keyterms: list[str] = field(default_factory=list)


@runtime_checkable
class SttStream(Protocol):
    async def send_audio(self, pcm: bytes) -> None:
        """Push PCM16LE mono audio at ``SttOptions.sample_rate``; any chunk size."""

    async def configure(
        self,
        *,
        eot_threshold: float | None = None,
        eager_eot_threshold: float | None = None,
        eot_timeout_ms: int | None = None,
        keyterms: list[str] | None = None,
    ) -> None:
        """Change thresholds / keyterms live (Flux ``Configure``); omitted fields keep their value."""

    async def force_end_turn(self) -> None:
        """Flux ``ForceEndTurn``."""

    def events(self) -> AsyncIterator[TurnEvent]:
        """Turn events in order. Ends after ``close()``; raises ``ProviderError`` on fatal failure."""

    async def close(self) -> None:
        """Flux ``CloseStream``: flush pending updates, then close. Idempotent."""


@runtime_checkable
class SttProvider(Protocol):
    name: str

    async def open(self, session_id: str, options: SttOptions) -> SttStream: ...


# --------------------------------------------------------------------------------------------
# LLM
# --------------------------------------------------------------------------------------------


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class ChatMessage:
    role: str  # system | user | assistant | tool
    content: str = ""
    tool_call_id: str | None = None  # role == "tool"
    tool_calls: list[ToolCall] = field(default_factory=list)  # role == "assistant"


@dataclass
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema


@dataclass
class LlmToken:
    text: str


@dataclass
class LlmToolCall:
    call: ToolCall


@dataclass
class LlmDone:
    finish_reason: str = "stop"  # stop | length | tool_calls | content_filter
    usage: dict[str, int] | None = None
    retries: int = 0  # failed attempts retried before this stream (observability: the llm span)


LlmEvent = LlmToken | LlmToolCall | LlmDone


@runtime_checkable
class LlmProvider(Protocol):
    name: str

    def stream(self, messages: list[ChatMessage], tool: ToolSpec | None = None) -> AsyncIterator[LlmEvent]:
        """Stream a chat completion: tokens, then at most one tool call, then ``LlmDone``.

        Cancelling the consuming task (or ``aclose()`` on the iterator) closes the HTTP stream at once.
        """


# --------------------------------------------------------------------------------------------
# TTS
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioFormat:
    encoding: str = "linear16"  # linear16 | mp3 | mulaw | alaw | flac | opus | aac
    sample_rate: int = 24000
    container: str = "none"  # none | wav | ogg
    channels: int = 1


@dataclass
class TtsOptions:
    speaker: str = "luna"
    encoding: str = "linear16"
    container: str = "none"
    sample_rate: int = 24000
    bit_rate: int | None = None


@dataclass
class TtsChunk:
    audio: bytes
    format: AudioFormat


@runtime_checkable
class TtsProvider(Protocol):
    name: str

    def synthesize(self, text: str, options: TtsOptions) -> AsyncIterator[TtsChunk]:
        """Audio for ``text`` as it is produced. Cancellable at any point."""
