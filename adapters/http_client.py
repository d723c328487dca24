"""The one way provider adapters build their HTTP client."""

from __future__ import annotations

import httpx


def streaming_client(read_timeout_s: float, connect_timeout_s: float) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for streamed provider responses.

    No connection cap: one session host serves many sessions, each with its own stream, and a pool
    limit would queue a session's request behind others' long-lived streams.
    """
    timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
    return httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=None))
