"""``vani sessions export ID [--stored]``: a session's event log from a running cluster, to a file.

It joins the cluster as a Ray driver (so Ray's own authentication decides who may: no HTTP endpoint hands
out conversations), asks the app's registry where the session lives, and asks that host for the log in its
memory. With ``--stored``, or when the session is on no host (its host died and it has not come back yet),
it reads the log's runs from the session store instead, through the app's hosts (with SQLite, only the
hosts of the session's node can). Only live or suspended sessions have a log: a closed session's log goes
with it (docs/event-log.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def cmd_export(args: argparse.Namespace) -> int:
    import ray

    from vani.actors.control.placement import registry_name

    ray.init(address=args.address, namespace=args.namespace, log_to_driver=False, logging_level="ERROR")
    try:
        try:
            registry = ray.get_actor(registry_name(args.app), namespace=args.namespace)
        except ValueError:
            print(f"vani sessions export: no app {args.app!r} on this cluster", file=sys.stderr)
            return 1
        where = None if args.stored else ray.get(registry.where.remote(args.session_id))
        lines = None
        if where is not None:
            try:
                host = ray.get_actor(where["host"], namespace=args.namespace)
                lines = ray.get(host.event_log.remote(args.session_id), timeout=60)
            except Exception:  # the host just died (or is restarting): its sessions' logs are in the store
                lines = None
        if lines is None:
            lines = from_store(registry, args)
        if lines is None:
            print(f"vani sessions export: no live session {args.session_id!r} in {args.app!r}", file=sys.stderr)
            return 1
    finally:
        ray.shutdown()
    path = args.output or f"{args.session_id}.events.jsonl"
    # The log holds what was said: readable by this user only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    runs = sum(1 for line in lines if line.startswith('{"format"'))
    print(
        f"{path}: {len(lines) - runs} entries of session {args.session_id}" + (f" in {runs} runs" if runs > 1 else "")
    )
    return 0


def from_store(registry: Any, args: argparse.Namespace) -> list[str] | None:
    """The session's stored runs, from the first host that has them."""
    import ray

    from vani.actors.replay.log_file import stored_runs

    for stats in ray.get(registry.host_stats.remote()):
        try:
            host = ray.get_actor(stats["name"], namespace=args.namespace)
            raw = ray.get(host.event_log.remote(args.session_id, stored=True), timeout=60)
        except Exception:  # a host that is gone or cannot read the store: ask the next
            continue
        if raw:
            lines, orphans = stored_runs(raw)
            if orphans:
                print(
                    f"vani sessions export: the store kept only the log's last lines ({orphans} before the first run"
                    " header left out); raise event_log_entries",
                    file=sys.stderr,
                )
            return lines or None
    return None
