"""gateway/ingress_guard.py in Serve's own HTTP server code, without a cluster: oversized upgrades are
answered at once, absolute-form targets are served like origin-form, nothing gets a 500."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.conftest import free_port
from vani.cluster.run import PROXY_CALLBACK_ENV
from vani.gateway import ingress_guard

ANSWER_TIMEOUT_S = 10.0


@contextlib.asynccontextmanager
async def guarded_server(paths: list[str], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    """Serve's own HTTP server code (the proxy's, and each replica's in HAProxy mode) with vani's callback."""
    from ray.serve._private import http_util
    from ray.serve.config import HTTPOptions

    async def app(scope, receive, send):
        paths.append(scope["path"])
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    # What the env var does in Serve's processes (read at import, so set on the module here).
    monkeypatch.setattr(
        http_util,
        "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH",
        PROXY_CALLBACK_ENV["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"],
    )
    options = http_util.configure_http_middlewares(HTTPOptions(host="127.0.0.1", port=free_port()))
    assert [type(m.cls(app)) for m in options.middlewares] == [ingress_guard.OriginFormTarget]
    task, server = await http_util.start_asgi_http_server(app, options, event_loop=asyncio.get_running_loop())
    for _ in range(500):  # up to 10 s
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started
    try:
        yield options.port
    finally:
        server.should_exit = True
        await task


def upgrade(target: str, extra: str = "") -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode("latin-1")


async def status_of(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n"), ANSWER_TIMEOUT_S)
        except TimeoutError:
            pytest.fail(f"no answer within {ANSWER_TIMEOUT_S} s")
        return int(head.split(b" ", 2)[1])
    finally:
        writer.close()


async def test_oversized_upgrades_are_answered_414_and_431(monkeypatch):
    paths: list[str] = []
    async with guarded_server(paths, monkeypatch) as port:
        assert await status_of(port, upgrade("/v1/sessions/" + "a" * 12000)) == 414
        assert await status_of(port, upgrade("/v1/sessions/x", "X-Pad: " + "b" * 12000 + "\r\n")) == 431
        assert await status_of(port, upgrade("/v1/sessions/x", "".join(f"X-{i}: y\r\n" for i in range(200)))) == 431
        assert await status_of(port, upgrade("/v1/sessions/ok")) == 101  # normal upgrades are untouched
    assert paths == ["/v1/sessions/ok"]


async def test_absolute_form_is_served_as_origin_form_and_junk_is_refused(monkeypatch):
    paths: list[str] = []
    async with guarded_server(paths, monkeypatch) as port:
        assert await status_of(port, upgrade("http://127.0.0.1/v1/sessions/abs")) == 101
        assert await status_of(port, upgrade("ws://127.0.0.1:9/v1/sessions/abs2?x=1")) == 101
        assert await status_of(port, upgrade("http://127.0.0.1")) == 101  # empty path is "/"
        assert await status_of(port, upgrade("*")) == 403
        get = b"GET http://127.0.0.1/plain HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        assert await status_of(port, get) == 404
    assert paths == ["/v1/sessions/abs", "/v1/sessions/abs2", "/", "/plain"]


def test_origin_form_rewrites_path_and_raw_path():
    assert ingress_guard.origin_form("/a/b", b"/a/b") == ("/a/b", b"/a/b")
    assert ingress_guard.origin_form("https://h:1/a%2Fb", b"https://h:1/a%2Fb") == ("/a%2Fb", b"/a%2Fb")
    assert ingress_guard.origin_form("h:1", b"h:1") is None
    assert ingress_guard.flush_rejected_handshakes() is True  # idempotent
