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
import os
import sys
import time
from functools import partial
from typing import Any

from websockets.asyncio.client import connect

from load.agent_client import Conversation, SessionResult, long_request, post_script
from load.agent_stack import agent_stack, cpu_groups, cpu_row, latency_row, message_rates, run_workers, session_worker
from load.local_vani import LocalVani
from load.report import cpu_seconds, table, write_json
from load.store_server import store_setting, store_totals
from vani.adapters.emulator.latency import Latency


async def one_session(sid: str, url: str, emu: str, turns: int, chunk_s: float, lat: Latency) -> SessionResult:
    res = SessionResult()
    transcripts = [f"this is {sid} turn {t} please" for t in range(turns)]
    await post_script(emu, sid, [*transcripts, long_request(sid), "stop"])
    async with connect(url, max_size=1 << 22, compression=None, open_timeout=120) as ws:
        json.loads(await ws.recv())  # session.started
        opened = time.monotonic()
        conv = Conversation(ws, chunk_s, lat, res)
        tasks = [asyncio.create_task(conv.read()), asyncio.create_task(conv.mic.run())]
        try:
            for t in range(turns):
                await conv.turn(transcripts[t], cold=t == 0)
            await conv.barge_turn("stop", cold=turns == 0)
            await ws.send(json.dumps({"type": "close"}))
        except (TimeoutError, OSError) as e:
            res.errors.append(f"{type(e).__name__}: {e}")
        finally:
            res.connected_s = time.monotonic() - opened
            for task in tasks:
                task.cancel()
    return res


def scenario(vani: LocalVani, emu: str, emu_pid: int, n: int, args: argparse.Namespace) -> dict[str, Any]:
    groups = cpu_groups(vani, emu_pid)
    writes0, bytes0 = store_totals(vani.registry())
    cpu0 = {k: cpu_seconds(v) for k, v in groups.items()}
    ids = [f"bench-{os.getpid()}-{n}-{i}-{int(time.time()) % 100000}" for i in range(n)]
    procs = max(1, min(args.procs, n))
    shares = [ids[p::procs] for p in range(procs)]
    session = partial(one_session, emu=emu, turns=args.turns, chunk_s=args.chunk_ms / 1000, lat=Latency())
    results, wall, peak = run_workers(vani, session_worker, shares, vani.replica_urls(), args.ramp, session)
    row: dict[str, Any] = {"sessions": n, "chunk_ms": args.chunk_ms, "wall_s": round(wall, 1)}
    row |= cpu_row(groups, cpu0, wall, results) | latency_row(results)
    row["msgs_per_session_s"] = message_rates(results, n, wall, args.chunk_ms)
    row["sample_turns"] = [r["per_turn"] for r in results[:3]]
    row["server_rss_mb"] = peak["rss_mb"]
    row["server_pss_mb"] = peak.get("pss_mb")
    writes, size = store_totals(vani.registry())
    minutes = (row.get("session_s") or 1.0) / 60.0
    row["store"] = args.store
    row["store_writes_per_session_min"] = round((writes - writes0) / minutes, 2)
    row["store_kb_per_session_min"] = round((size - bytes0) / 1024 / minutes, 2)
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
    "session store": ["sessions", "store", "store_writes_per_session_min", "store_kb_per_session_min"],
    "health": ["sessions", "wall_s", "bleed", "stale_frames", "failed_sessions", "server_rss_mb", "server_pss_mb"],
    "cpu (cores)": [
        "sessions",
        "cpu_hosts",
        "cpu_replicas",
        "cpu_proxy",
        "cpu_emulator",
        "cpu_ray_other",
        "cpu_loadgen",
        "cpu_vani",
        "vani_cpu_ms_per_session_s",
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
    ap.add_argument("--emulator-workers", type=int, default=1, help="emulator worker processes (one port)")
    ap.add_argument("--ingress", default="haproxy", choices=["proxy", "direct", "haproxy"])
    ap.add_argument("--name", default="bench_agent")
    ap.add_argument(
        "--store", default="sqlite", help="session_store: none | sqlite (default) | redis (a private server) | a URL"
    )
    ap.add_argument(
        "--event-log-entries", type=int, default=None, help="event_log_entries (0 = the event log off; default: vani's)"
    )
    ap.add_argument("--no-event-log-store", action="store_true", help="event_log_store=false: the log in memory only")
    ap.add_argument(
        "--otel", default="none", choices=["none", "otlp"], help="otlp: spans to an OTLP/HTTP receiver in this process"
    )
    args = ap.parse_args()
    extra: dict[str, Any] = {} if args.event_log_entries is None else {"event_log_entries": args.event_log_entries}
    if args.no_event_log_store:
        extra["event_log_store"] = False
    receiver = None
    if args.otel == "otlp":  # a real receiver (tests/support/otlp_receiver.py): decodes every export request
        from tests.support.otlp_receiver import OtlpHttpReceiver

        receiver = OtlpHttpReceiver()
        extra.update(otel_exporter="otlp", otel_endpoint=receiver.url)

    rows = []
    with (
        store_setting(args.store) as store,
        agent_stack(
            args.ingress, max(args.sessions), args.gateway_replicas, args.emulator_workers, session_store=store, **extra
        ) as (vani, emu, emu_pid),
    ):
        for n in args.sessions:
            rows.append(scenario(vani, emu, emu_pid, n, args))
            print(f"done: {n} sessions", file=sys.stderr, flush=True)
    title = f"agent pipeline on the emulators' default latency model, {args.chunk_ms} ms chunks, {args.ingress}"
    print(f"\n{title} (ms)")
    for name, cols in COLUMNS.items():
        print(f"\n{name}\n" + table(rows, cols))
    result: dict[str, Any] = {"args": vars(args), "latency_model": Latency().__dict__, "rows": rows}
    if receiver is not None:
        result["spans_received"] = len(receiver.spans.all())
        print(f"\nspans received over OTLP: {result['spans_received']}")
        receiver.close()
    path = write_json(args.name, result)
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
