"""The one way provider adapters build their HTTP client."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One TLS context per process.

    Building it loads the CA bundle: ~100 ms of CPU. Each session's adapters build their own client,
    and a client without a shared context paid that on the session host's event loop, stalling every
    session on the host (measured by load/bench_agent.py: +350 ms on a session's first reply).
    """
    return httpx.create_ssl_context()


def streaming_client(read_timeout_s: float, connect_timeout_s: float) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for streamed provider responses (cheap: the TLS context is shared).

    No connection cap: one session host serves many sessions, each with its own stream, and a pool
    limit would queue a session's request behind others' long-lived streams.
    """
    timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
    return httpx.AsyncClient(verify=ssl_context(), timeout=timeout, limits=httpx.Limits(max_connections=None))


def warm_up() -> None:
    """Pay the one-off costs (TLS context, httpx's lazy imports) when a host starts, not in a reply."""
    client = streaming_client(1.0, 1.0)
    del client  # never opened a connection: nothing to close
