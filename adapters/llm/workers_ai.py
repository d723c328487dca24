"""Workers AI native text generation: ``POST /accounts/{id}/ai/run/{model}`` with ``stream: true``.

Frames are ``data: {"response": "tok", ...}`` (extra keys such as the ``p`` padding are ignored), an
optional usage frame, then ``data: [DONE]``. Tool calls use the native shape, ``arguments`` an object.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from vani.adapters.base import ChatMessage, ErrorKind, LlmEvent, ProviderError, ToolCall, ToolSpec
from vani.adapters.http_client import streaming_client
from vani.adapters.llm.streaming import HttpTarget, finish_events, stream_sse, token


class NativeParser:
    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.usage: dict[str, int] | None = None
        self.calls: list[ToolCall] = []

    def feed(self, data: dict[str, Any]) -> list[LlmEvent]:
        if data.get("usage"):
            self.usage = data["usage"]
        for i, c in enumerate(data.get("tool_calls") or []):
            args = c.get("arguments") or {}
            if isinstance(args, str):  # some models send a JSON string anyway
                try:
                    args = json.loads(args or "{}")
                except ValueError:
                    raise ProviderError(self.provider, ErrorKind.PROTOCOL, "tool call arguments are not JSON") from None
            self.calls.append(ToolCall(c.get("id") or f"call_{len(self.calls) + i}", c.get("name", ""), args))
        resp = data.get("response")
        return token(resp) if isinstance(resp, str) else []

    def finish(self) -> list[LlmEvent]:
        return finish_events(self.calls, None, self.usage)


@dataclass
class WorkersAiNativeLlm:
    base_url: str  # .../client/v4
    account_id: str
    api_token: str
    model: str
    name: str = "workers-ai"
    max_tokens: int = 512
    temperature: float = 0.6
    max_retries: int = 2
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    extra_headers: dict[str, str] = field(default_factory=dict)
    _client: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._client is None:
            self._client = streaming_client(self.read_timeout_s, self.connect_timeout_s)
        return self._client

    def body(self, messages: list[ChatMessage], tool: ToolSpec | None) -> dict[str, Any]:
        msgs: list[dict[str, Any]] = []
        for m in messages:
            content = m.content
            if m.role == "assistant" and m.tool_calls and not content:
                content = json.dumps([{"name": c.name, "arguments": c.arguments} for c in m.tool_calls])
            msgs.append({"role": m.role, "content": content})
        body: dict[str, Any] = {
            "messages": msgs,
            "stream": True,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if tool is not None:
            body["tools"] = [{"name": tool.name, "description": tool.description, "parameters": tool.parameters}]
        return body

    def stream(self, messages: list[ChatMessage], tool: ToolSpec | None = None) -> AsyncIterator[LlmEvent]:
        """Tokens, then at most one tool call, then ``LlmDone``; see ``streaming.stream_sse``."""
        url = f"{self.base_url.rstrip('/')}/accounts/{self.account_id}/ai/run/{self.model}"
        target = HttpTarget(
            self.name,
            url,
            {"Authorization": f"Bearer {self.api_token}", **self.extra_headers},
            secret=self.api_token,
            max_retries=self.max_retries,
        )
        return stream_sse(self._http(), target, self.body(messages, tool), lambda: NativeParser(self.name))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
