"""Two fixes for the HTTP server in front of the gateway, which Serve runs and does not let vani configure.

Serve calls ``proxy_callback`` in every process that runs its HTTP server (the proxy; in HAProxy mode
each gateway replica's own server) when ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` names it, before
the server starts. ``cluster/run.py`` sets that variable for a Ray that vani starts; on a cluster vani
joins, its operator sets it (docs/protocol.md, "Bad input").

1. Oversized upgrades. The server is uvicorn with its ``websockets-sansio`` WebSocket implementation.
   The ``websockets`` parser refuses a request line or header line over 8 KB by preparing HTTP 414 /
   431, but uvicorn (0.54) only writes what the parser says once it has parsed a request, so that
   answer is never sent and the client waits until it gives up (an oversized plain GET is answered
   at once). ``flush_rejected_handshakes`` writes the prepared answer and closes the connection.
2. Absolute-form targets. ``GET http://host/v1/sessions/x`` is a valid request (RFC 9112 3.2.2: a
   server must accept it) but the WebSocket parser hands the whole URL over as the path, and Serve's
   router answers 500. ``OriginFormTarget`` rewrites it to its path, like any HTTP server does; a
   target that is neither form is refused (400, or 403 before a WebSocket upgrade), never a 500.
"""

from __future__ import annotations

import logging
import re
from typing import Any

log = logging.getLogger("vani.ingress")

_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")
_ABSOLUTE_RAW = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


def proxy_callback() -> list[Any]:
    """Serve's HTTP proxy callback: install fix 1 and the ping fix (gateway/proxy_hook.py), return fix 2
    as a middleware. Serve takes one callback, so this is vani's single entry point for its HTTP servers."""
    from starlette.middleware import Middleware

    from vani.gateway.proxy_hook import keep_pings_drop_timeout

    flush_rejected_handshakes()
    keep_pings_drop_timeout()
    return [Middleware(OriginFormTarget)]


def flush_rejected_handshakes() -> bool:
    """Make uvicorn's sansio WebSocket protocol send the answer ``websockets`` prepared when it refused a
    request before parsing it. Idempotent; returns whether the fix is installed."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol as Protocol
    except ImportError:  # another uvicorn or no websockets: nothing to fix here
        return False
    if getattr(Protocol, "_vani_flushes_rejections", False):
        return True
    received = Protocol.data_received

    def data_received(self: Any, data: bytes) -> None:
        received(self, data)
        if self.handshake_initiated or self.conn.handshake_exc is None or self.transport.is_closing():
            return
        # No request came out of the parser, only its refusal (414 / 431, or EOF for garbage).
        self.close_sent = True
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()

    Protocol.data_received = data_received
    Protocol._vani_flushes_rejections = True
    return True


def origin_form(path: str, raw_path: bytes | None) -> tuple[str, bytes | None] | None:
    """``(path, raw_path)`` in origin form (``/...``), or ``None`` if the target cannot be served."""
    if path.startswith("/"):
        return path, raw_path
    absolute = _ABSOLUTE.match(path)
    if absolute is None:
        return None
    path = path[absolute.end() :] or "/"
    if raw_path is not None:
        raw = _ABSOLUTE_RAW.match(raw_path)
        raw_path = (raw_path[raw.end() :] if raw else raw_path) or b"/"
    return path, raw_path


class OriginFormTarget:
    """ASGI middleware: absolute-form targets become origin-form; other non-origin targets are refused."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        root: str = scope.get("root_path", "")
        path: str = scope["path"].removeprefix(root)
        if path.startswith("/"):
            await self.app(scope, receive, send)
            return
        raw: bytes | None = scope.get("raw_path")
        fixed = origin_form(path, raw.removeprefix(root.encode()) if raw is not None else None)
        if fixed is None:
            await _refuse(scope, receive, send)
            return
        raw_path = root.encode() + fixed[1] if fixed[1] is not None else None
        await self.app({**scope, "path": root + fixed[0], "raw_path": raw_path}, receive, send)


async def _refuse(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
        return
    body = b"invalid request target"
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body})
