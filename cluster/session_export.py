"""``vani sessions export ID``: a live session's event log from a running cluster, to a file.

It joins the cluster as a Ray driver (so Ray's own authentication decides who may: no HTTP endpoint hands
out conversations), asks the app's registry where the session lives, and asks that host for the log. Only
live or suspended sessions have one: a closed session's log goes with it (docs/event-log.md).
"""

from __future__ import annotations

import argparse
import os
import sys


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
        where = ray.get(registry.where.remote(args.session_id))
        if where is None:
            print(f"vani sessions export: no live session {args.session_id!r} in {args.app!r}", file=sys.stderr)
            return 1
        host = ray.get_actor(where["host"], namespace=args.namespace)
        lines = ray.get(host.event_log.remote(args.session_id))
        if lines is None:
            print(f"vani sessions export: {args.session_id!r} left its host meanwhile", file=sys.stderr)
            return 1
    finally:
        ray.shutdown()
    path = args.output or f"{args.session_id}.events.jsonl"
    # The log holds what was said: readable by this user only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"{path}: {len(lines) - 1} entries of session {args.session_id}")
    return 0
