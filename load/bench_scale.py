"""Scale mode: N agent sessions held open for a fixed time, ~10 % of them in a turn at any moment.

Every session connects (over a ramp), then streams real-time microphone audio (``--chunk-ms``, 256 = the
browser's chunk) for the whole run: silence between turns, speech in them. Its turns are staggered: it
starts after a random offset, and after each turn it stays silent for ``busy * (1/f - 1)`` (random x0.5-1.5),
``f`` = ``--talking-fraction``, so about ``f`` of the sessions are in a turn (speech start -> the reply's last
audio frame) at any moment; the run reports the fraction it measured. ``--barge-fraction`` of the turns ask
for a long reply and interrupt it (then wait for the reply to the interruption). All sessions end together
at ``ramp + duration``.

Reported per row: sessions held (opened and still healthy at the end), the most open at once, failed (with
samples), bleed (a reply that names another session), mismatched (a reply without this turn's words that
names no other session, e.g. cut short by a watchdog), stale frames (audio of a cleared turn after its
``audio.clear``), the talking sessions' latencies (``bench_agent``'s definitions: e2e, first_token,
overhead = e2e minus the emulators' configured latencies, barge-in stop), and CPU per part: vani (hosts +
replicas + proxy/HAProxy), emulator (N workers), load generator (its N processes), vani CPU per
session-second. The emulator and the load generator run in ``--emulator-workers`` / ``--procs`` processes;
the script lifts its open-file limit (each session is one client websocket here, and several sockets in vani).

    python -m load.bench_scale --sessions 100 300 --duration 120 --ingress haproxy
    python -m load.bench_scale --sessions 1000 --duration 120 --ramp 100 --procs 2 --emulator-workers 2

If the box cannot hold N, the run still ends on time: a turn that gets no answer in ``--turn-timeout`` fails
its session (which closes), and the row says how many were held.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from functools import partial
from typing import Any

from websockets.asyncio.client import connect

from load.agent_client import Conversation, SessionResult, long_request, post_script
from load.agent_stack import (
    agent_stack,
    cpu_groups,
    cpu_row,
    latency_row,
    message_rates,
    run_workers,
    session_worker,
)
from load.local_vani import LocalVani
from load.report import cpu_seconds, table, write_json
from vani.adapters.emulator.latency import Latency

EST_TURN_S = 4.0  # a turn's length (speech, EndOfTurn, the reply's audio) before the first one is measured


def plan(sid: str, turns: int, barge_fraction: float, rng: random.Random) -> list[tuple[str, str]]:
    """The session's turns in order: ("turn", words) or ("barge", interrupting words)."""
    out = []
    for k in range(turns):
        if rng.random() < barge_fraction:
            out.append(("barge", f"stop {sid} number {k}"))
        else:
            out.append(("turn", f"this is {sid} turn {k} please"))
    return out


def transcripts(sid: str, turns: list[tuple[str, str]]) -> list[str]:
    """What the emulator's Flux hears, in order (a barge turn is two user turns: the request, the interruption)."""
    out: list[str] = []
    for kind, words in turns:
        out += [long_request(sid), words] if kind == "barge" else [words]
    return out


async def scale_session(sid: str, url: str, emu: str, end: float, args: argparse.Namespace) -> SessionResult:
    """One session from connect to ``end`` (wall clock, shared by every process)."""
    res = SessionResult()
    rng = random.Random(sid)
    f = args.talking_fraction
    turns = plan(sid, int(args.duration / (EST_TURN_S / f)) + 3, args.barge_fraction, rng)
    opened = None
    try:
        await post_script(emu, sid, transcripts(sid, turns))
        async with connect(url, max_size=1 << 22, compression=None, open_timeout=60, ping_interval=None) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if first.get("type") != "session.started":
                raise RuntimeError(f"first event {first.get('type')}")
            opened = res.opened_at = time.time()
            conv = Conversation(ws, args.chunk_ms / 1000, Latency(), res, args.turn_timeout)
            tasks = [asyncio.create_task(conv.read()), asyncio.create_task(conv.mic.run())]
            try:
                await asyncio.sleep(rng.uniform(0, EST_TURN_S / f))  # stagger the conversations
                for k, (kind, words) in enumerate(turns):
                    if time.time() + 2 * EST_TURN_S > end:  # no turn may run past the end
                        break
                    t0 = time.time()
                    if kind == "barge":
                        await conv.barge_turn(words, follow_up=True, cold=k == 0)
                    else:
                        await conv.turn(words, cold=k == 0, played=True)
                    busy = time.time() - t0
                    res.talking_s += busy
                    await asyncio.sleep(min(busy * (1 / f - 1) * rng.uniform(0.5, 1.5), max(0.0, end - time.time())))
                await asyncio.sleep(max(0.0, end - time.time()))
                await ws.send(json.dumps({"type": "close"}))
            finally:
                for task in tasks:
                    task.cancel()
    except Exception as e:  # a session that fails is counted, never the end of the run
        res.errors.append(f"{type(e).__name__}: {str(e)[:120]}")
    res.connected_s = time.time() - opened if opened else 0.0
    return res


def peak_open(results: list[dict[str, Any]]) -> int:
    """The most sessions open at one time."""
    edges = sorted(
        [(r["opened_at"], 1) for r in results if r["opened_at"]]
        + [(r["opened_at"] + r["connected_s"], -1) for r in results if r["opened_at"]]
    )
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def scenario(vani: LocalVani, emu: str, emu_pid: int, n: int, args: argparse.Namespace) -> dict[str, Any]:
    groups = cpu_groups(vani, emu_pid)
    cpu0 = {k: cpu_seconds(v) for k, v in groups.items()}
    ids = [f"scale-{os.getpid()}-{n}-{i}-{int(time.time()) % 100000}" for i in range(n)]
    procs = max(1, min(args.procs, n))
    end = time.time() + args.ramp + args.duration
    shares = [ids[p::procs] for p in range(procs)]
    session = partial(scale_session, emu=emu, end=end, args=args)
    results, wall, peak = run_workers(vani, session_worker, shares, vani.replica_urls(), args.ramp, session)
    held = [r for r in results if r["connected_s"] > 0 and not r["errors"]]
    row: dict[str, Any] = {"sessions": n, "held": len(held), "chunk_ms": args.chunk_ms, "wall_s": round(wall, 1)}
    row["never_connected"] = sum(1 for r in results if r["connected_s"] == 0)
    row["peak_open"] = peak_open(results)
    talking, held_s = sum(r["talking_s"] for r in results), sum(r["connected_s"] for r in results)
    row["talking_fraction"] = round(talking / max(1.0, held_s), 3)  # share of open session time in a turn
    row |= cpu_row(groups, cpu0, wall, results) | latency_row(results)
    row["msgs_per_session_s"] = message_rates(results, n, wall, args.chunk_ms)
    row["server_rss_mb"] = peak["rss_mb"]
    return row


COLUMNS = {
    "sessions": [
        *("sessions", "held", "peak_open", "failed_sessions", "never_connected", "bleed", "stale_frames"),
        *("mismatched", "turns"),
    ],
    "talking sessions (ms)": [
        *("sessions", "talking_fraction", "e2e_p50", "e2e_p95", "e2e_p99", "first_token_p95"),
        *("overhead_p50", "overhead_p95", "overhead_p99", "barge_ins", "barge_stop_p95"),
    ],
    "cpu (cores)": [
        *("sessions", "cpu_vani", "cpu_hosts", "cpu_replicas", "cpu_proxy", "cpu_emulator", "cpu_loadgen"),
        *("cpu_ray_other", "vani_cpu_ms_per_session_s"),
    ],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[100])
    ap.add_argument("--duration", type=float, default=120.0, help="seconds every session is held after the ramp")
    ap.add_argument("--talking-fraction", type=float, default=0.1, help="share of sessions in a turn at a time")
    ap.add_argument("--barge-fraction", type=float, default=0.2, help="share of turns that are interrupted")
    ap.add_argument("--chunk-ms", type=int, default=256, help="client audio chunk (browser: 256)")
    ap.add_argument("--ramp", type=float, default=None, help="seconds over which sessions connect (default n/10)")
    ap.add_argument("--turn-timeout", type=float, default=30.0, help="a turn with no answer this long fails")
    ap.add_argument("--procs", type=int, default=2, help="load-generator processes")
    ap.add_argument("--emulator-workers", type=int, default=2, help="emulator worker processes (one port)")
    ap.add_argument("--gateway-replicas", type=int, default=1)
    ap.add_argument("--ingress", default="haproxy", choices=["proxy", "direct", "haproxy"])
    ap.add_argument("--name", default="bench_scale")
    args = ap.parse_args()
    rows = []
    with agent_stack(args.ingress, max(args.sessions), args.gateway_replicas, args.emulator_workers) as stack:
        vani, emu, emu_pid = stack
        for n in args.sessions:
            run = argparse.Namespace(**{**vars(args), "ramp": args.ramp if args.ramp is not None else max(5.0, n / 10)})
            rows.append(scenario(vani, emu, emu_pid, n, run))
            print(f"done: {n} sessions", file=sys.stderr, flush=True)
    title = f"scale mode: {args.duration:g} s held, {args.talking_fraction:g} talking, {args.chunk_ms} ms chunks"
    print(f"\n{title}, {args.ingress}")
    for name, cols in COLUMNS.items():
        print(f"\n{name}\n" + table(rows, cols))
    path = write_json(args.name, {"args": vars(args), "latency_model": Latency().__dict__, "rows": rows})
    print(f"\nwritten: {path}")
    return 2 if any(r["bleed"] or r["stale_frames"] or r["failed_sessions"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
