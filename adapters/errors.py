"""Map transport failures and provider error bodies to typed ``ProviderError``s.

Each provider family has its own error shape (Cloudflare v4 ``errors[]``, OpenAI ``error{}``, Deepgram
``err_msg``/``dg-error``); the message we keep is short, human-readable and redacted.
"""

from __future__ import annotations

import json
from typing import Any

from vani.adapters.base import ErrorKind, ProviderError
from vani.adapters.credentials import redact


def kind_for_status(status: int) -> ErrorKind:
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status in (408, 504):
        return ErrorKind.TIMEOUT
    if status >= 500:
        return ErrorKind.UNAVAILABLE
    return ErrorKind.BAD_REQUEST


def message_from_body(body: bytes | str, limit: int = 300) -> str:
    """The useful part of a provider error body, whatever its shape."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data: Any = json.loads(text)
    except ValueError:
        return text.strip()[:limit] or "no body"
    msg = None
    if isinstance(data, dict):
        if isinstance(data.get("error"), dict):  # OpenAI
            msg = data["error"].get("message")
        elif isinstance(data.get("errors"), list) and data["errors"]:  # Cloudflare v4
            first = data["errors"][0]
            msg = first.get("message") if isinstance(first, dict) else str(first)
        else:  # Deepgram REST
            msg = data.get("err_msg") or data.get("message") or data.get("description")
    return str(msg or text)[:limit]


def http_error(provider: str, status: int, body: bytes | str = b"", *secrets: str | None) -> ProviderError:
    kind = kind_for_status(status)
    retryable = kind in (ErrorKind.RATE_LIMITED, ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT)
    msg = redact(message_from_body(body), *secrets)
    return ProviderError(provider, kind, msg, status=status, retryable=retryable)


def transport_error(provider: str, exc: BaseException, *secrets: str | None) -> ProviderError:
    """A connection-level failure (refused, reset, timed out; aiohttp's read timeouts are ``TimeoutError``s)."""
    kind = ErrorKind.TIMEOUT if isinstance(exc, TimeoutError) else ErrorKind.UNAVAILABLE
    detail = redact(f"{type(exc).__name__}: {exc}", *secrets)[:300]
    return ProviderError(provider, kind, detail, retryable=True)
