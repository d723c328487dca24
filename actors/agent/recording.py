"""Providers that write what they deliver into the session's event log (actors/session/event_log.py).

The LLM and TTS a session uses are wrapped once, when its engine is built (``actors/engines.py``): each
request, each item the engine receives and each provider error go into the log, at the moment the engine
gets them, so ``vani replay`` can hand the engine the same items at the same moments with no provider at
all. The STT's events are logged where the engine reads them (``listener.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from vani.actors.session.event_log import LLM, LLM_REQUEST, TTS, TTS_REQUEST, EventLog, b64
from vani.adapters.base import (
    AudioFormat,
    ChatMessage,
    LlmDone,
    LlmEvent,
    LlmProvider,
    LlmToken,
    LlmToolCall,
    ProviderError,
    ToolSpec,
    TtsChunk,
    TtsOptions,
    TtsProvider,
)
from vani.adapters.factory import Providers


def error_fields(exc: ProviderError) -> dict[str, Any]:
    return {
        "provider": exc.provider,
        "kind": str(exc.kind),
        "message": exc.message,
        "status": exc.status,
        "retryable": exc.retryable,
    }


def llm_item(ev: LlmEvent) -> dict[str, Any]:
    if isinstance(ev, LlmToken):
        return {"token": ev.text}
    if isinstance(ev, LlmToolCall):
        return {"tool_call": dataclasses.asdict(ev.call)}
    if isinstance(ev, LlmDone):
        return {"done": ev.finish_reason, "usage": ev.usage}
    return {"other": repr(ev)}


class _Recording:
    """What both wrappers share: the provider inside, the log, the count of requests, closing."""

    def __init__(self, inner: Any, events: EventLog) -> None:
        self.inner, self.events = inner, events
        self.name = inner.name
        self.requests = 0

    async def aclose(self) -> None:
        closer = getattr(self.inner, "aclose", None)
        if closer is not None:
            await closer()


class RecordingLlm(_Recording):
    inner: LlmProvider

    async def stream(self, messages: list[ChatMessage], tool: ToolSpec | None = None) -> AsyncIterator[LlmEvent]:
        r = self.requests = self.requests + 1
        self.events.add(LLM_REQUEST, {"r": r, "messages": len(messages), "roles": [m.role for m in messages]})
        try:
            async for ev in self.inner.stream(messages, tool):
                self.events.add(LLM, {"r": r, **llm_item(ev)})
                yield ev
        except ProviderError as exc:
            self.events.add(LLM, {"r": r, "error": error_fields(exc)})
            raise


class RecordingTts(_Recording):
    inner: TtsProvider

    def __init__(self, inner: TtsProvider, events: EventLog) -> None:
        super().__init__(inner, events)
        self._formats: dict[AudioFormat, dict[str, Any]] = {}  # one dict per format, not one per chunk

    async def synthesize(self, text: str, options: TtsOptions) -> AsyncIterator[TtsChunk]:
        r = self.requests = self.requests + 1
        self.events.add(TTS_REQUEST, {"r": r, "text": text})
        try:
            async for chunk in self.inner.synthesize(text, options):
                fmt = self._formats.get(chunk.format)
                if fmt is None:
                    fmt = self._formats[chunk.format] = dataclasses.asdict(chunk.format)
                entry: dict[str, Any] = {"r": r, "n": len(chunk.audio), "format": fmt}
                # Compressed or containered audio is paced by what it holds: keep it (judged by what the
                # chunk is, not what was asked for). PCM: its length says it all.
                if self.events.record_audio or chunk.format.encoding != "linear16" or chunk.format.container != "none":
                    entry["audio"] = b64(chunk.audio)
                self.events.add(TTS, entry)
                yield chunk
        except ProviderError as exc:
            self.events.add(TTS, {"r": r, "error": error_fields(exc)})
            raise


def recording(providers: Providers, events: EventLog) -> Providers:
    """``providers`` with the LLM and TTS logging into ``events`` (unchanged when the log is off)."""
    if not events.enabled:
        return providers
    return dataclasses.replace(
        providers,
        llm=None if providers.llm is None else RecordingLlm(providers.llm, events),
        tts=None if providers.tts is None else RecordingTts(providers.tts, events),
    )
