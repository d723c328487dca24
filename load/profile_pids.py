"""Profile a running vani with py-spy: wait for the session hosts and gateway replicas, record each, aggregate.

Used for issue 12's CPU work, next to a ``bench_agent`` run (start this first, then the bench):

    python -m load.profile_pids --delay 40 --duration 20 --out /tmp/prof
    python -m load.profile_pids --aggregate /tmp/prof/*.txt

py-spy's raw format has one line per distinct stack: ``frame;frame;... count``, each frame
``function (file:line)``. The aggregate says which library/package owns the innermost frame and which vani
function is innermost, as shares of all samples of the process.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil

NAMES = ("ray::SessionHost", "ray::ServeReplica:vani")
FRAME = re.compile(r"^(?P<fn>.*) \((?P<file>[^:()]*)(?::\d+)?\)$")


def find_pids(deadline: float, parent: int) -> dict[int, str]:
    """The hosts and replicas under ``parent`` (the bench process: its local Ray's raylet is its child)."""
    while time.time() < deadline:
        found: dict[int, str] = {}
        try:
            procs = psutil.Process(parent).children(recursive=True)
        except psutil.NoSuchProcess:
            return {}
        for p in procs:
            try:
                cmd = " ".join(p.cmdline())
            except psutil.NoSuchProcess:
                continue
            for n in NAMES:
                if cmd.startswith(n):
                    found[p.pid] = n.split("::")[1].split(":")[0]
        if sum(1 for v in found.values() if v == "SessionHost") >= 1 and "ServeReplica" in found.values():
            return found
        time.sleep(1)
    return {}


def record(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pids = find_pids(time.time() + 300, args.parent)
    time.sleep(args.delay)
    procs = []
    for pid, kind in pids.items():
        f = out / f"{kind}_{pid}.txt"
        cmd = [args.py_spy, "record", "-d", str(args.duration), "-r", "50", "-p", str(pid)]
        cmd += ["--format", "raw", "--nonblocking", "-o", str(f)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in procs:
        p.wait()
    print("recorded", {str(k): v for k, v in pids.items()})


# Innermost frames of threads that wait in C (no Python above them runs): uvloop's select in the actor's
# and the replica's loop threads, Ray's task loop on the main thread.
IDLE = frozenset({"Worker.main_loop", "Thread.run", "UserCallableWrapper.__init__.<locals>._run_user_code_event_loop"})
VANI = ("actors/", "gateway/", "adapters/", "cluster/")


def owner(path: str) -> str:
    """py-spy shortens paths to their module path: ``ray/actor.py``, ``actors/session/host.py``, ``json/encoder.py``."""
    path = path.split("site-packages/", 1)[-1].split("python3.11/", 1)[-1]
    if path.startswith(VANI):
        parts = path.split("/")
        return "vani " + "/".join(parts[:2] if len(parts) > 2 else parts[:1])
    return path.split("/", 1)[0].removesuffix(".py") or "?"


def aggregate(files: list[str], top: int, within: str = "") -> None:
    for name in files:
        by_owner: collections.Counter[str] = collections.Counter()
        by_vani: collections.Counter[str] = collections.Counter()
        by_fn: collections.Counter[str] = collections.Counter()
        total = idle = 0
        under: collections.Counter[str] = collections.Counter()
        for line in Path(name).read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if not n.isdigit():
                continue
            count = int(n)
            frames = [FRAME.match(f) for f in stack.split(";")]
            frames = [m for m in frames if m]
            if not frames:
                continue
            inner = frames[-1]
            if inner["fn"] in IDLE:  # a thread blocked in C (uvloop's select, Ray's task wait): not CPU
                idle += count
                continue
            total += count
            by_owner[owner(inner["file"])] += count
            by_fn[f"{inner['fn']} ({owner(inner['file'])})"] += count
            if within and any(within in m["fn"] for m in frames):
                start = max(i for i, m in enumerate(frames) if within in m["fn"])
                for m in frames[start + 1 :]:
                    under[owner(m["file"])] += count
                under["(samples)"] += count
            for m in reversed(frames):
                if owner(m["file"]).startswith("vani"):
                    by_vani[f"{m['fn']} ({m['file']})"] += count
                    break
        print(f"== {name}: {total} busy samples ({idle} idle samples left out)")
        tables = [("innermost package", by_owner), ("innermost vani frame", by_vani), ("innermost fn", by_fn)]
        if within:
            tables.append((f"packages on the stack under {within} (inclusive)", under))
        for title, c in tables:
            print(f"-- {title}")
            for k, v in c.most_common(top):
                print(f"  {100 * v / total:5.1f} %  {k}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/prof")
    ap.add_argument("--parent", type=int, default=0, help="pid of the bench process")
    ap.add_argument("--delay", type=float, default=40.0, help="seconds after the processes appear")
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--py-spy", default=str(Path(sys.executable).parent / "py-spy"))
    ap.add_argument("--aggregate", nargs="*")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--within", default="", help="also break down what runs under this function")
    args = ap.parse_args()
    if args.aggregate:
        aggregate(args.aggregate, args.top, args.within)
    else:
        record(args)


if __name__ == "__main__":
    main()
