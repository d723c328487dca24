"""Agent pipeline benchmark: turn latencies, barge-in stop and orchestration overhead on the emulators.

A private vani (local Ray on 127.0.0.1, agent sessions) talks to the provider emulator in its own
process with the emulator's **default latency model** (Flux EndOfTurn after 260 ms of silence, LLM
first token 200 ms then 60 tokens/s, TTS first byte 150 ms). Each simulated client behaves like a
microphone: it streams audio chunks paced at real time (speech, then silence, never stopping), speaks
``--turns`` turns, waits for each reply to finish, then barges in on one more reply.

Measured on the client (wall clock, seconds are converted to ms):
  partial      an Update TurnInfo arrives -> minus the time the chunk holding its ``audio_window_end``
               was sent (pure pipeline delay: the emulator emits Updates on the audio clock)
  eot          end of user speech -> EndOfTurn received (configured: 260 ms, quantized to whole chunks)
  first_token  EndOfTurn received -> first ``assistant.text`` (configured: 200 ms)
  e2e          end of user speech -> first assistant audio byte received
  overhead     e2e minus the configured latencies on its path:
               ceil(eot / chunk) * chunk + ttft + (k - 1) / tokens_per_s + ttfb,
               k = tokens the scheduler needs before its first speakable piece (computed with the
               scheduler's own chunker on the emulator's reply). Target p95 < 20 ms.
  barge_stop   server ``LatencyReport.interrupt_stop_latency``: the interrupting speech's start (on the
               audio timeline) -> the turn's output stopped (last frame sent / ``audio.pause``).
               Target < 200 ms (it includes the STT's turn-start detection).
  clear_gap    client: the interrupting TurnInfo received -> ``audio.clear`` received
Correctness is checked too: every reply matches its own session's transcript (no bleed), no audio
frame of a cleared turn after its ``audio.clear``.

    python -m load.bench_agent --sessions 1 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import psutil
from websockets.asyncio.client import connect

from load.bench_emulators import free_port, start_emulator
from load.local_vani import descendants
from load.report import cpu_seconds, memory_of, pct, table, write_json
from vani.actors.agent.chunker import SpeakableChunker
from vani.actors.wire.agent import decode_audio
from vani.adapters.emulator.latency import Latency

RATE = 16000
SPEECH_S = 0.8  # each normal turn
LONG_TURN_S = 1.2  # the turn whose (long) reply is interrupted
BARGE_S = 1.2  # the interrupting speech


def tokens_to_first_piece(reply: str) -> int:
    """How many emulator tokens the scheduler needs before it cuts the first speakable piece."""
    chunker = SpeakableChunker()
    for i, tok in enumerate(re.findall(r"\s*\S+", reply), start=1):
        if chunker.feed(tok):
            return i
    return len(reply.split())


def speech_chunk(samples: int, phase: int) -> bytes:
    t = (np.arange(samples) + phase) / RATE
    voiced = 0.3 * (np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 280 * t))
    return (voiced * 32767).astype("<i2").tobytes()


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
    bleed: int = 0
    stale_frames: int = 0
    errors: list[str] = field(default_factory=list)


class Mic:
    """Real-time paced audio: silence unless speaking; remembers when each chunk was sent."""

    def __init__(self, send: Any, chunk_s: float) -> None:
        self.send, self.chunk = send, int(chunk_s * RATE)
        self.chunk_s = chunk_s
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
                pcm = bytes(2 * self.chunk)
            await self.send(pcm)
            self.sent_at.append(time.monotonic())
            if speaking and self.speak_chunks == 0:
                self.speech_end_wall = self.sent_at[-1]
            k += 1

    def sent_time_of(self, audio_s: float) -> float | None:
        k = max(0, math.ceil(round(audio_s / self.chunk_s, 6)) - 1)
        return self.sent_at[k] if k < len(self.sent_at) else None


async def one_session(sid: str, url: str, emu: str, turns: int, chunk_s: float, lat: Latency) -> SessionResult:
    res = SessionResult()
    transcripts = [f"this is {sid} turn {t} please" for t in range(turns)]
    long_turn = f"this is {sid} asking for a long answer " + "with many words in it " * 6
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{emu}/__emulator/scripts/{sid}", json={"transcripts": [*transcripts, long_turn, "stop"]})
        r.raise_for_status()
    events: list[tuple[float, dict[str, Any]]] = []
    first_audio: dict[int, float] = {}
    cleared: dict[int, float] = {}
    new = asyncio.Event()
    async with connect(url, max_size=1 << 22, compression=None, open_timeout=120) as ws:
        json.loads(await ws.recv())  # session.started
        mic = Mic(ws.send, chunk_s)

        async def read() -> None:
            async for msg in ws:
                now = time.monotonic()
                if isinstance(msg, bytes):
                    turn_id, _i, _pcm = decode_audio(msg)
                    res.frames_in += 1
                    first_audio.setdefault(turn_id, now)
                    if turn_id in cleared:
                        res.stale_frames += 1
                else:
                    ev = json.loads(msg)
                    events.append((now, ev))
                    res.events_in[ev.get("type", "?")] = res.events_in.get(ev.get("type", "?"), 0) + 1
                    if ev.get("type") == "audio.clear":
                        cleared[ev["turn_id"]] = now
                new.set()

        async def wait(kind: str, since: int = 0, timeout: float = 60.0, **match: Any) -> tuple[float, dict[str, Any]]:
            """The first event of type ``kind`` whose fields equal ``match`` (and its arrival time)."""

            def pred(e: dict[str, Any]) -> bool:
                return e.get("type") == kind and all(e.get(k) == v for k, v in match.items())

            deadline = time.monotonic() + timeout
            seen = since
            while True:
                for t, ev in events[seen:]:
                    if pred(ev):
                        return t, ev
                seen = len(events)
                new.clear()
                await asyncio.wait_for(new.wait(), max(0.01, deadline - time.monotonic()))

        tasks = [asyncio.create_task(read()), asyncio.create_task(mic.run())]
        try:
            for t in range(turns + 1):
                turn_id = t + 1
                mark = len(events)
                mic.speak(SPEECH_S if t < turns else LONG_TURN_S)
                t_eot, eot = await wait("TurnInfo", since=mark, event="EndOfTurn")
                eos = mic.speech_end_wall
                for t_ev, ev in events[mark:]:
                    if ev.get("type") == "TurnInfo" and ev["event"] == "Update":
                        sent = mic.sent_time_of(ev["audio_window_end"])
                        if sent is not None:
                            res.partial.append(t_ev - sent)
                t_tok, _ = await wait("assistant.text", turn_id=turn_id)
                if t < turns:
                    _, msg = await wait("assistant.message", turn_id=turn_id)
                    if transcripts[t] not in msg["full_text"]:
                        res.bleed += 1
                else:  # barge in once the reply is audible
                    await wait("audio.start", turn_id=turn_id)
                    await asyncio.sleep(0.5)
                    mic.speak(BARGE_S)
                    await wait("audio.clear", turn_id=turn_id)
                    infos = [(ts, e) for ts, e in events if e.get("type") == "TurnInfo" and ts <= cleared[turn_id]]
                    res.clear_gap.append(cleared[turn_id] - infos[-1][0])
                _, rep = await wait("LatencyReport", turn_id=turn_id)
                if "interrupt_stop_latency" in rep:
                    res.barge_stop.append(rep["interrupt_stop_latency"])
                if "total_latency" in rep:
                    res.server_total.append(rep["total_latency"])
                if eos is None or turn_id not in first_audio:
                    res.errors.append(f"turn {turn_id}: no end of speech / no audio")
                    continue
                reply = f"Sure. You said: {eot['transcript']}. Anything else?"
                tokens = tokens_to_first_piece(reply)
                eot_wall = math.ceil(lat.eot_ms / 1000 / chunk_s - 1e-9) * chunk_s
                configured = eot_wall + (lat.ttft_ms + lat.ttfb_ms) / 1000 + (tokens - 1) / lat.tokens_per_s
                e2e = first_audio[turn_id] - eos
                res.eot.append(t_eot - eos)
                res.first_token.append(t_tok - t_eot)
                res.e2e.append(e2e)
                res.overhead.append(e2e - configured)
                if t == 0:
                    res.cold_e2e.append(e2e)
                else:
                    res.warm_overhead.append(e2e - configured)
                server = {name: v for name, v in rep.items() if name.endswith("_latency")}
                res.per_turn.append(
                    {"turn": turn_id, "eot": t_eot - eos, "first_token": t_tok - t_eot, "e2e": e2e}
                    | server
                    | {"configured": configured}
                )
                res.turns_done += 1
            await ws.send(json.dumps({"type": "close"}))
        except (TimeoutError, OSError) as e:
            res.errors.append(f"{type(e).__name__}: {e}")
        finally:
            for task in tasks:
                task.cancel()
    return res


def worker(urls: list[str], emu: str, ids: list[str], turns: int, chunk_s: float, ramp_s: float) -> list[dict]:
    """One load-generator process running its share of sessions on one event loop."""
    os.nice(15)  # the niceness Ray gives its workers: the load must not outrank what it measures
    lat = Latency()

    async def run() -> list[SessionResult]:
        tasks = []
        for i, sid in enumerate(ids):
            url = f"{urls[i % len(urls)]}/v1/sessions/{sid}"
            tasks.append(asyncio.create_task(one_session(sid, url, emu, turns, chunk_s, lat)))
            await asyncio.sleep(ramp_s / max(len(ids), 1))
        return list(await asyncio.gather(*tasks))

    results = [r.__dict__ for r in asyncio.run(run())]
    t = os.times()
    results[0]["loadgen_cpu_s"] = t.user + t.system
    return results


def cpu_groups(vani: Any, emu_pid: int) -> dict[str, list[int]]:
    """Where the CPU goes: session hosts, gateway (replicas + Serve proxy), emulator, the rest of Ray."""
    hosts = vani.host_pids()
    procs = descendants()
    proxy = [pid for pid, title in procs if "ProxyActor" in title or "haproxy" in title.lower()]
    replicas = [pid for pid, title in procs if "ServeReplica:" in title]
    known = {*hosts, *proxy, *replicas, emu_pid}
    rest = [pid for pid, title in procs if pid not in known and "ray" in title]
    return {"hosts": hosts, "replicas": replicas, "proxy": proxy, "emulator": [emu_pid], "ray_other": rest}


def scenario(vani: Any, emu: str, emu_pid: int, n: int, args: argparse.Namespace) -> dict[str, Any]:
    urls = vani.replica_urls()
    groups = cpu_groups(vani, emu_pid)
    cpu0 = {k: cpu_seconds(v) for k, v in groups.items()}
    ids = [f"bench-{os.getpid()}-{n}-{i}-{int(time.time()) % 100000}" for i in range(n)]
    procs = max(1, min(args.procs, n))
    shares = [ids[p::procs] for p in range(procs)]
    t0 = time.monotonic()
    with ProcessPoolExecutor(procs) as pool:
        futs = [pool.submit(worker, urls, emu, s, args.turns, args.chunk_ms / 1000, args.ramp) for s in shares]
        peak = {"rss_mb": 0.0}
        while not all(f.done() for f in futs):
            mem = memory_of(vani.host_pids() + vani.gateway_pids())
            if mem["rss_mb"] > peak["rss_mb"]:
                peak = mem
            time.sleep(2)
        results = [r for f in futs for r in f.result()]
    wall = time.monotonic() - t0
    row: dict[str, Any] = {"sessions": n, "chunk_ms": args.chunk_ms, "wall_s": round(wall, 1)}
    for k, pids in groups.items():  # cores used over the run (1.0 = one core busy all the time)
        row[f"cpu_{k}"] = round((cpu_seconds(pids) - cpu0[k]) / wall, 2)
    row["cpu_loadgen"] = round(sum(r.get("loadgen_cpu_s", 0.0) for r in results) / wall, 2)
    names = ["partial", "eot", "first_token", "e2e", "overhead", "warm_overhead", "cold_e2e"]
    for name in [*names, "barge_stop", "clear_gap", "server_total"]:
        values = [v * 1000 for r in results for v in r[name]]
        for p in (50, 95, 99):
            row[f"{name}_p{p}"] = pct(values, p)
    row["turns"] = sum(r["turns_done"] for r in results)
    row["barge_ins"] = sum(len(r["barge_stop"]) for r in results)
    row["bleed"] = sum(r["bleed"] for r in results)
    row["stale_frames"] = sum(r["stale_frames"] for r in results)
    row["failed_sessions"] = sum(1 for r in results if r["errors"])
    row["error_samples"] = sorted({e for r in results for e in r["errors"]})[:5]
    kinds: dict[str, int] = {}
    for r in results:
        for k, v in r["events_in"].items():
            kinds[k] = kinds.get(k, 0) + v
    row["msgs_per_session_s"] = {
        "audio_out": round(sum(r["frames_in"] for r in results) / n / wall, 2),
        "audio_in": round(1000 / args.chunk_ms, 2),
        **{k: round(v / n / wall, 2) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
    }
    row["sample_turns"] = [r["per_turn"] for r in results[:3]]
    row["server_rss_mb"] = peak["rss_mb"]
    row["server_pss_mb"] = peak.get("pss_mb")
    return row


COLUMNS = {
    "latency": [
        *("sessions", "turns", "partial_p50", "partial_p95", "eot_p50", "first_token_p50", "first_token_p95"),
        *("e2e_p50", "e2e_p95", "e2e_p99"),
    ],
    "overhead": [
        *("sessions", "overhead_p50", "overhead_p95", "overhead_p99", "warm_overhead_p95", "cold_e2e_p50"),
        "barge_ins",
        *("barge_stop_p50", "barge_stop_p95", "barge_stop_p99", "clear_gap_p95"),
    ],
    "health": ["sessions", "wall_s", "bleed", "stale_frames", "failed_sessions", "server_rss_mb", "server_pss_mb"],
    "cpu (cores)": [
        "sessions",
        "cpu_hosts",
        "cpu_replicas",
        "cpu_proxy",
        "cpu_emulator",
        "cpu_ray_other",
        "cpu_loadgen",
    ],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 100])
    ap.add_argument("--turns", type=int, default=3, help="normal turns per session (then one barge-in)")
    ap.add_argument("--chunk-ms", type=int, default=80, help="client audio chunk (browser: 256)")
    ap.add_argument("--ramp", type=float, default=10.0, help="seconds over which sessions start")
    ap.add_argument("--procs", type=int, default=2, help="load-generator processes")
    ap.add_argument("--gateway-replicas", type=int, default=1)
    ap.add_argument("--ingress", default="proxy", choices=["proxy", "direct", "haproxy"])
    ap.add_argument("--name", default="bench_agent")
    args = ap.parse_args()

    from load.local_vani import local_vani
    from vani.adapters.emulator.cli import env_for

    port = free_port()
    emu = f"http://127.0.0.1:{port}"
    proc = start_emulator(port)
    psutil.Process(proc.pid).nice(15)  # as Ray's workers (see worker())
    os.environ.update(env_for(emu))  # dummy credentials; Ray's workers inherit them
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{emu}/__emulator/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        overrides = dict(
            session_mode="agent",
            stt_provider="deepgram",
            llm_provider="openai",
            tts_provider="deepgram",
            deepgram_base_url=emu,
            openai_base_url=f"{emu}/v1",
            llm_model="emulated",
            provider_session_header="x-emulator-key",
            max_sessions=max(args.sessions) + 10,
        )
        rows = []
        with local_vani(args.ingress, gateway_replicas=args.gateway_replicas, **overrides) as vani:
            for n in args.sessions:
                rows.append(scenario(vani, emu, proc.pid, n, args))
                print(f"done: {n} sessions", file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        proc.wait(10)
    title = f"agent pipeline on the emulators' default latency model, {args.chunk_ms} ms chunks, {args.ingress}"
    print(f"\n{title} (ms)")
    for name, cols in COLUMNS.items():
        print(f"\n{name}\n" + table(rows, cols))
    path = write_json(args.name, {"args": vars(args), "latency_model": Latency().__dict__, "rows": rows})
    print(f"\nwritten: {path}")
    bad = [r for r in rows if r["bleed"] or r["stale_frames"] or r["failed_sessions"]]
    missed = [r for r in rows if (r["overhead_p95"] or 1e9) >= 20 or (r["barge_stop_p95"] or 1e9) >= 20]
    if bad:
        print("FAIL: correctness (bleed / stale audio / failed sessions)", file=sys.stderr)
        return 2
    if missed:
        print(
            "MISSED TARGET: overhead p95 or barge-in stop p95 >= 20 ms for sessions "
            + ", ".join(str(r["sessions"]) for r in missed),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
