"""The providers of a replay: what the log says the STT, LLM and TTS delivered, on the replay's clock.

The STT's events are pushed by the replay driver at their logged times. The LLM and TTS answer the k-th
request of the replay with the k-th logged request's items. An item keeps its logged time when the request
comes within ``SAME_REQUEST_S`` of the logged request (a faithful replay: every input at its moment);
otherwise (a replay with changed settings asks at another moment) the items keep their spacing from the
request. A request the log has no answer for fails like a provider that is down.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

from vani.actors.clock import Clock
from vani.actors.session.event_log import LLM, LLM_REQUEST, TTS, TTS_REQUEST
from vani.adapters.base import (
    AudioFormat,
    ChatMessage,
    ErrorKind,
    LlmDone,
    LlmEvent,
    LlmToken,
    LlmToolCall,
    ProviderError,
    SttOptions,
    ToolCall,
    ToolSpec,
    TtsChunk,
    TtsOptions,
    TurnEvent,
)

SAME_REQUEST_S = 0.05


class ReplayStt:
    name = "replay"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[TurnEvent | None] = asyncio.Queue()

    async def open(self, session_id: str, options: SttOptions) -> ReplayStt:
        return self

    async def send_audio(self, pcm: bytes) -> None:
        pass

    async def configure(self, **_: Any) -> None:
        pass

    async def force_end_turn(self) -> None:
        pass

    async def events(self) -> AsyncIterator[TurnEvent]:
        while (ev := await self.queue.get()) is not None:
            yield ev

    async def close(self) -> None:
        self.queue.put_nowait(None)


class _Script:
    """The logged requests of one provider, in order: (request time, [(item time, entry), ...])."""

    def __init__(self, entries: list[dict[str, Any]], request_kind: str, item_kind: str, clock: Clock, t0: float):
        self.clock, self.t0 = clock, t0
        self.requests: list[tuple[float, list[tuple[float, dict[str, Any]]]]] = []
        by_r: dict[int, list[tuple[float, dict[str, Any]]]] = {}
        for e in entries:
            if e["k"] == request_kind:
                by_r[e["r"]] = []
                self.requests.append((e["t"], by_r[e["r"]]))
            elif e["k"] == item_kind and e.get("r") in by_r:
                by_r[e["r"]].append((e["t"], e))
        self.used = 0

    async def items(self, provider: str) -> AsyncIterator[dict[str, Any]]:
        if self.used >= len(self.requests):
            raise ProviderError(provider, ErrorKind.UNAVAILABLE, "replay: the log has no answer for this request")
        logged_at, items = self.requests[self.used]
        self.used += 1
        shift = (self.clock.now() - self.t0) - logged_at
        if abs(shift) < SAME_REQUEST_S:
            shift = 0.0
        for t, entry in items:
            await self.clock.sleep(self.t0 + t + shift - self.clock.now())
            yield entry


def provider_error(fields: dict[str, Any]) -> ProviderError:
    return ProviderError(
        fields.get("provider", "replay"),
        ErrorKind(fields.get("kind", ErrorKind.UNAVAILABLE)),
        fields.get("message", ""),
        fields.get("status"),
        bool(fields.get("retryable", False)),
    )


class ReplayLlm:
    name = "replay"

    def __init__(self, entries: list[dict[str, Any]], clock: Clock, t0: float) -> None:
        self.script = _Script(entries, LLM_REQUEST, LLM, clock, t0)

    async def stream(self, messages: list[ChatMessage], tool: ToolSpec | None = None) -> AsyncIterator[LlmEvent]:
        async for e in self.script.items("replay-llm"):
            if "error" in e:
                raise provider_error(e["error"])
            if "token" in e:
                yield LlmToken(e["token"])
            elif "tool_call" in e:
                yield LlmToolCall(ToolCall(**e["tool_call"]))
            elif "done" in e:
                yield LlmDone(e["done"], e.get("usage"))


class ReplayTts:
    name = "replay"

    def __init__(self, entries: list[dict[str, Any]], clock: Clock, t0: float) -> None:
        self.script = _Script(entries, TTS_REQUEST, TTS, clock, t0)

    async def synthesize(self, text: str, options: TtsOptions) -> AsyncIterator[TtsChunk]:
        async for e in self.script.items("replay-tts"):
            if "error" in e:
                raise provider_error(e["error"])
            audio = base64.b64decode(e["audio"]) if "audio" in e else bytes(e["n"])
            yield TtsChunk(audio, AudioFormat(**e["format"]))
