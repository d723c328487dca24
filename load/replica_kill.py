"""Kill a gateway replica mid-run: only its connections drop, and each resumes its session with its token.

Issue 12 "bad input at scale". Starts a private vani on Serve's HAProxy ingress with 2 gateway replicas,
streams ``--sessions`` real-time echo sessions of numbered frames (load/resumable.py: each client resumes
with its token when its connection drops), kills one gateway replica with ``ray.kill`` ``--kill-at``
seconds into the run, and ``--new-after-s`` seconds after the kill opens ``--new-sessions`` fresh sessions.

Verdict (exit 1 if any fails):
  - the dropped sessions are exactly the ones whose ``session.started.gateway`` was the killed replica;
  - every dropped session resumed (``resumed: true``, same session id) with no reordered, duplicate or
    corrupt frame (frames in flight in the killed process are counted as lost, not hidden);
  - every session on the surviving replica: no drop, 0 lost, 0 reordered;
  - every new session after the kill was served (admitted and echoed every frame).

    PYTHONPATH=$PWD/.shim .venv/bin/python -m load.replica_kill --sessions 60 --seconds 30
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

from load.report import pct, table, write_json  # noqa: E402
from load.resumable import ResumableResult, resumable_stream  # noqa: E402


def kill_replica(app: str, unique_id: str) -> None:
    """``ray.kill`` the gateway replica actor with this id (``session.started.gateway``). Serve names it
    ``SERVE_REPLICA::<app>#<deployment>#<id>``; matched on app and id, whatever the deployment is called."""
    import ray

    names = ray.util.list_named_actors(all_namespaces=True)
    prefix, suffix = f"SERVE_REPLICA::{app}#", f"#{unique_id}"
    found = [a for a in names if a["name"].startswith(prefix) and a["name"].endswith(suffix)]
    assert len(found) == 1, f"replica {unique_id} of {app}: {[a['name'] for a in names]}"
    ray.kill(ray.get_actor(found[0]["name"], namespace=found[0]["namespace"]), no_restart=True)


def verdict(
    old: list[ResumableResult], new: list[ResumableResult], killed: str, new_started_s: float
) -> dict[str, Any]:
    """Which sessions dropped against which were on the killed replica, and how each group fared."""
    on_killed = {r.session_id for r in old if r.gateways[:1] == [killed]}
    dropped = {r.session_id for r in old if r.drops}
    victims = [r for r in old if r.session_id in on_killed]
    survivors = [r for r in old if r.session_id not in on_killed]
    resume_ms = [ms for r in victims for ms in r.resume_ms]
    row = {
        "sessions": len(old),
        "replicas_seen": len({r.gateways[0] for r in old if r.gateways}),
        "on_killed": len(on_killed),
        "dropped": len(dropped),
        "dropped_not_on_killed": len(dropped - on_killed),
        "resumed": sum(1 for r in victims if r.drops and r.resumed_ok and r.error is None),
        "victims_lost_frames": sum(r.lost for r in victims),
        "victims_unclean": sum(1 for r in victims if not r.clean),
        "resume_p50_ms": pct(resume_ms, 50),
        "resume_max_ms": max(resume_ms) if resume_ms else None,
        "reconnect_failed_attempts": sum(r.failed_connects for r in victims),
        "survivors": len(survivors),
        "survivors_lost": sum(r.lost for r in survivors),
        "survivors_reordered": sum(r.reordered for r in survivors),
        "survivors_failed": sum(1 for r in survivors if r.drops or r.lost or not r.clean),
        "new_sessions": len(new),
        "new_started_after_kill_s": round(new_started_s, 1),
        "new_failed": sum(1 for r in new if r.drops or r.lost or not r.clean),
        "new_failed_attempts": sum(r.failed_connects for r in new),
        "new_replicas": sorted({g for r in new for g in r.gateways}),
        "errors": sorted({r.error for r in old + new if r.error})[:5],
    }
    row["ok"] = (
        dropped == on_killed
        and row["resumed"] == len(on_killed) > 0
        and row["victims_unclean"] == 0
        and row["survivors_failed"] == 0
        and row["new_failed"] == 0
    )
    return row


async def run(base: str, app: str, args: argparse.Namespace) -> dict[str, Any]:
    tag = f"rk{int(time.time()) % 100000}"

    async def stream(res: ResumableResult, delay_s: float, seconds: float) -> ResumableResult:
        await asyncio.sleep(delay_s)
        return await resumable_stream(base, res, args.frame_ms, seconds)

    old = [ResumableResult(f"{tag}-old-{i}") for i in range(args.sessions)]
    delays = [args.ramp_s * i / args.sessions for i in range(args.sessions)]
    old_tasks = [asyncio.create_task(stream(r, d, args.seconds)) for r, d in zip(old, delays, strict=True)]
    await asyncio.wait_for(asyncio.gather(*(r.started.wait() for r in old)), args.kill_at + 60)
    await asyncio.sleep(max(0.0, args.kill_at - args.ramp_s))
    by_replica = collections.Counter(r.gateways[0] for r in old if r.gateways)
    print(f"sessions per replica before the kill: {dict(by_replica)}", flush=True)
    killed = old[0].gateways[0] if old[0].gateways else ""
    if killed:
        await asyncio.to_thread(kill_replica, app, killed)
    t_kill = time.monotonic()
    print(f"killed replica {killed}", flush=True)
    await asyncio.sleep(args.new_after_s)
    new = [ResumableResult(f"{tag}-new-{i}") for i in range(args.new_sessions)]
    new_started_s = time.monotonic() - t_kill
    await asyncio.gather(*old_tasks, *(stream(r, 0.1 * i, args.new_seconds) for i, r in enumerate(new)))
    row = verdict(old, new, killed, new_started_s)
    return {
        "row": row,
        "killed": killed,
        "per_replica_before": dict(by_replica),
        "sessions": [r.summary() for r in old + new],
    }


COLUMNS = [
    "sessions",
    "replicas_seen",
    "on_killed",
    "dropped",
    "dropped_not_on_killed",
    "resumed",
    "victims_lost_frames",
    "victims_unclean",
    "resume_p50_ms",
    "resume_max_ms",
    "survivors",
    "survivors_lost",
    "survivors_reordered",
    "survivors_failed",
    "new_sessions",
    "new_failed",
    "new_failed_attempts",
    "ok",
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=60)
    p.add_argument("--seconds", type=float, default=30.0, help="how long each first-wave session streams")
    p.add_argument("--frame-ms", type=float, default=80.0)
    p.add_argument("--ramp-s", type=float, default=5.0)
    p.add_argument("--kill-at", type=float, default=12.0, help="seconds after the first connect")
    p.add_argument("--new-after-s", type=float, default=3.0, help="new sessions start this long after the kill")
    p.add_argument("--new-sessions", type=int, default=10)
    p.add_argument("--new-seconds", type=float, default=8.0)
    p.add_argument("--name", default="replica_kill")
    args = p.parse_args()
    from load.local_vani import local_vani

    with local_vani("haproxy", gateway_replicas=2) as v:
        out = asyncio.run(run(v.ws_base, v.settings.app_name, args))
    row = out["row"]
    print(table([row], COLUMNS))
    if row["errors"]:
        print(f"errors: {row['errors']}")
    path = write_json(args.name, {"args": vars(args), **out})
    print(f"wrote {path}")
    if not row["ok"]:
        print("REPLICA KILL FAILED (see the row above)", file=sys.stderr)
    return 0 if row["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
