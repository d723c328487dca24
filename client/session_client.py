"""Async Python client for a vani session (``WS /v1/sessions/{id}``).

    async with await VaniSession.connect("ws://127.0.0.1:8000", "my-session") as s:
        await s.send_audio(pcm_bytes)
        async for item in s:          # bytes (audio) or dict (JSON event)
            ...

Reconnect with ``VaniSession.connect(..., resume_token=s.resume_token)`` to get the same session.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


@dataclass
class VaniSession:
    ws: ClientConnection
    started: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)  # JSON events seen by recv(), in order

    @staticmethod
    async def connect(
        base_url: str,
        session_id: str,
        *,
        token: str | None = None,
        resume_token: str | None = None,
        route: str = "/v1/sessions",
        **kwargs: Any,
    ) -> VaniSession:
        """Open the websocket and wait for ``session.started``.

        Raises ``SessionRefused`` if the server closes the connection instead (1013, 4409, ...).
        """
        url = f"{base_url.rstrip('/')}{route}/{session_id}"
        query = []
        if resume_token:
            query.append(f"resume_token={resume_token}")
        if token:
            query.append(f"token={token}")
        if query:
            url += "?" + "&".join(query)
        kwargs.setdefault("max_size", 1 << 20)
        kwargs.setdefault("compression", None)
        # Ping, but never close for a late pong: under load the server's pong waits behind audio.
        kwargs.setdefault("ping_timeout", None)
        ws = await connect(url, **kwargs)
        try:
            first = json.loads(await ws.recv())
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            raise SessionRefused(rcvd.code if rcvd else 1006, rcvd.reason if rcvd else "") from exc
        if first.get("type") != "session.started":
            await ws.close()
            raise SessionRefused(1002, f"unexpected first message {first!r}")
        return VaniSession(ws, first)

    @property
    def session_id(self) -> str:
        return self.started["session_id"]

    @property
    def resume_token(self) -> str:
        return self.started["resume_token"]

    async def send_audio(self, pcm: bytes) -> None:
        await self.ws.send(pcm)

    async def send_json(self, msg: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(msg))

    async def mute(self) -> None:
        await self.send_json({"type": "mute"})

    async def unmute(self) -> None:
        await self.send_json({"type": "unmute"})

    async def ping(self, ping_id: int = 0) -> None:
        await self.send_json({"type": "ping", "id": ping_id, "t": time.time()})

    async def recv(self) -> bytes | dict[str, Any]:
        """Next message: ``bytes`` for audio, ``dict`` for a JSON event. Raises ``ConnectionClosed``."""
        msg = await self.ws.recv()
        if isinstance(msg, bytes):
            return msg
        event = json.loads(msg)
        self.events.append(event)
        return event

    async def recv_event(self, type_: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """Skip audio and other events until one of ``type_`` (with fields equal to ``match``) arrives."""
        import asyncio

        async def wait() -> dict[str, Any]:
            while True:
                item = await self.recv()
                if (
                    isinstance(item, dict)
                    and item.get("type") == type_
                    and all(item.get(k) == v for k, v in match.items())
                ):
                    return item

        return await asyncio.wait_for(wait(), timeout)

    async def recv_audio(self, timeout: float = 5.0) -> bytes:
        """Skip JSON events (they stay in ``events``) until the next audio frame arrives."""
        import asyncio

        async def wait() -> bytes:
            while True:
                item = await self.recv()
                if isinstance(item, bytes):
                    return item

        return await asyncio.wait_for(wait(), timeout)

    def __aiter__(self) -> VaniSession:
        return self

    async def __anext__(self) -> bytes | dict[str, Any]:
        try:
            return await self.recv()
        except ConnectionClosed as exc:
            raise StopAsyncIteration from exc

    async def close(self, graceful: bool = True) -> None:
        """``graceful``: send ``close`` so the server destroys the session; else just drop the socket."""
        if graceful:
            try:
                await self.send_json({"type": "close"})
            except ConnectionClosed:
                return
        await self.ws.close()

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self.ws.close_reason

    async def __aenter__(self) -> VaniSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()


@dataclass
class AgentPlayback:
    """What a player plays of a session's audio, by the rules in docs/protocol.md ("Assistant audio frames").

    Echo sessions send raw PCM (no header). Agent sessions announce each turn with ``audio.start`` (format,
    ``header_bytes``); frames of other turns and of cleared turns (``audio.clear``) are dropped; frames of
    a paused turn (``audio.pause``) are held and released in order by its ``audio.resume``.
    """

    rate: int = 16000
    header: int = 0
    current: int | None = None
    cleared: set[int] = field(default_factory=set)
    paused: int | None = None  # the turn whose playback is paused
    held: list[bytes] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"pauses": 0, "resumes": 0, "clears": 0, "dropped": 0})

    def on_event(self, ev: dict[str, Any]) -> list[bytes]:
        """Apply one JSON event; returns audio it releases (a resume's held frames)."""
        kind, turn = ev.get("type"), ev.get("turn_id")
        if kind == "audio.start":
            self.header = int(ev.get("header_bytes", 8))
            self.rate = int(ev.get("format", {}).get("sample_rate", self.rate))
            if turn != self.current:
                self.current = None if turn in self.cleared else turn
                self.held = []
        elif kind == "audio.pause":
            self.counts["pauses"] += 1
            self.paused = turn
        elif kind == "audio.resume" and turn == self.paused:
            self.counts["resumes"] += 1
            self.paused, released, self.held = None, self.held, []
            return released
        elif kind == "audio.clear":
            self.counts["clears"] += 1
            self.cleared.add(turn)
            if turn == self.current:
                self.current, self.held = None, []
            if turn == self.paused:
                self.paused = None
        return []

    def on_frame(self, frame: bytes) -> list[bytes]:
        """One binary frame; returns the audio to play now (nothing while its turn is paused)."""
        if not self.header:
            return [frame]
        turn = int.from_bytes(frame[:4], "big")
        if turn != self.current:
            self.counts["dropped"] += 1
            return []
        if turn == self.paused:
            self.held.append(frame[self.header :])
            return []
        return [frame[self.header :]]


class SessionRefused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"session refused: {code} {reason}")
        self.code = code
        self.reason = reason
