"""Fixtures: one emulator served by uvicorn on 127.0.0.1 (port 0) in a background thread, real sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from vani.adapters.emulator.app import build_app
from vani.adapters.emulator.cli import SERVER_KW, env_for
from vani.adapters.emulator.latency import Latency
from vani.cluster.config import Settings

# Fast latencies keep the suite quick; tests assert order and content, never speed.
TEST_LATENCY = Latency(ttft_ms=20, tokens_per_s=400, ttfb_ms=20, rtf=0.02)


@pytest.fixture(scope="session")
def emulator() -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(build_app(TEST_LATENCY), host="127.0.0.1", port=0, **SERVER_KW))
    thread = threading.Thread(target=server.run, name="emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "emulator did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def env(emulator: str) -> dict[str, str]:
    """Dummy credentials (the emulator accepts any non-empty token)."""
    return {k: v for k, v in env_for(emulator).items() if not k.startswith("VANI_")}


@pytest.fixture(scope="session")
def settings(emulator: str) -> Settings:
    e = env_for(emulator)
    return Settings.load(env={k: v for k, v in e.items() if k.startswith("VANI_")}).replace(
        provider_read_timeout_s=2.0, tts_first_byte_timeout_s=1.0, provider_connect_timeout_s=2.0
    )


class Control:
    """The emulator's control endpoint, over HTTP like any client."""

    def __init__(self, base: str) -> None:
        self.base = base

    async def script(self, key: str, **script: Any) -> None:
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{self.base}/__emulator/scripts/{key}", json=script)
            r.raise_for_status()

    async def log(self, key: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{self.base}/__emulator/scripts/{key}")
            r.raise_for_status()
            return r.json()["log"]


@pytest.fixture
def control(emulator: str) -> Control:
    return Control(emulator)


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    """A script key unique to the test."""
    return request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:60]
