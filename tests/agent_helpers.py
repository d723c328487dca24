"""Helpers for agent / flux tests: the emulator's control API and a recording agent client."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.adapters.audio import chunks, silence, speech
from vani.actors.wire.agent import decode_audio

CLIENT_CHUNK = 8192  # the browser's 4096-sample (256 ms) chunks


async def script(emulator: str, key: str, **body: Any) -> None:
    async with httpx.AsyncClient() as c:
        (await c.post(f"{emulator}/__emulator/scripts/{key}", json=body)).raise_for_status()


async def emulator_log(emulator: str, key: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{emulator}/__emulator/scripts/{key}")
        r.raise_for_status()
        return r.json()["log"]


def utterance(speech_s: float = 0.6, silence_s: float = 0.5, seed: int = 0) -> bytes:
    """Speech then enough silence for the emulated Flux to end the turn (eot 260 ms)."""
    return speech(speech_s, seed=seed) + silence(silence_s)


@dataclass
class AgentClient:
    """Records everything an agent session sends, and checks the audio rules as frames arrive."""

    ws: ClientConnection
    first: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    audio: dict[int, int] = field(default_factory=dict)  # turn_id -> bytes received
    frames: dict[int, list[int]] = field(default_factory=dict)  # turn_id -> payload size of each frame
    payloads: dict[int, list[bytes]] = field(default_factory=dict)  # turn_id -> each frame's audio bytes
    audio_at: dict[int, list[float]] = field(default_factory=dict)  # turn_id -> arrival time of each frame
    cleared: set[int] = field(default_factory=set)
    paused: set[int] = field(default_factory=set)  # between audio.pause and audio.resume
    indexes: dict[int, list[int]] = field(default_factory=dict)  # turn_id -> chunk index of each frame
    # ("audio" | event type, turn_id, time.monotonic() on arrival), in arrival order
    arrivals: list[tuple[str, int | None, float]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    current: int | None = None
    first_audio_at: dict[int, float] = field(default_factory=dict)
    _new: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task | None = None

    @staticmethod
    async def connect(url: str, headers: dict[str, str] | None = None) -> AgentClient:
        # A generous handshake timeout: 100 sessions connect at once on a shared 2-core machine.
        ws = await connect(url, max_size=1 << 22, compression=None, open_timeout=60, additional_headers=headers)
        first = json.loads(await ws.recv())
        c = AgentClient(ws, first)
        c._reader = asyncio.get_running_loop().create_task(c._read())
        return c

    async def _read(self) -> None:
        async for msg in self.ws:
            if isinstance(msg, bytes):
                turn_id, index, payload = decode_audio(msg)
                if turn_id in self.cleared:
                    self.violations.append(f"audio of turn {turn_id} after its audio.clear")
                if turn_id in self.paused:
                    self.violations.append(f"audio of turn {turn_id} while it is paused")
                self.indexes.setdefault(turn_id, []).append(index)
                self.arrivals.append(("audio", turn_id, time.monotonic()))
                if turn_id != self.current:
                    self.violations.append(f"audio of turn {turn_id} while turn {self.current} is current")
                self.audio[turn_id] = self.audio.get(turn_id, 0) + len(payload)
                self.frames.setdefault(turn_id, []).append(len(payload))
                self.payloads.setdefault(turn_id, []).append(payload)
                self.audio_at.setdefault(turn_id, []).append(time.monotonic())
                self.first_audio_at.setdefault(turn_id, time.monotonic())
            else:
                ev = json.loads(msg)
                self.events.append(ev)
                self.arrivals.append((ev["type"], ev.get("turn_id"), time.monotonic()))
                if ev["type"] == "audio.pause":
                    self.paused.add(ev["turn_id"])
                elif ev["type"] == "audio.resume":
                    self.paused.discard(ev["turn_id"])
                elif ev["type"] == "audio.start":
                    self.current = ev["turn_id"]
                elif ev["type"] == "audio.clear":
                    self.cleared.add(ev["turn_id"])
                    self.current = None
            self._new.set()

    async def wait_for(self, pred: Any, timeout: float = 10.0, start: int = 0) -> dict[str, Any]:
        """The first event (from index ``start``) matching ``pred``."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events[start:]:
                if pred(ev):
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                types = [e.get("type") + ":" + str(e.get("event") or e.get("to") or "") for e in self.events[-30:]]
                raise TimeoutError(f"no matching event; last events: {types}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except TimeoutError:
                pass

    async def wait_type(self, kind: str, timeout: float = 10.0, start: int = 0, **match: Any) -> dict[str, Any]:
        return await self.wait_for(
            lambda e: e.get("type") == kind and all(e.get(k) == v for k, v in match.items()), timeout, start
        )

    async def send_audio(self, pcm: bytes, size: int = CLIENT_CHUNK) -> None:
        for c in chunks(pcm, size):
            await self.ws.send(c)

    async def send_json(self, msg: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(msg))

    def of_type(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind and all(e.get(k) == v for k, v in match.items())]

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
