"""Placement modes side by side: ``sharded`` (a few hosts per node, many sessions each) vs ``actor``
(one detached actor per session). For each mode, sessions are opened in batches and held open until a
cap, a time budget or the first refusal; per batch we record session start latency (connect ->
``session.started``) and the memory of the session hosts and the gateway. Reported:

  per-session memory  PSS/USS growth per session (sharded: host + gateway; actor: also the mean
                      PSS/USS of one session actor process, which is the real cost)
  start latency       p50/p95 over all sessions, and of the last batch (does it degrade?)
  max sessions        how many were reached in the budget, and a memory-bound estimate for this box

    .venv/bin/python load/bench_placement.py                        # both modes, default caps
    .venv/bin/python load/bench_placement.py --modes actor --actor-cap 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

from load.local_vani import LocalVani, local_vani  # noqa: E402
from load.report import cpu_percent_of, memory_of, pct, table, write_json  # noqa: E402


async def open_session(base: str, sid: str) -> tuple[ClientConnection | None, float, str | None]:
    t0 = time.perf_counter()
    try:
        ws = await connect(f"{base}/v1/sessions/{sid}", compression=None, open_timeout=120)
        first = json.loads(await asyncio.wait_for(ws.recv(), 120))
    except Exception as exc:
        return None, 0.0, repr(exc)
    if first.get("type") != "session.started":
        await ws.close()
        return None, 0.0, f"refused: {first}"
    return ws, (time.perf_counter() - t0) * 1000, None


async def ramp(v: LocalVani, mode: str, cap: int, batch: int, budget_s: float) -> dict[str, Any]:
    base = v.ws_base
    gw_pids = v.gateway_pids()
    base_hosts = v.host_pids()
    mem0 = memory_of(base_hosts + gw_pids)
    open_ws: list[ClientConnection] = []
    starts: list[float] = []
    batches: list[dict[str, Any]] = []
    error: str | None = None
    t0 = time.perf_counter()
    try:
        while len(open_ws) < cap and time.perf_counter() - t0 < budget_s:
            n = min(batch, cap - len(open_ws))
            got = await asyncio.gather(*(open_session(base, f"pl-{mode}-{len(open_ws) + i}") for i in range(n)))
            batch_starts = [ms for ws, ms, err in got if ws is not None]
            open_ws += [ws for ws, _, _ in got if ws is not None]
            starts += batch_starts
            errors = [err for ws, _, err in got if err]
            hosts = await asyncio.to_thread(v.host_pids)
            mem = memory_of(hosts + gw_pids)
            batches.append(
                {
                    "sessions": len(open_ws),
                    "batch_start_p50_ms": pct(batch_starts, 50),
                    "batch_start_p95_ms": pct(batch_starts, 95),
                    "elapsed_s": round(time.perf_counter() - t0, 1),
                    **mem,
                }
            )
            print(f"  {mode}: {batches[-1]}", flush=True)
            if errors:
                error = errors[0]
                break
        hosts = await asyncio.to_thread(v.host_pids)
        idle_cpu = await asyncio.to_thread(cpu_percent_of, hosts, 3.0)
        per_proc = [memory_of([pid]) for pid in hosts] if mode == "actor" else []
    finally:
        for ws in open_ws:
            with contextlib.suppress(Exception):
                await ws.send('{"type": "close"}')
                await ws.close()
    n = len(open_ws)
    last = batches[-1] if batches else {}
    row: dict[str, Any] = {
        "mode": mode,
        "sessions_reached": n,
        "seconds": round(time.perf_counter() - t0, 1),
        "stopped_by": error or ("cap" if n >= cap else "time budget"),
        "start_p50_ms": pct(starts, 50),
        "start_p95_ms": pct(starts, 95),
        "last_batch_start_p95_ms": last.get("batch_start_p95_ms"),
        "pss_per_session_kb": round((last.get("pss_mb", 0) - mem0["pss_mb"]) * 1024 / n, 1) if n else None,
        "uss_per_session_kb": round((last.get("uss_mb", 0) - mem0["uss_mb"]) * 1024 / n, 1) if n else None,
        "idle_host_cpu_pct": idle_cpu,
        "idle_cpu_pct_per_session": round(idle_cpu / n, 3) if n else None,
    }
    if per_proc:
        row["actor_pss_mb_mean"] = round(sum(m["pss_mb"] for m in per_proc) / len(per_proc), 1)
        row["actor_uss_mb_mean"] = round(sum(m["uss_mb"] for m in per_proc) / len(per_proc), 1)
    avail_kb = psutil.virtual_memory().available / 1024
    if row["pss_per_session_kb"]:
        row["memory_bound_sessions"] = int(avail_kb / max(row["pss_per_session_kb"], 1e-3))
    return {"row": row, "batches": batches}


def main() -> int:
    """Ramp each mode, print the comparison, write ``load/results/bench_placement.json``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", nargs="+", choices=["sharded", "actor"], default=["sharded", "actor"])
    p.add_argument("--sharded-cap", type=int, default=1000)
    p.add_argument("--actor-cap", type=int, default=60)
    p.add_argument("--budget-s", type=float, default=180.0, help="per mode")
    args = p.parse_args()
    out: dict[str, Any] = {}
    for mode in args.modes:
        cap = args.sharded_cap if mode == "sharded" else args.actor_cap
        batch = 100 if mode == "sharded" else 10
        with local_vani("proxy", placement_mode=mode, max_sessions=cap + 10, echo_delay_ms=0) as v:
            out[mode] = asyncio.run(ramp(v, mode, cap, batch, args.budget_s))
    rows = [out[m]["row"] for m in args.modes]
    cols = ["mode", "sessions_reached", "seconds", "stopped_by", "start_p50_ms", "start_p95_ms"]
    cols += ["last_batch_start_p95_ms", "pss_per_session_kb", "uss_per_session_kb", "actor_pss_mb_mean"]
    cols += ["actor_uss_mb_mean", "idle_cpu_pct_per_session", "memory_bound_sessions"]
    print(table(rows, cols))
    path = write_json("bench_placement", {"args": vars(args), "modes": out})
    print(f"wrote {path}  (2-core box shared with other work: timings are noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
