"""A simulated agent-session client for the load scripts: a real-time microphone and timed turns.

Shared by ``bench_agent.py`` (a few turns per session, then one barge-in) and ``bench_scale.py`` (many
sessions, turns staggered so a fraction of them talk at a time). Times are wall clock on the client, in
seconds; ``bench_agent``'s docstring defines each measure (partial, eot, first_token, e2e, overhead,
barge_stop, clear_gap) and the correctness checks (bleed, stale frames).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from vani.actors.agent.chunker import SpeakableChunker
from vani.actors.wire.agent import decode_audio
from vani.adapters.emulator.latency import Latency

RATE = 16000
SPEECH_S = 0.8  # each normal turn
LONG_TURN_S = 1.2  # the turn whose (long) reply is interrupted
BARGE_S = 1.2  # the interrupting speech
BARGE_AFTER_S = 0.5  # how long the client listens to the long reply before it interrupts
SESSION_ID = re.compile(r"\b(?:bench|scale)-\d+-\d+-\d+-\d+\b")  # the ids the load scripts give sessions


def first_piece(reply: str) -> tuple[str, int]:
    """The first speakable piece the agent's chunker cuts from ``reply`` streamed word by word (as the
    emulator's and the local reply engine's tokens come), and how many tokens it needs for it."""
    chunker = SpeakableChunker()
    for i, tok in enumerate(re.findall(r"\s*\S+", reply), start=1):
        pieces = chunker.feed(tok)
        if pieces:
            return pieces[0], i
    return reply, len(reply.split())


def tokens_to_first_piece(reply: str) -> int:
    """How many emulator tokens the scheduler needs before it cuts the first speakable piece."""
    return first_piece(reply)[1]


def speech_chunk(samples: int, phase: int) -> bytes:
    t = (np.arange(samples) + phase) / RATE
    voiced = 0.3 * (np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 280 * t))
    return (voiced * 32767).astype("<i2").tobytes()


def long_request(sid: str) -> str:
    """A user turn whose reply is long enough to be interrupted."""
    return f"this is {sid} asking for a long answer " + "with many words in it " * 6


@dataclass
class SessionResult:
    partial: list[float] = field(default_factory=list)
    eot: list[float] = field(default_factory=list)
    first_token: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    overhead: list[float] = field(default_factory=list)
    barge_stop: list[float] = field(default_factory=list)
    clear_gap: list[float] = field(default_factory=list)
    server_total: list[float] = field(default_factory=list)
    cold_e2e: list[float] = field(default_factory=list)  # the first turn of each session
    warm_overhead: list[float] = field(default_factory=list)  # turns after the first
    per_turn: list[dict[str, float]] = field(default_factory=list)
    turns_done: int = 0
    frames_in: int = 0  # audio frames received
    events_in: dict[str, int] = field(default_factory=dict)  # JSON events received, by type
    bleed: int = 0  # replies that carry another session's words (its session id)
    mismatched: int = 0  # replies without this turn's words but no other session's either (cut short, ...)
    samples: list[str] = field(default_factory=list)  # the first few bleed / mismatched replies
    stale_frames: int = 0
    errors: list[str] = field(default_factory=list)
    opened_at: float | None = None  # wall clock (time.time) of session.started
    connected_s: float = 0.0  # how long the session was open (bench_scale: session-seconds held)
    talking_s: float = 0.0  # of which in a turn (speech start -> reply done)


class Mic:
    """Real-time paced audio: silence unless speaking; remembers when each chunk was sent."""

    def __init__(self, send: Any, chunk_s: float) -> None:
        self.send, self.chunk = send, int(chunk_s * RATE)
        self.chunk_s = chunk_s
        self.silence = bytes(2 * self.chunk)
        self.sent_at: list[float] = []  # wall time chunk k (audio [k*c, (k+1)*c)) was sent
        self.speak_chunks = 0
        self.speech_end_wall: float | None = None

    def speak(self, seconds: float) -> None:
        self.speak_chunks = max(1, round(seconds / self.chunk_s))

    async def run(self) -> None:
        t0 = time.monotonic()
        k = 0
        while True:
            # A microphone hands over a chunk when its audio has been recorded: at its end.
            await asyncio.sleep(max(0.0, t0 + (k + 1) * self.chunk_s - time.monotonic()))
            speaking = self.speak_chunks > 0
            if speaking:
                pcm = speech_chunk(self.chunk, k * self.chunk)
                self.speak_chunks -= 1
            else:
                pcm = self.silence
            await self.send(pcm)
            self.sent_at.append(time.monotonic())
            if speaking and self.speak_chunks == 0:
                self.speech_end_wall = self.sent_at[-1]
            k += 1

    def sent_time_of(self, audio_s: float) -> float | None:
        k = max(0, math.ceil(round(audio_s / self.chunk_s, 6)) - 1)
        return self.sent_at[k] if k < len(self.sent_at) else None


_clients: dict[int, httpx.AsyncClient] = {}  # one per event loop: a client per session costs ~10 ms of CPU


async def post_script(emu: str, sid: str, transcripts: list[str]) -> None:
    """Register the session's user turns with the emulator (``x-emulator-key`` = the session id)."""
    loop = id(asyncio.get_running_loop())
    client = _clients.get(loop) or _clients.setdefault(loop, httpx.AsyncClient(timeout=60))
    r = await client.post(f"{emu}/__emulator/scripts/{sid}", json={"transcripts": transcripts})
    r.raise_for_status()


class Conversation:
    """One open agent session: reads every event, times turns, counts bleed and stale frames into ``res``."""

    def __init__(self, ws: Any, chunk_s: float, lat: Latency, res: SessionResult, turn_timeout: float = 60.0) -> None:
        self.ws, self.lat, self.res, self.turn_timeout = ws, lat, res, turn_timeout
        self.mic = Mic(ws.send, chunk_s)
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.first_audio: dict[int, float] = {}
        self.cleared: dict[int, float] = {}
        self.new = asyncio.Event()
        self.next_turn = 1  # the server numbers the assistant's turns 1, 2, ... per session
        self.mark = 0  # events before the current turn began (waits scan from here)

    async def read(self) -> None:
        async for msg in self.ws:
            now = time.monotonic()
            if isinstance(msg, bytes):
                turn_id, _i, _pcm = decode_audio(msg)
                self.res.frames_in += 1
                self.first_audio.setdefault(turn_id, now)
                if turn_id in self.cleared:
                    self.res.stale_frames += 1
            else:
                ev = json.loads(msg)
                self.events.append((now, ev))
                kind = ev.get("type", "?")
                self.res.events_in[kind] = self.res.events_in.get(kind, 0) + 1
                if kind == "audio.clear":
                    self.cleared[ev["turn_id"]] = now
            self.new.set()

    async def wait(self, kind: str, **match: Any) -> tuple[float, dict[str, Any]]:
        """The first event of type ``kind`` since the current turn began whose fields equal ``match`` (and
        its arrival time)."""

        def pred(e: dict[str, Any]) -> bool:
            return e.get("type") == kind and all(e.get(k) == v for k, v in match.items())

        deadline = time.monotonic() + self.turn_timeout
        seen = self.mark
        while True:
            for t, ev in self.events[seen:]:
                if pred(ev):
                    return t, ev
            seen = len(self.events)
            self.new.clear()
            await asyncio.wait_for(self.new.wait(), max(0.01, deadline - time.monotonic()))

    async def turn(self, transcript: str, speech_s: float = SPEECH_S, cold: bool = False, played: bool = False) -> None:
        """Speak one turn and wait for the whole reply (with ``played`` also for its last audio frame);
        check the reply answers this session's words."""
        turn_id, self.mark = self.next_turn, len(self.events)
        self.next_turn += 1
        self.mic.speak(speech_s)
        t_eot, eot = await self.wait("TurnInfo", event="EndOfTurn")
        eos = self.mic.speech_end_wall
        self._partials()
        t_tok, _ = await self.wait("assistant.text", turn_id=turn_id)
        _, msg = await self.wait("assistant.message", turn_id=turn_id)
        self._check_reply(transcript, msg)
        await self._report(turn_id, eot, t_eot, eos, t_tok, cold)
        if played:
            await self.wait("audio.end", turn_id=turn_id)

    async def barge_turn(self, barge: str, follow_up: bool = False, cold: bool = False) -> None:
        """Ask for a long reply, interrupt it once it is audible; with ``follow_up`` also wait for the reply
        to the interrupting words (the next turn) to be sent, so the session is idle again afterwards."""
        turn_id, self.mark = self.next_turn, len(self.events)
        self.next_turn += 2  # the interrupting speech is a user turn of its own
        self.mic.speak(LONG_TURN_S)
        t_eot, eot = await self.wait("TurnInfo", event="EndOfTurn")
        eos = self.mic.speech_end_wall
        self._partials()
        t_tok, _ = await self.wait("assistant.text", turn_id=turn_id)
        await self.wait("audio.start", turn_id=turn_id)
        await asyncio.sleep(BARGE_AFTER_S)
        self.mic.speak(BARGE_S)
        await self.wait("audio.clear", turn_id=turn_id)
        since = self.events[self.mark :]
        infos = [(ts, e) for ts, e in since if e.get("type") == "TurnInfo" and ts <= self.cleared[turn_id]]
        self.res.clear_gap.append(self.cleared[turn_id] - infos[-1][0])
        await self._report(turn_id, eot, t_eot, eos, t_tok, cold)
        if follow_up:
            _, msg = await self.wait("assistant.message", turn_id=turn_id + 1)
            self._check_reply(barge, msg)
            await self.wait("audio.end", turn_id=turn_id + 1)

    def _check_reply(self, words: str, msg: dict[str, Any]) -> None:
        """Bleed: the reply names another session. Mismatched: it lacks this turn's words (e.g. a watchdog
        cut it short) without naming anyone else."""
        text = msg.get("full_text", "")
        if words in text:
            return
        own = SESSION_ID.search(words)
        if any(own is None or m != own.group(0) for m in SESSION_ID.findall(text)):
            self.res.bleed += 1
        else:
            self.res.mismatched += 1
        if len(self.res.samples) < 3:
            self.res.samples.append(f"expected {words!r}, got {text[:80]!r} ({msg.get('outcome')})")

    def _partials(self) -> None:
        for t_ev, ev in self.events[self.mark :]:
            if ev.get("type") == "TurnInfo" and ev["event"] == "Update":
                sent = self.mic.sent_time_of(ev["audio_window_end"])
                if sent is not None:
                    self.res.partial.append(t_ev - sent)

    async def _report(
        self, turn_id: int, eot: dict[str, Any], t_eot: float, eos: float | None, t_tok: float, cold: bool
    ) -> None:
        """The turn's latencies, from the client's clock and the server's ``LatencyReport``."""
        res, lat, chunk_s = self.res, self.lat, self.mic.chunk_s
        _, rep = await self.wait("LatencyReport", turn_id=turn_id)
        if "interrupt_stop_latency" in rep:
            res.barge_stop.append(rep["interrupt_stop_latency"])
        if "total_latency" in rep:
            res.server_total.append(rep["total_latency"])
        if eos is None or turn_id not in self.first_audio:
            res.errors.append(f"turn {turn_id}: no end of speech / no audio")
            return
        reply = f"Sure. You said: {eot['transcript']}. Anything else?"
        tokens = tokens_to_first_piece(reply)
        eot_wall = math.ceil(lat.eot_ms / 1000 / chunk_s - 1e-9) * chunk_s
        configured = eot_wall + (lat.ttft_ms + lat.ttfb_ms) / 1000 + (tokens - 1) / lat.tokens_per_s
        e2e = self.first_audio[turn_id] - eos
        res.eot.append(t_eot - eos)
        res.first_token.append(t_tok - t_eot)
        res.e2e.append(e2e)
        res.overhead.append(e2e - configured)
        (res.cold_e2e if cold else res.warm_overhead).append(e2e if cold else e2e - configured)
        server = {name: v for name, v in rep.items() if name.endswith("_latency")}
        res.per_turn.append(
            {"turn": turn_id, "eot": t_eot - eos, "first_token": t_tok - t_eot, "e2e": e2e}
            | server
            | {"configured": configured}
        )
        res.turns_done += 1
