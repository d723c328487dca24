"""Runs inside Serve's HTTP server processes at start-up: websocket pings without a pong deadline.

Serve's proxy (and, in HAProxy mode, each replica's own HTTP server) is a uvicorn that Serve
configures itself, with uvicorn's default keepalive: a ping every 20 s and the connection closed
(1011, seen by vani as 1005) when the pong is not back 20 s later. Under load a client's pong
travels behind the audio it sent before it, so a slow but live session would be killed for a late
pong. Serve has no option for this; its documented start-up hook
(``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``, set by ``vani up`` before Ray starts) runs
``vani.gateway.ingress_guard.proxy_callback``, which calls ``keep_pings_drop_timeout``, in each of those
processes before the server is built. Pings stay (they keep NAT and load-balancer mappings alive); a
peer that is really gone is found by TCP, and its client resumes with its token on a new connection
(the old one gets 4000).
"""

from __future__ import annotations

from typing import Any


def keep_pings_drop_timeout() -> list[Any]:
    """Make ``uvicorn.Config`` default to ``ws_ping_timeout=None``; returns no middlewares."""
    import uvicorn

    base = uvicorn.Config
    if getattr(base, "_vani_no_pong_deadline", False):
        return []

    class Config(base):  # type: ignore[misc, valid-type]
        _vani_no_pong_deadline = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("ws_ping_timeout", None)
            super().__init__(*args, **kwargs)

    uvicorn.Config = Config  # Serve builds its server with `uvicorn.Config(...)`, looked up at call time
    return []
