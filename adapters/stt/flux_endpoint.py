"""Where and how a Flux stream connects: URL, auth and fixed params for Workers AI or Deepgram, the query,
and one connection opened with retries and typed, redacted errors.

The two services differ only in URL, auth header and one query param (``model``), so one client serves both.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection, connect

from vani.adapters.base import ProviderError, SttOptions
from vani.adapters.errors import http_error, transport_error
from vani.adapters.retry import Backoff


@dataclass
class FluxEndpoint:
    """Where and how to connect. ``secret`` is only used for redaction."""

    provider: str  # "workers-ai" | "deepgram"
    url: str  # ws(s)://... without query
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)  # fixed params, e.g. {"model": "flux-general-en"}
    secret: str | None = None

    def stream_url(self, opts: SttOptions, session_id: str) -> str:
        """The URL of one connection: the stream's current options, tagged with the session id."""
        params: list[tuple[str, str]] = [
            *self.params.items(),
            ("encoding", opts.encoding),
            ("sample_rate", str(opts.sample_rate)),
            ("eot_threshold", str(opts.eot_threshold)),
            ("eot_timeout_ms", str(opts.eot_timeout_ms)),
        ]
        if opts.eager_eot_threshold is not None:
            params.append(("eager_eot_threshold", str(opts.eager_eot_threshold)))
        params += [("keyterm", k) for k in opts.keyterms]
        params.append(("tag", session_id))
        return f"{self.url}?{urlencode(params)}"


async def dial(
    ep: FluxEndpoint,
    url: str,
    *,
    name: str,
    extra_headers: dict[str, str],
    connect_timeout_s: float,
    max_retries: int,
) -> ClientConnection:
    """One WebSocket to ``url``; retryable failures are retried with backoff up to ``max_retries`` times."""
    backoff = Backoff(base_s=0.1, max_s=2.0)
    for attempt in range(max_retries + 1):
        try:
            return await _connect(ep, url, name, extra_headers, connect_timeout_s)
        except ProviderError as e:
            if not e.retryable or attempt == max_retries:
                raise
            await asyncio.sleep(backoff.delay(attempt))
    raise AssertionError("unreachable")


async def _connect(
    ep: FluxEndpoint, url: str, name: str, extra_headers: dict[str, str], timeout_s: float
) -> ClientConnection:
    try:
        return await connect(
            url,
            additional_headers={**ep.headers, **extra_headers},
            open_timeout=timeout_s,
            ping_interval=10,
            ping_timeout=20,
            max_size=2**22,
            compression=None,  # PCM does not compress; deflate only costs CPU on both ends
        )
    except websockets.InvalidStatus as e:
        raise http_error(name, e.response.status_code, e.response.body or b"", ep.secret) from None
    except (OSError, TimeoutError, websockets.InvalidHandshake) as e:
        raise transport_error(name, e, ep.secret) from None


def workers_ai_endpoint(base_url: str, account_id: str, token: str) -> FluxEndpoint:
    url = _ws(base_url) + f"/accounts/{account_id}/ai/run/@cf/deepgram/flux"
    return FluxEndpoint("workers-ai", url, {"Authorization": f"Bearer {token}"}, secret=token)


def deepgram_endpoint(base_url: str, api_key: str, model: str = "flux-general-en") -> FluxEndpoint:
    url = _ws(base_url) + "/v2/listen"
    return FluxEndpoint("deepgram", url, {"Authorization": f"Token {api_key}"}, {"model": model}, secret=api_key)


def _ws(base: str) -> str:
    base = base.rstrip("/")
    return (
        "wss://" + base[8:]
        if base.startswith("https://")
        else "ws://" + base[7:]
        if base.startswith("http://")
        else base
    )
