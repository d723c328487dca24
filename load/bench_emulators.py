"""Load test of the provider emulators: N concurrent sessions, each streaming real-time Flux audio
(80 ms chunks) for ~20 s, plus one LLM SSE stream and one TTS request per session.

The emulator runs in its own process (``vani emulate``) with the default latency model; this process is
only the load generator. Measured: EndOfTurn latency (wall time from the end of speech to EndOfTurn,
configured 260 ms of silence + up to one 80 ms chunk of quantisation), LLM time to first token
(configured 200 ms), TTS time to first byte (configured 150 ms), errors, and the emulator's RSS and CPU.

    .venv/bin/python load/bench_emulators.py --sessions 1000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
from websockets.asyncio.client import connect

from vani.cluster.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
CHUNK_S = 0.08
RATE = 16000
SPEECH_S, GAP_S = 1.6, 0.9  # one turn every 2.5 s


def make_audio(seconds: float) -> tuple[list[bytes], list[float]]:
    """80 ms chunks of speech-like audio and the audio times at which each utterance ends."""
    t = np.arange(int(SPEECH_S * RATE)) / RATE
    voiced = (
        0.3
        * (np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 280 * t))
        * (0.55 + 0.45 * np.abs(np.sin(2 * np.pi * 3 * t)))
    )
    cycle = np.concatenate([np.zeros(int(GAP_S * RATE)), voiced])
    reps = int(np.ceil(seconds / (SPEECH_S + GAP_S)))
    pcm = (np.tile(cycle, reps) * 32767).astype("<i2").tobytes()
    size = int(CHUNK_S * RATE) * 2
    chunks = [pcm[i : i + size] for i in range(0, len(pcm), size)]
    ends = [(k + 1) * (SPEECH_S + GAP_S) for k in range(reps)]
    return chunks, ends


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.array(values), p))


class Stats:
    def __init__(self) -> None:
        self.eot_ms: list[float] = []
        self.ttft_ms: list[float] = []
        self.ttfb_ms: list[float] = []
        self.errors: dict[str, int] = {}
        self.sessions_ok = 0
        self.chunks_sent = 0
        self.late_sends = 0  # chunks sent > 40 ms after their due time (load generator falling behind)

    def merge(self, other: Stats) -> None:
        self.eot_ms += other.eot_ms
        self.ttft_ms += other.ttft_ms
        self.ttfb_ms += other.ttfb_ms
        for k, v in other.errors.items():
            self.errors[k] = self.errors.get(k, 0) + v
        self.sessions_ok += other.sessions_ok
        self.chunks_sent += other.chunks_sent
        self.late_sends += other.late_sends

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def flux_session(i: int, base: str, chunks: list[bytes], ends: list[float], stats: Stats) -> None:
    url = (
        base.replace("http", "ws") + "/client/v4/accounts/bench/ai/run/@cf/deepgram/flux"
        "?encoding=linear16&sample_rate=16000"
    )
    try:
        async with connect(
            url,
            additional_headers={"Authorization": "Bearer bench"},
            open_timeout=30,
            ping_interval=None,
            max_queue=256,
            compression=None,
        ) as ws:
            start = time.monotonic()
            got_eots = 0

            async def reader() -> None:
                nonlocal got_eots
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg.get("event") == "EndOfTurn":
                        now = time.monotonic()
                        if got_eots < len(ends):
                            stats.eot_ms.append((now - (start + ends[got_eots])) * 1000)
                        got_eots += 1

            rd = asyncio.create_task(reader())
            for k, chunk in enumerate(chunks):
                due = start + (k + 1) * CHUNK_S  # a chunk leaves once its 80 ms have been "recorded"
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.04:
                    stats.late_sends += 1
                await ws.send(chunk)
                stats.chunks_sent += 1
            await asyncio.sleep(0.6)
            await ws.send(json.dumps({"type": "CloseStream"}))
            try:
                await asyncio.wait_for(rd, 5)
            except Exception:
                rd.cancel()
            expected = sum(1 for e in ends if e + 0.3 <= len(chunks) * CHUNK_S)
            if got_eots < expected:
                stats.error("flux_missing_eot")
            else:
                stats.sessions_ok += 1
    except Exception as e:
        stats.error(f"flux_{type(e).__name__}")


async def llm_call(client: httpx.AsyncClient, base: str, stats: Stats) -> None:
    body = {"model": "bench", "messages": [{"role": "user", "content": "hello there"}], "stream": True}
    t0 = time.monotonic()
    try:
        async with client.stream(
            "POST", base + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer bench"}
        ) as r:
            first = None
            async for chunk in r.aiter_raw():
                if first is None and b'"content":"' in chunk and b'"content":""' not in chunk:
                    first = time.monotonic()
                    stats.ttft_ms.append((first - t0) * 1000)
            if r.status_code != 200 or first is None:
                stats.error(f"llm_{r.status_code}")
    except Exception as e:
        stats.error(f"llm_{type(e).__name__}")


async def tts_call(client: httpx.AsyncClient, base: str, stats: Stats) -> None:
    body = {
        "text": "Sure, I can help with that.",
        "speaker": "luna",
        "encoding": "linear16",
        "container": "none",
        "sample_rate": 24000,
    }
    t0 = time.monotonic()
    try:
        async with client.stream(
            "POST",
            base + "/client/v4/accounts/bench/ai/run/@cf/deepgram/aura-2-en",
            json=body,
            headers={"Authorization": "Bearer bench"},
        ) as r:
            first, size = None, 0
            async for chunk in r.aiter_raw():
                if first is None:
                    first = time.monotonic()
                    stats.ttfb_ms.append((first - t0) * 1000)
                size += len(chunk)
            if r.status_code != 200 or size == 0:
                stats.error(f"tts_{r.status_code}")
    except Exception as e:
        stats.error(f"tts_{type(e).__name__}")


async def session(i: int, base: str, client: httpx.AsyncClient, chunks, ends, stats: Stats, seconds: float) -> None:
    rng = random.Random(i)
    extras = [
        asyncio.create_task(_later(rng.uniform(1, seconds - 2), llm_call(client, base, stats))),
        asyncio.create_task(_later(rng.uniform(1, seconds - 2), tts_call(client, base, stats))),
    ]
    await flux_session(0, base, chunks, ends, stats)
    await asyncio.gather(*extras)


async def _later(delay: float, coro) -> None:
    await asyncio.sleep(delay)
    await coro


def start_emulator(port: int, workers: int = 1) -> subprocess.Popen:
    """``vani emulate`` in its own process, so its CPU and memory are measured apart from the load."""
    cmd = [sys.executable, "-m", "vani.cluster.cli", "emulate", "--port", str(port)]
    log = open(os.environ.get("BENCH_EMULATOR_LOG", os.devnull), "w")
    env = {**os.environ, "VANI_EMULATOR_WORKERS": str(workers)}
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log, env=env)


def worker(base: str, sessions: int, k: int, seconds: float, ramp: float) -> tuple[Stats, float]:
    """One load-generator process: ``sessions`` sessions on its own event loop. Returns stats and CPU %."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    me = psutil.Process()
    me.cpu_percent(None)
    stats = Stats()

    async def run() -> None:
        chunks, ends = make_audio(seconds)
        # A few small pools: httpx's pool slows down with ~1000 connections, and a client per session
        # costs an SSL context each.
        clients = [httpx.AsyncClient(timeout=httpx.Timeout(30.0)) for _ in range(max(1, sessions // 50))]
        tasks = []
        for i in range(sessions):
            client = clients[i % len(clients)]
            tasks.append(asyncio.create_task(session(k * 100000 + i, base, client, chunks, ends, stats, seconds)))
            await asyncio.sleep(ramp / max(sessions, 1))  # ramp up, as real sessions arrive
        await asyncio.wait_for(asyncio.gather(*tasks), seconds + ramp + 90)
        for c in clients:
            await c.aclose()

    asyncio.run(run())
    return stats, me.cpu_percent(None)


async def main_async(args: argparse.Namespace) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_emulator(port, args.emulator_workers)
    try:
        async with httpx.AsyncClient() as c:
            for _ in range(100):
                try:
                    if (await c.get(base + "/__emulator/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        emu = psutil.Process(proc.pid)
        emu.cpu_percent(None)
        samples: list[tuple[float, float]] = []  # (rss MB, cpu %)
        stop = asyncio.Event()
        cached: dict[int, psutil.Process] = {}

        async def sample() -> None:
            while not stop.is_set():
                await asyncio.sleep(1.0)
                procs = [emu, *emu.children(recursive=True)]  # uvicorn workers, if any
                rss, cpu = 0.0, 0.0
                for pr in procs:
                    try:
                        rss += pr.memory_info().rss / 2**20
                        cpu += cached.setdefault(pr.pid, pr).cpu_percent(None)
                    except psutil.Error:
                        pass
                samples.append((rss, cpu))

        sampler = asyncio.create_task(sample())
        t0 = time.monotonic()
        loop = asyncio.get_running_loop()
        share = [args.sessions // args.procs + (1 if k < args.sessions % args.procs else 0) for k in range(args.procs)]
        with ProcessPoolExecutor(args.procs) as pool:
            parts = await asyncio.gather(
                *[loop.run_in_executor(pool, worker, base, n, k, args.seconds, args.ramp) for k, n in enumerate(share)]
            )
        stats = Stats()
        gen_cpu = 0.0
        for part, cpu in parts:
            stats.merge(part)
            gen_cpu += cpu
        wall = time.monotonic() - t0
        stop.set()
        await sampler
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    busy = [s for s in samples[2:-2]] or samples
    return {
        "sessions": args.sessions,
        "seconds_audio": args.seconds,
        "wall_s": round(wall, 1),
        "sessions_ok": stats.sessions_ok,
        "errors": stats.errors,
        "chunks_sent": stats.chunks_sent,
        "late_sends": stats.late_sends,
        "eot_ms": _summary(stats.eot_ms, 260),
        "llm_ttft_ms": _summary(stats.ttft_ms, 200),
        "tts_ttfb_ms": _summary(stats.ttfb_ms, 150),
        "emulator_rss_mb_max": round(max(s[0] for s in samples), 1) if samples else None,
        "emulator_cpu_pct_mean": round(statistics.mean(s[1] for s in busy), 1) if busy else None,
        "emulator_cpu_pct_max": round(max(s[1] for s in busy), 1) if busy else None,
        "loadgen_cpu_pct_mean": round(gen_cpu, 1),
        "cores": os.cpu_count(),
        "emulator_workers": args.emulator_workers,
        "loadgen_procs": args.procs,
    }


def _summary(values: list[float], configured: float) -> dict:
    return {
        "n": len(values),
        "configured": configured,
        **{f"p{p}": None if pct(values, p) is None else round(pct(values, p), 1) for p in (50, 95, 99)},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--ramp", type=float, default=5.0, help="seconds over which sessions start")
    ap.add_argument("--emulator-workers", type=int, default=1, help="emulator worker processes")
    ap.add_argument("--procs", type=int, default=2, help="load-generator processes")
    ap.add_argument("--out", default=str(ROOT / "load/results/bench_emulators.json"))
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    r = asyncio.run(main_async(args))
    print(
        f"\nsessions {r['sessions']} ({r['sessions_ok']} ok), {r['seconds_audio']:g} s of audio each, "
        f"wall {r['wall_s']} s, chunks sent {r['chunks_sent']} ({r['late_sends']} late)"
    )
    print(f"{'metric':<14}{'n':>7}{'configured':>12}{'p50':>9}{'p95':>9}{'p99':>9}")
    for name in ("eot_ms", "llm_ttft_ms", "tts_ttfb_ms"):
        m = r[name]
        print(f"{name:<14}{m['n']:>7}{m['configured']:>12}{m['p50']!s:>9}{m['p95']!s:>9}{m['p99']!s:>9}")
    print(
        f"errors {r['errors'] or 0}; emulator RSS max {r['emulator_rss_mb_max']} MB, CPU mean "
        f"{r['emulator_cpu_pct_mean']}% max {r['emulator_cpu_pct_max']}% (100% = one core); load generator "
        f"CPU {r['loadgen_cpu_pct_mean']}%"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(r, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
