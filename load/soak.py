"""Duplex soak: N sessions stream real-time numbered frames for M minutes; 0 lost / 0 reordered, flat RSS.

The RSS of vani's processes (gateway replicas, Serve proxy, session hosts) is sampled every
``--sample-s`` seconds; the slope (least squares, MB per minute, after the first minute of warm-up) is
the leak signal. Exits 1 if a frame was lost, duplicated, reordered or corrupted, or the slope exceeds
``--max-slope``.

    .venv/bin/python load/soak.py                         # 10 sessions x 10 min, private local vani
    .venv/bin/python load/soak.py --sessions 50 --minutes 2 --frame-ms 20
    .venv/bin/python load/soak.py --url ws://127.0.0.1:8000   # a running `vani up` (no RSS: not our PIDs)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from load.local_vani import local_vani  # noqa: E402
from load.report import memory_of, summarize, table, write_json  # noqa: E402
from load.streams import StreamSpec, add_stream_args, echo_sessions  # noqa: E402


def slope_per_minute(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(m for _, m in samples) / n
    var = sum((t - mx) ** 2 for t, _ in samples)
    if var == 0:
        return None
    return sum((t - mx) * (m - my) for t, m in samples) / var * 60.0


async def soak(base: str, pids: list[int], args: argparse.Namespace) -> dict[str, Any]:
    spec = StreamSpec(frame_ms=args.frame_ms, seconds=args.minutes * 60, drain_s=30)
    samples: list[dict[str, float]] = []
    t0 = time.perf_counter()

    async def sample() -> None:
        while True:
            if pids:
                mem = await asyncio.to_thread(memory_of, pids)
                samples.append({"t_s": round(time.perf_counter() - t0, 1), **mem})
            await asyncio.sleep(args.sample_s)

    sampler = asyncio.create_task(sample())
    try:
        results = await echo_sessions(base, args.sessions, spec, ramp_s=min(10.0, args.sessions * 0.1))
    finally:
        sampler.cancel()
    summary = summarize(results, time.perf_counter() - t0)
    warm = [(s["t_s"], s["rss_mb"]) for s in samples if s["t_s"] >= 60] or [(s["t_s"], s["rss_mb"]) for s in samples]
    warm_pss = [(s["t_s"], s["pss_mb"]) for s in samples if s["t_s"] >= 60]
    summary["rss_start_mb"] = samples[0]["rss_mb"] if samples else None
    summary["rss_end_mb"] = samples[-1]["rss_mb"] if samples else None
    summary["rss_slope_mb_per_min"] = _round(slope_per_minute(warm))
    summary["pss_slope_mb_per_min"] = _round(slope_per_minute(warm_pss))
    return {"summary": summary, "rss_samples": samples}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def main() -> int:
    """Run the soak, print the table, write ``load/results/soak.json``; exit 1 on loss or RSS growth."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stream_args(p, sessions=10)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--max-slope", type=float, default=2.0, help="MB/min of summed RSS counted as a leak")
    p.add_argument("--mode", choices=["sharded", "actor"], default="sharded")
    args = p.parse_args()

    if args.url:
        out = asyncio.run(soak(args.url.rstrip("/"), [], args))
    else:
        with local_vani("proxy", placement_mode=args.mode) as v:
            out = asyncio.run(soak(v.ws_base, v.gateway_pids() + v.host_pids(), args))
    s = out["summary"]
    cols = ["sessions", "sent", "lost", "reordered", "duplicates", "rtt_p50_ms", "rtt_p95_ms", "rtt_p99_ms"]
    cols += ["frames_per_s", "rss_start_mb", "rss_end_mb", "rss_slope_mb_per_min", "pss_slope_mb_per_min"]
    print(table([s], cols))
    path = write_json("soak", {"args": vars(args), **out})
    print(f"wrote {path}  (2-core box shared with other work: latency numbers are noisy)")
    failures = []
    if s["lost"] or s["reordered"] or s["duplicates"] or s["corrupt"] or s["errors"]:
        failures.append(
            f"frames: lost {s['lost']} reordered {s['reordered']} dup {s['duplicates']} errors {s['errors']}"
        )
    if s["rss_slope_mb_per_min"] is not None and s["rss_slope_mb_per_min"] > args.max_slope:
        failures.append(f"RSS grows {s['rss_slope_mb_per_min']} MB/min (> {args.max_slope})")
    for f in failures:
        print(f"SOAK FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
