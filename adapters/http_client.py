"""The one way provider adapters build their HTTP client.

Streamed provider responses (the TTS audio body, the LLM's server-sent events) are read with aiohttp: its
C parser hands over whatever the socket delivered in one piece, where httpx paid its pure-Python stack
(httpcore, h11, anyio cancel scopes, tracing context managers) per HTTP chunk. The TTS emulator and Aura
send a chunk per ~40 ms of audio, faster than real time: at 100 agent sessions the TTS stream alone was
~30 % of a session host's CPU under httpx (py-spy, load/README.md); aiohttp reads the same stream for about
a seventh of the CPU.
"""

from __future__ import annotations

import functools
import ssl
import urllib.parse
import urllib.request

import aiohttp
import httpx

# What a streamed request raises when the connection fails, times out or is cut mid-body.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError,)


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One TLS context per process.

    Building it loads the CA bundle: ~100 ms of CPU. Each session's adapters build their own client,
    and a client without a shared context paid that on the session host's event loop, stalling every
    session on the host (measured by load/bench_agent.py: +350 ms on a session's first reply).
    """
    return httpx.create_ssl_context()  # certifi's CA bundle, as before: same trust whichever client reads


def streaming_client(read_timeout_s: float, connect_timeout_s: float) -> aiohttp.ClientSession:
    """An ``aiohttp.ClientSession`` for streamed provider responses (cheap: the TLS context is shared).

    Call it on the event loop that will use it (an adapter makes it on first use). No connection cap: one
    session host serves many sessions, each with its own stream, and a pool limit would queue a session's
    request behind others' long-lived streams. ``read_timeout_s`` bounds each wait for body bytes, as
    httpx's read timeout did; bodies are handed over raw (no content decoding), as ``aiter_raw`` did. Requests
    pass ``proxy=proxy_for(url)``: aiohttp's own ``trust_env`` also parses ~/.netrc in a thread per request
    (~20 % of a host's CPU in a py-spy profile at 100 agent sessions).
    """
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s)
    connector = aiohttp.TCPConnector(ssl=ssl_context(), limit=0)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY`` ...), as httpx
    read it; looked up once per scheme and host (the environment of a running host does not change)."""
    parts = urllib.parse.urlsplit(url)
    return _env_proxy(parts.scheme, parts.hostname or "")


@functools.cache
def _env_proxy(scheme: str, host: str) -> str | None:
    proxies = urllib.request.getproxies_environment()
    if not proxies or urllib.request.proxy_bypass_environment(host, proxies):
        return None
    return proxies.get(scheme) or proxies.get("all")


def warm_up() -> None:
    """Pay the one-off costs (TLS context, the client library's lazy imports) when a host starts, not in a reply."""
    ssl_context()
