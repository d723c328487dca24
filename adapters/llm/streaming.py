"""The retrying SSE request loop shared by the chat adapters.

Retry rule: a failed attempt is retried (with backoff, honouring ``Retry-After``) only while nothing has
been delivered to the caller, so a retry can never duplicate a token or a tool call. Tool calls are
delivered only after the stream has completed, for the same reason. Cancelling the consumer (task
cancel or ``aclose()``) leaves the ``async with`` at once, which closes the HTTP stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from vani.adapters.base import ErrorKind, LlmDone, LlmEvent, LlmToken, LlmToolCall, ProviderError, ToolCall
from vani.adapters.errors import http_error, transport_error
from vani.adapters.http_client import TRANSPORT_ERRORS, proxy_for
from vani.adapters.retry import Backoff, parse_retry_after
from vani.adapters.sse import iter_sse


class StreamParser(Protocol):
    done: bool  # saw the end of the stream ([DONE] or a final frame)

    def feed(self, data: dict[str, Any]) -> list[LlmEvent]:
        """Events for one decoded SSE ``data`` object (tokens only; tool calls come from ``finish``)."""

    def finish(self) -> list[LlmEvent]:
        """Tool call(s) and ``LlmDone`` once the stream ended cleanly."""


@dataclass
class HttpTarget:
    provider: str
    url: str
    headers: dict[str, str]
    secret: str | None = None
    max_retries: int = 2
    backoff: Backoff = field(default_factory=Backoff)


async def stream_sse(
    client: aiohttp.ClientSession, target: HttpTarget, body: dict[str, Any], new_parser: Any
) -> AsyncIterator[LlmEvent]:
    """POST ``body``, parse the SSE reply with a fresh ``new_parser()`` per attempt, retry safely."""
    delivered = False
    attempt = 0
    while True:
        parser: StreamParser = new_parser()
        retry_after: float | None = None
        try:
            async with client.post(target.url, json=body, headers=target.headers, proxy=proxy_for(target.url)) as resp:
                if resp.status != 200:
                    retry_after = parse_retry_after(resp.headers.get("retry-after"))
                    raise http_error(target.provider, resp.status, await resp.read(), target.secret)
                async for ev in iter_sse(resp.content.iter_any()):
                    if ev.data.strip() == "[DONE]":
                        parser.done = True
                        break
                    try:
                        data = json.loads(ev.data)
                        if not isinstance(data, dict):
                            raise ValueError("not an object")
                    except ValueError:
                        raise ProviderError(
                            target.provider,
                            ErrorKind.PROTOCOL,
                            f"malformed stream event: {ev.data[:80]!r}",
                            retryable=True,
                        ) from None
                    if "error" in data and not data.get("choices"):
                        raise ProviderError(
                            target.provider,
                            ErrorKind.UNAVAILABLE,
                            f"error in stream: {str(data['error'])[:200]}",
                            retryable=True,
                        )
                    for out in parser.feed(data):
                        delivered = True
                        yield out
                if not parser.done:
                    raise ProviderError(
                        target.provider, ErrorKind.UNAVAILABLE, "stream ended before completion", retryable=True
                    )
            for out in parser.finish():
                delivered = True
                if isinstance(out, LlmDone):
                    out.retries = attempt
                yield out
            return
        except ProviderError as e:
            err = e
        except TRANSPORT_ERRORS as e:
            err = transport_error(target.provider, e, target.secret)
        if delivered or not err.retryable or attempt >= target.max_retries:
            if delivered and err.retryable:
                err.message += " (after output was delivered: not retried)"
                err.retryable = False
            raise err
        await asyncio.sleep(target.backoff.delay(attempt, retry_after))
        attempt += 1


def finish_events(calls: list[ToolCall], finish_reason: str | None, usage: dict[str, int] | None) -> list[LlmEvent]:
    out: list[LlmEvent] = [LlmToolCall(c) for c in calls[:1]]  # the contract: at most one tool call
    reason = finish_reason or ("tool_calls" if calls else "stop")
    out.append(LlmDone(finish_reason=reason, usage=usage))
    return out


def token(text: str) -> list[LlmEvent]:
    return [LlmToken(text)] if text else []
