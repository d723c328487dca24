"""Echo RTT, side by side in one run: a bare ``websockets`` echo server vs vani (echo delay 0).

At 1 and 100 concurrent sessions (``--sessions``), each streaming real-time numbered frames; reports
p50/p95/p99 RTT, the ms vani adds over the bare server at each percentile, frames/s, and the CPU and
RSS of vani's gateway and hosts. Targets: added p95 < 5 ms at 1 session, < 20 ms at 100 sessions.

    .venv/bin/python load/bench_rtt.py                      # default Serve HTTP proxy
    .venv/bin/python load/bench_rtt.py --ingress direct     # Serve direct ingress (replica ports)
    .venv/bin/python load/bench_rtt.py --url ws://127.0.0.1:8000   # a running `vani up` (echo_delay_ms=0!)

Everything runs on 127.0.0.1; the script starts (and stops) its own Ray unless ``--url`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from load.local_vani import free_port, local_vani  # noqa: E402
from load.report import cpu_seconds, memory_of, summarize, table, write_json  # noqa: E402
from load.streams import StreamSpec, run_sessions  # noqa: E402

TARGET_ADDED_P95_MS = {1: 5.0, 100: 20.0}
COLUMNS = [
    "target",
    "sessions",
    "frame_ms",
    "rtt_p50_ms",
    "rtt_p95_ms",
    "rtt_p99_ms",
    "added_p50_ms",
    "added_p95_ms",
    "added_p99_ms",
    "frames_per_s",
    "lost",
    "reordered",
    "vani_cpu_pct",
    "vani_rss_mb",
]


async def scenario(urls: list[str], n: int, spec: StreamSpec, vani: bool) -> tuple[dict[str, Any], float]:
    def url_for(sid: str) -> str:
        base = urls[hash(sid) % len(urls)]
        return f"{base}/v1/sessions/{sid}" if vani else base

    t0 = time.perf_counter()
    results = await run_sessions(url_for, n, StreamSpec(**{**spec.__dict__, "vani": vani}), ramp_s=min(5.0, n * 0.05))
    return summarize(results, time.perf_counter() - t0), time.perf_counter() - t0


def start_plain() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "load.plain_echo", "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # "plain echo on ..." once it listens
    return proc, f"ws://127.0.0.1:{port}"


def run(args: argparse.Namespace, vani_urls: list[str], vani_pids: list[int]) -> list[dict[str, Any]]:
    spec = StreamSpec(frame_ms=args.frame_ms, seconds=args.seconds)
    plain, plain_url = start_plain()
    rows: list[dict[str, Any]] = []
    try:
        for n in args.sessions:
            base, _ = asyncio.run(scenario([plain_url], n, spec, vani=False))
            rows.append({"target": "plain websockets", "sessions": n, "frame_ms": args.frame_ms, **base})
            c0 = cpu_seconds(vani_pids)
            res, wall = asyncio.run(scenario(vani_urls, n, spec, vani=True))
            cpu = (cpu_seconds(vani_pids) - c0) / wall * 100 if vani_pids else None
            added = {f"added_{p}_ms": _diff(res[f"rtt_{p}_ms"], base[f"rtt_{p}_ms"]) for p in ("p50", "p95", "p99")}
            row = {"target": f"vani ({args.ingress})", "sessions": n, "frame_ms": args.frame_ms, **res, **added}
            row["vani_cpu_pct"] = round(cpu, 1) if cpu is not None else None
            row["vani_rss_mb"] = memory_of(vani_pids)["rss_mb"] if vani_pids else None
            rows.append(row)
    finally:
        plain.kill()  # only the process this script started
        plain.wait()
    return rows


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def main() -> int:
    """Run the comparison, print the table, write ``load/results/bench_rtt_<ingress>_<frame>ms.json``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ingress", choices=["proxy", "direct", "haproxy"], default="haproxy")
    p.add_argument("--url", help="target a running vani (ws://host:port); its echo_delay_ms must be 0")
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 100])
    p.add_argument("--frame-ms", type=float, default=80.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--replicas", type=int, default=1, help="gateway replicas (direct/haproxy spread over them)")
    p.add_argument("--enforce", action="store_true", help="exit 1 if an added-p95 target or correctness is missed")
    args = p.parse_args()

    info: dict[str, Any] = {}
    if args.url:
        rows = run(args, [args.url.rstrip("/")], [])
    else:
        with local_vani(args.ingress, gateway_replicas=args.replicas) as v:
            urls = v.replica_urls()
            info = {"client_urls": urls, "http_url": v.http_url}
            print(f"vani ({args.ingress}) clients connect to {urls}", flush=True)
            rows = run(args, urls, v.gateway_pids() + v.host_pids())
    print(table(rows, COLUMNS))
    name = f"bench_rtt_{args.ingress}_{int(args.frame_ms)}ms"
    path = write_json(name, {"args": vars(args), "ingress": info, "rows": rows, "targets": TARGET_ADDED_P95_MS})
    print(f"wrote {path}  (2-core box shared with other work: numbers are noisy)")
    missed = [
        r
        for r in rows
        if r["target"].startswith("vani")
        and (
            r["lost"]
            or r["reordered"]
            or (r["added_p95_ms"] or 0) > TARGET_ADDED_P95_MS.get(r["sessions"], float("inf"))
        )
    ]
    for r in missed:
        print(f"MISSED: {r['sessions']} sessions added p95 {r['added_p95_ms']} ms, lost {r['lost']}", file=sys.stderr)
    return 1 if args.enforce and missed else 0


if __name__ == "__main__":
    sys.exit(main())
