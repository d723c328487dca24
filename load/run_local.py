"""Run a private vani for external load tools (Locust) until SIGTERM/Ctrl-C; prints its websocket URL.

Like ``vani up`` but always on a new, private Ray on 127.0.0.1 (never joins another cluster on the box)
and with benchmark defaults (echo delay 0, flood guard off):

    .venv/bin/python load/run_local.py --ingress proxy --port 8011 &

``--agent``: agent sessions on the provider emulators (default latency model, ``--emulator-workers``
processes), as ``bench_agent``; also prints ``EMULATOR <url>`` for Locust's ``--emulator``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from load.local_vani import local_vani  # noqa: E402


def main() -> int:
    """Start, print ``ws://...`` (and replica URLs in direct mode), wait for a signal, stop everything."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ingress", choices=["proxy", "direct", "haproxy"], default="haproxy")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--mode", choices=["sharded", "actor"], default="sharded")
    p.add_argument("--agent", action="store_true", help="agent sessions on the provider emulators")
    p.add_argument("--emulator-workers", type=int, default=1)
    p.add_argument("--max-sessions", type=int, default=1000)
    args = p.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    overrides = {"http_port": args.port} if args.port else {}
    if args.agent:
        from load.agent_stack import agent_stack

        stack = agent_stack(
            args.ingress, args.max_sessions, 1, args.emulator_workers, placement_mode=args.mode, **overrides
        )
        with stack as (v, emu, _pid):
            print(f"READY {' '.join(v.replica_urls())} EMULATOR {emu}", flush=True)
            stop.wait()
        return 0
    with local_vani(args.ingress, placement_mode=args.mode, **overrides) as v:
        print(f"READY {' '.join(v.replica_urls())}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
