"""OpenAI-compatible chat completions over SSE: OpenAI, Workers AI ``/ai/v1``, llama.cpp, vLLM, ..."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from vani.adapters.base import ChatMessage, ErrorKind, LlmEvent, ProviderError, ToolCall, ToolSpec
from vani.adapters.http_client import streaming_client
from vani.adapters.llm.streaming import HttpTarget, finish_events, stream_sse, token


def message_json(m: ChatMessage) -> dict[str, Any]:
    d: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_call_id:
        d["tool_call_id"] = m.tool_call_id
    if m.tool_calls:
        d["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in m.tool_calls
        ]
    return d


class OpenAiParser:
    """Content deltas become tokens; tool-call fragments are joined per ``index`` and parsed at the end."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None
        self.calls: dict[int, dict[str, str]] = {}

    def feed(self, data: dict[str, Any]) -> list[LlmEvent]:
        if data.get("usage"):
            self.usage = data["usage"]
        out: list[LlmEvent] = []
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            out += token(delta.get("content") or "")
            for frag in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(int(frag.get("index", 0)), {"id": "", "name": "", "arguments": ""})
                fn = frag.get("function") or {}
                slot["id"] = frag.get("id") or slot["id"]
                slot["name"] = fn.get("name") or slot["name"]
                slot["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def finish(self) -> list[LlmEvent]:
        calls = []
        for i in sorted(self.calls):
            c = self.calls[i]
            try:
                args = json.loads(c["arguments"] or "{}")
            except ValueError:
                raise ProviderError(
                    self.provider, ErrorKind.PROTOCOL, f"tool call {c['name']!r} has invalid JSON arguments"
                ) from None
            calls.append(ToolCall(c["id"] or f"call_{i}", c["name"], args))
        return finish_events(calls, self.finish_reason, self.usage)


@dataclass
class OpenAiCompatLlm:
    """``LlmProvider`` for any ``/chat/completions`` endpoint. ``base_url`` ends before ``/chat``."""

    base_url: str
    api_key: str
    model: str
    name: str = "openai"
    max_tokens: int = 512
    temperature: float = 0.6
    max_retries: int = 2
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    include_usage: bool = False
    extra_headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    _client: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._client is None:
            self._client = streaming_client(self.read_timeout_s, self.connect_timeout_s)
        return self._client

    def body(self, messages: list[ChatMessage], tool: ToolSpec | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [message_json(m) for m in messages],
            "stream": True,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if tool is not None:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
                }
            ]
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        return {**body, **self.extra_body}

    def stream(self, messages: list[ChatMessage], tool: ToolSpec | None = None) -> AsyncIterator[LlmEvent]:
        """Tokens, then at most one tool call, then ``LlmDone``; see ``streaming.stream_sse``."""
        target = HttpTarget(
            self.name,
            self.base_url.rstrip("/") + "/chat/completions",
            {"Authorization": f"Bearer {self.api_key}", **self.extra_headers},
            secret=self.api_key,
            max_retries=self.max_retries,
        )
        return stream_sse(self._http(), target, self.body(messages, tool), lambda: OpenAiParser(self.name))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
