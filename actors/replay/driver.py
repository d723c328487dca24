"""Re-run a session's engine against its event log: no providers, no sockets, the log's clock.

The engine is the real one (``actors/engines``' agent engine) on a real ring and outbound queue; its clock is
a ``ManualClock`` moved to each logged input's time, so timers (audio pacing, watchdogs, the pause timer)
fire where they fall between inputs. Inputs are handed over as the session handed them (frames into the
ring, client messages, resumes) or as the providers delivered them (``providers.py``); tool calls get their
logged results. What the engine queues for its client is recorded, as the live session's log records it,
for ``compare.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from vani.actors.clock import ManualClock, settle_loop
from vani.actors.replay.log_file import LogError, SessionLog
from vani.actors.replay.providers import ReplayLlm, ReplayStt, ReplayTts
from vani.actors.session.event_log import CLIENT, FRAME, OUTPUTS, RESTORED, RESUME, STT, TOOL, EventLog
from vani.actors.session.outbound import OutboundQueue
from vani.actors.session.ring_buffer import RingBuffer
from vani.actors.tracing.session_trace import SessionTrace
from vani.adapters.base import SttOptions, TurnEvent
from vani.adapters.factory import Providers, tts_options
from vani.cluster.config import Settings

START = 1000.0  # the replay clock's reading at the log's t = 0
TAIL_S = 2.0  # after the last logged entry: let paced audio and timers finish
SETTLE = 60  # event-loop passes after each input and timer (a token -> chunker -> TTS -> frame chain)
# Settings a replay never takes from the log: it opens nothing and stores nothing.
NOT_REPLAYED = {"api_key": None, "session_store": "none", "event_log_entries": 10_000_000}
DRIVEN = frozenset({FRAME, CLIENT, RESUME, STT})  # inputs the driver hands over; provider items time themselves


class ReplayIo:
    """The session side of the engine seam, for a replay."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.clock = ManualClock(START)
        self.ring = RingBuffer(1 << 24)
        self.events = EventLog(self.clock, NOT_REPLAYED["event_log_entries"])
        self.trace = SessionTrace("replay", self.clock)  # the process's tracer: none unless configured
        self.outbound = OutboundQueue(1 << 30, self.events.output)
        self.frames_ready = asyncio.Event()

    def space_freed(self) -> None:
        pass

    def checkpoint(self) -> None:
        pass

    def fail_internal(self, reason: str) -> None:
        pass  # a live session would close; its outputs up to here are what the replay compares

    def close_normal(self, reason: str) -> None:
        pass


def replay_settings(log: SessionLog, changes: dict[str, Any]) -> Settings:
    if log.header.get("mode") != "agent":
        raise LogError(f"replay runs agent sessions; this log is of a {log.header.get('mode')!r} session")
    logged = dict(log.header.get("settings") or {})
    unknown = set(changes) - set(Settings.__dataclass_fields__)
    if unknown:
        raise LogError(f"unknown setting(s) for --set: {', '.join(sorted(unknown))}")
    known = {k: v for k, v in logged.items() if k in Settings.__dataclass_fields__}
    return Settings.from_dict({**known, **NOT_REPLAYED, **changes})


async def run(log: SessionLog, changes: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Replay ``log`` (with ``changes`` to its settings); returns the engine's outputs as log entries."""
    from vani.actors.agent.engine import AgentEngine

    settings = replay_settings(log, changes or {})
    io = ReplayIo(str(log.header.get("session_id", "replay")))
    stt = ReplayStt()
    llm = ReplayLlm(log.entries, io.clock, START)
    tts = ReplayTts(log.entries, io.clock, START)
    providers = Providers(stt, SttOptions(), llm, tts, tts_options(settings))
    engine = AgentEngine(io, settings, providers)  # type: ignore[arg-type]
    engine.ctx.tools.replayed = {e["id"]: e["result"] for e in log.entries if e["k"] == TOOL}
    # Flux's stream id is random per stream: the replay's is the logged one, so its TurnInfo are the same.
    logged_id = next((e["msg"]["request_id"] for e in log.outputs() if "request_id" in e.get("msg", {})), None)
    engine.flux.request_id = logged_id or engine.flux.request_id
    sender = asyncio.get_running_loop().create_task(send_loop(io, engine))
    try:
        for entry in log.entries:
            kind = entry["k"]
            if kind == RESTORED:
                engine.restore(entry["state"])
                continue
            if kind not in DRIVEN:
                continue  # provider items are timed by the replay providers; outputs are what we compare
            await io.clock.advance(max(0.0, START + entry["t"] - io.clock.now()), settle=SETTLE)
            if kind == FRAME:
                pcm = base64.b64decode(entry["pcm"]) if "pcm" in entry else bytes(entry["n"])
                io.ring.push(0, pcm, io.clock.now())
                io.frames_ready.set()
            elif kind == CLIENT:
                engine.on_client(entry["msg"])
            elif kind == RESUME:
                engine.on_resume()
            else:
                stt.queue.put_nowait(TurnEvent.from_flux(entry["event"]))
            await settle_loop(SETTLE)
        end = max((e["t"] for e in log.entries), default=0.0)
        await io.clock.advance(max(0.0, START + end + TAIL_S - io.clock.now()), settle=SETTLE)
    finally:
        await engine.aclose()
        sender.cancel()
    return [e for e in outputs(io.events) if e["k"] in OUTPUTS]


async def send_loop(io: ReplayIo, engine: Any) -> None:
    """The session's sender, instant: takes each queued message and tells the engine of each audio frame."""
    while True:
        msg = await io.outbound.get()
        if isinstance(msg, bytes):
            engine.on_frame_sent(msg)


def outputs(events: EventLog) -> list[dict[str, Any]]:
    """The replay's outputs as the live session's log file has them."""
    return [json.loads(line) for line in list(events.lines())[1:]]
