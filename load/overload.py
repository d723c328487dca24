"""Overload run: more real-time echo sessions than the box can serve, through the default path.

Issue 10 item 3: under overload vani must slow down and refuse NEW sessions with 1013, never close a
live real-time session as a flood (1008) or for a late keepalive pong (1005/1006). Starts a private vani
with the shipped defaults for the flood guard and admission by load (unlike the RTT benchmarks, which
turn the flood guard off), runs ``--sessions`` real-time 80 ms echo sessions, and tallies how each ended.

    .venv/bin/python load/overload.py --sessions 200 --seconds 60
    .venv/bin/python load/overload.py --url ws://127.0.0.1:8000   # a running `vani up` (echo mode)

Exits 1 if any session was closed with 1008, 1005 or 1006, or any refusal was not a 1013.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from load.report import summarize, table, write_json  # noqa: E402
from load.streams import StreamResult, StreamSpec, add_stream_args, echo_sessions  # noqa: E402

KILLED = {1005, 1006, 1008}


def outcome(r: StreamResult) -> str:
    """How one session ended: ``ok``, ``refused <code>`` (never admitted) or ``closed <code>``."""
    if r.start_ms is None:
        return f"refused {r.close_code}"
    if r.error is None:
        return "ok"
    return f"closed {r.close_code}"


async def run(base: str, args: argparse.Namespace) -> dict[str, Any]:
    spec = StreamSpec(frame_ms=args.frame_ms, seconds=args.seconds, drain_s=60, open_timeout_s=60)
    t0 = time.perf_counter()
    results = await echo_sessions(base, args.sessions, spec, ramp_s=args.ramp_s)
    counts = collections.Counter(outcome(r) for r in results)
    admitted = [r for r in results if r.start_ms is not None]
    summary = summarize(admitted, time.perf_counter() - t0) if admitted else {}
    return {"outcomes": dict(counts), "summary": summary}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stream_args(p, sessions=200)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--ramp-s", type=float, default=10.0)
    args = p.parse_args()
    if args.url:
        out = asyncio.run(run(args.url.rstrip("/"), args))
    else:
        from load.local_vani import local_vani
        from vani.cluster.config import Settings

        shipped = Settings()  # the defaults `vani up` runs with
        with local_vani(
            "proxy", flood_burst_s=shipped.flood_burst_s, flood_rate=shipped.flood_rate, echo_delay_ms=0
        ) as v:
            out = asyncio.run(run(v.ws_base, args))
    print(table([{"outcome": k, "sessions": n} for k, n in sorted(out["outcomes"].items())], ["outcome", "sessions"]))
    s = out["summary"]
    if s:
        print(table([s], ["sessions", "sent", "lost", "reordered", "rtt_p50_ms", "rtt_p95_ms", "rtt_p99_ms"]))
    path = write_json("overload", {"args": vars(args), **out})
    print(f"wrote {path}")
    bad = {k: n for k, n in out["outcomes"].items() if k != "ok" and k != "refused 1013"}
    killed = {k: n for k, n in bad.items() if k.split()[-1] in {str(c) for c in KILLED}}
    if bad:
        print(f"OVERLOAD FAILED: {bad} (killed live sessions: {killed})", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
