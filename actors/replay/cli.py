"""``vani replay LOG [--set KEY=VALUE ...]``.

Without ``--set``: re-run the session from its log and compare its outputs with the logged ones
(``compare.py``); the same -> exit 0; else print the first divergent output with what came before it, and
exit 1. With ``--set``: replay as logged and again with the changes, and print the diff of the two stories
(a faithful replay is the baseline, so only the change shows); exit 0. A log that cannot be replayed
(``log_file.LogError``: the line is named) -> exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
from typing import Any

from vani.actors.replay import compare, driver, log_file

CONTEXT = 3  # outputs shown before a divergence


def parse_changes(items: list[str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise log_file.LogError(f"--set takes KEY=VALUE, not {item!r}")
        changes[key.strip()] = value
    return changes


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        runs = log_file.read_runs(args.log)
        changes = parse_changes(args.changes)
        for log in runs:
            driver.replay_settings(log, changes)  # a bad setting fails here, before any replay
    except (log_file.LogError, ValueError) as exc:
        print(f"vani replay: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"vani replay: {args.log}: {exc.strerror}", file=sys.stderr)
        return 2
    worst = 0
    for number, log in enumerate(runs, start=1):
        name = args.log if len(runs) == 1 else f"{args.log} run {number} of {len(runs)}"
        worst = max(worst, show_change(log, changes) if changes else replay_one(name, log, args.tolerance_ms))
    return worst


def replay_one(name: str, log: log_file.SessionLog, tolerance_ms: float) -> int:
    replayed = asyncio.run(driver.run(log))
    found = compare.first_divergence(log.outputs(), replayed, tolerance_ms, cut=bool(log.header.get("cut")))
    inputs = sum(e["k"] in driver.DRIVEN for e in log.entries)
    if found is None:
        print(f"{name}: {inputs} inputs replayed, {len(replayed)} outputs: the same as logged")
        return 0
    print(f"{name}:")
    report(log.outputs(), found)
    return 1


def report(logged: list[dict[str, Any]], found: compare.Divergence) -> None:
    print(f"replay differs at output {found.index} (stream {found.stream!r}):")
    for e in logged[max(0, found.index - CONTEXT) : found.index]:
        print(f"    t={e['t']:.3f}  {compare.line(e)}")
    print(f"  logged:   {'(nothing more)' if found.logged is None else compare.line(found.logged)}")
    print(f"  replayed: {'(nothing more)' if found.replayed is None else compare.line(found.replayed)}")


def show_change(log: log_file.SessionLog, changes: dict[str, Any]) -> int:
    async def both() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await driver.run(log), await driver.run(log, changes)

    base, changed = asyncio.run(both())
    label = " ".join(f"{k}={v}" for k, v in changes.items())
    diff = list(difflib.unified_diff(compare.story(base), compare.story(changed), "as logged", label, lineterm=""))
    print("\n".join(diff) if diff else f"no output changes with {label}")
    return 0
