"""The `cancelling` watchdog, on a real agent session in this process (no Ray) on the provider emulators.

A session (``actors/session/session.py`` + ``actors/agent/engine.py``, real STT / LLM / TTS adapters over
sockets to the emulator) is driven through its link interface, as a session host drives it. Today's adapters all let go
at once when a turn is cancelled, so the turn gets one more task in its own scope that, like a provider
slow to close its stream, takes 3 s to finish after the cancel: the conversation must not wait for it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from tests.adapters.audio import chunks, silence, speech
from tests.agent_helpers import CLIENT_CHUNK, script, utterance
from tests.conftest import AGENT
from vani.actors.agent.engine import AgentEngine
from vani.actors.engines import engine_factory
from vani.actors.session.session import Hooks, Session
from vani.actors.wire.agent import decode_audio
from vani.adapters.emulator.cli import env_for
from vani.cluster.config import SessionLimits, Settings

LONG_REPLY = " ".join(f"Sentence number {i} is here, and it keeps going." for i in range(12))


class Link:
    """The session's side of a client connection: records what the session sends."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.audio: dict[int, int] = {}
        self.closed: tuple[int, str] | None = None
        self._new = asyncio.Event()

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            turn_id, _, payload = decode_audio(message)
            self.audio[turn_id] = self.audio.get(turn_id, 0) + len(payload)
        else:
            self.events.append(json.loads(message))
        self._new.set()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)

    async def wait_type(self, kind: str, timeout: float = 20.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if ev.get("type") == kind and all(ev.get(k) == v for k, v in match.items()):
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind} {match}; got {[e.get('type') for e in self.events[-20:]]}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except TimeoutError:
                pass


class LocalSession:
    def __init__(self, session: Session, link: Link) -> None:
        self.session, self.link, self.seq = session, link, 0

    async def send_audio(self, pcm: bytes) -> None:
        for c in chunks(pcm, CLIENT_CHUNK):
            await self.session.on_frame(self.seq, c)
            self.seq += 1


async def open_session(emulator: str, monkeypatch, session_id: str, **overrides: Any) -> LocalSession:
    for k, v in env_for(emulator).items():
        if not k.startswith("VANI_"):
            monkeypatch.setenv(k, v)
    app = {k: v.format(emulator=emulator) if isinstance(v, str) else v for k, v in AGENT.items()}
    settings = Settings.load(env={}, **{**app, **overrides})
    limits = SessionLimits.from_settings(settings)
    session = Session(session_id, limits, Hooks(on_closed=lambda s, code: None), engine_factory("agent", settings))
    link = Link()
    session.attach(link)
    return LocalSession(session, link)


async def test_watchdog_cancelling_abandons_a_turn_slow_to_stop(provider_emulator, monkeypatch):
    sid = f"wdcancel-{uuid.uuid4().hex[:8]}"
    await script(provider_emulator, sid, transcripts=["tell me everything", "no wait stop please"], reply=LONG_REPLY)
    s = await open_session(provider_emulator, monkeypatch, sid, watchdog_cancelling_s=0.5)
    link, engine = s.link, s.session.engine
    assert isinstance(engine, AgentEngine)
    try:
        await s.send_audio(utterance(0.6, 0.5, seed=1))
        await link.wait_type("audio.start", turn_id=1)
        released = asyncio.Event()

        async def slow_to_let_go() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                await asyncio.sleep(3.0)  # the cancel arrived; cleaning up takes 3 s
                released.set()

        turn = engine.conv.turn
        assert turn is not None and turn.turn_id == 1
        turn.spawn(slow_to_let_go(), "slow-provider")
        await s.send_audio(speech(0.9, seed=2) + silence(0.5))  # barge-in
        await link.wait_type("audio.clear", turn_id=1)
        wd = await link.wait_type("watchdog", 10.0)
        assert (wd["name"], wd["outcome"], wd["turn_id"], wd["state"]) == (
            "cancelling",
            "turn_abandoned",
            1,
            "cancelling",
        )
        cancelled = await link.wait_type("conversation", event="CANCELLED")
        assert not released.is_set(), "the conversation went on without waiting for the slow task"
        m = await link.wait_type("assistant.message", turn_id=1)
        assert m["interrupted"] and m["outcome"] == "interrupted"
        # The user's interrupting turn gets its reply.
        await link.wait_type("audio.start", 20.0, turn_id=2)
        types = [(e["type"], e.get("event")) for e in link.events]
        assert types.index(("watchdog", None)) < types.index(("conversation", "CANCELLED"))
        assert cancelled["from"] == "cancelling"
        assert "cancelling" in engine.watchdog.fired
    finally:
        await s.session.aclose()
