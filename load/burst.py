"""Connect burst: N WebSocket connects spread over S seconds, each answered by a session or a clean 1013.

Issue 12 "bad input at scale": a burst of 1 000 connects in 5 s gets either a session or a clean 1013 each,
nothing hangs. Starts a private vani (HAProxy ingress, 2 gateway replicas) per ``--max-sessions`` value,
fires the connects from ``--procs`` client processes on one shared schedule, and records for each connect
how it was answered and how long that took (connect call -> ``session.started`` or the close):

  session            ``session.started`` (held open until the burst is over, then closed with ``close``)
  1013 <reason>      refused: max sessions, or "try again later: overloaded"
  hung               no answer within ``--hang-s``
  anything else      another close code, an HTTP status, a refused TCP connect, an admitted session that
                     was closed before the client said goodbye

Echo sessions: the burst tests the transport and admission (gateway, registry, session hosts), and an echo
session costs nothing once admitted, so the box's CPU goes to accepting, placing and refusing connects. An
agent session would open provider streams too, and the burst would mostly measure the provider emulator.

    PYTHONPATH=$PWD/.shim .venv/bin/python -m load.burst --connects 1000 --seconds 5 --max-sessions 500 1000

Exits 1 if any connect hung or was answered with anything but a session or a 1013.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import multiprocessing as mp
import resource
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from load.report import pct, table, write_json  # noqa: E402

SESSION, REFUSED, HUNG = "session", "1013", "hung"


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit: the clients, HAProxy and the replicas hold a socket each."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def one_connect(
    url: str, hang_s: float, release: asyncio.Event, on_answer: Callable[[], None] = lambda: None
) -> dict[str, Any]:
    """Open one session: ``{"outcome", "answer_ms", "reason"}``; ``on_answer()`` runs once it is answered
    (or counted as hung). Admitted sessions stay open until ``release`` is set, so the burst really holds
    that many sessions at once; returns once the connection is over."""
    t0 = time.perf_counter()
    out: dict[str, Any] = {"outcome": HUNG, "answer_ms": None, "reason": ""}

    def answered(outcome: str, reason: str = "") -> None:
        out.update(outcome=outcome, reason=reason, answer_ms=round((time.perf_counter() - t0) * 1000, 1))
        on_answer()

    try:
        async with asyncio.timeout(hang_s):
            ws = await connect(url, open_timeout=None, ping_interval=None, compression=None, close_timeout=5)
            first = await ws.recv()
    except TimeoutError:
        on_answer()
        return out
    except ConnectionClosed as exc:
        code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (1006, "no close frame")
        answered(REFUSED if code == 1013 else f"closed {code}", reason)
        return out
    except InvalidStatus as exc:
        answered(f"http {exc.response.status_code}")
        return out
    except Exception as exc:  # a refused TCP connect, a broken handshake...: an answer, and a bad one
        answered(f"error {type(exc).__name__}", str(exc)[:80])
        return out
    msg = json.loads(first) if isinstance(first, str) else {}
    if msg.get("type") != "session.started":
        answered(f"first message {msg.get('type')!r}")
        await ws.close()
        return out
    answered(SESSION)
    # Held open until our goodbye: events may come (state changes), a close must not.
    reader = asyncio.create_task(_drain(ws))
    released = asyncio.create_task(release.wait())
    await asyncio.wait({reader, released}, return_when=asyncio.FIRST_COMPLETED)
    released.cancel()
    if reader.done():
        out["outcome"] = f"session, then closed {ws.close_code}"
    reader.cancel()
    try:
        await ws.send(json.dumps({"type": "close"}))
        await ws.close()
    except ConnectionClosed:
        pass
    return out


async def _drain(ws: Any) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _event in ws:
            pass


async def client_share(
    base: str, indices: list[int], t0: float, spacing_s: float, hang_s: float, hold_until: float, tag: str
) -> list[dict[str, Any]]:
    """This process's connects, each at its slot of the shared schedule ``t0 + i * spacing_s``."""

    release = asyncio.Event()
    asyncio.get_running_loop().call_later(hold_until - time.time(), release.set)

    async def at_slot(i: int) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, t0 + i * spacing_s - time.time()))
        late_ms = round((time.time() - (t0 + i * spacing_s)) * 1000, 1)
        return {"i": i, "late_ms": late_ms, **await one_connect(f"{base}/v1/sessions/{tag}-{i}", hang_s, release)}

    return list(await asyncio.gather(*(at_slot(i) for i in indices)))


def client_process(args: tuple[Any, ...], queue: Any) -> None:
    raise_nofile()
    queue.put(asyncio.run(client_share(*args)))


def burst(base: str, n: int, seconds: float, procs: int, hang_s: float, hold_s: float) -> list[dict[str, Any]]:
    """Fire ``n`` connects at even spacing over ``seconds`` from ``procs`` processes (interleaved slots)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    t0 = time.time() + 3.0  # every process is up and importing is done before the first slot
    hold_until = t0 + seconds + hang_s + hold_s
    tag = f"burst{int(time.time()) % 100000}"
    workers = [
        ctx.Process(
            target=client_process,
            args=((base, list(range(p, n, procs)), t0, seconds / n, hang_s, hold_until, tag), queue),
        )
        for p in range(procs)
    ]
    for w in workers:
        w.start()
    results = [r for _ in workers for r in queue.get()]
    for w in workers:
        w.join()
    return sorted(results, key=lambda r: r["i"])


def summarize_burst(results: list[dict[str, Any]], max_sessions: int, seconds: float) -> dict[str, Any]:
    counts = collections.Counter(r["outcome"] for r in results)
    reasons = collections.Counter(r["reason"] for r in results if r["outcome"] == REFUSED)

    def answer_pcts(outcome: str) -> dict[str, Any]:
        ms = [r["answer_ms"] for r in results if r["outcome"] == outcome]
        return {f"{outcome}_p{p}_ms": pct(ms, p) for p in (50, 95, 99)} | {f"{outcome}_max_ms": max(ms) if ms else None}

    late = [r["late_ms"] for r in results]
    return {
        "connects": len(results),
        "seconds": seconds,
        "max_sessions": max_sessions,
        "sessions": counts.get(SESSION, 0),
        "refused_1013": counts.get(REFUSED, 0),
        "hung": counts.get(HUNG, 0),
        "bad": sum(n for k, n in counts.items() if k not in (SESSION, REFUSED)),
        "outcomes": dict(counts),
        "refusal_reasons": dict(reasons),
        **answer_pcts(SESSION),
        **answer_pcts(REFUSED),
        "client_late_p99_ms": pct(late, 99),  # how far behind its schedule the load generator fired
    }


COLUMNS = [
    "max_sessions",
    "connects",
    "seconds",
    "sessions",
    "refused_1013",
    "hung",
    "bad",
    "session_p50_ms",
    "session_p95_ms",
    "session_p99_ms",
    "session_max_ms",
    "1013_p50_ms",
    "1013_p95_ms",
    "1013_max_ms",
    "client_late_p99_ms",
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connects", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=5.0, help="the connects are spread evenly over this")
    p.add_argument("--max-sessions", type=int, nargs="+", default=[500, 1000], help="one private vani per value")
    p.add_argument("--procs", type=int, default=4, help="client processes")
    p.add_argument("--hang-s", type=float, default=30.0, help="no answer within this = hung")
    p.add_argument("--hold-s", type=float, default=2.0, help="admitted sessions stay open this long after the burst")
    p.add_argument("--ingress", choices=["proxy", "haproxy"], default="haproxy")
    p.add_argument("--gateway-replicas", type=int, default=2)
    p.add_argument("--url", help="target a running vani (ws://host:port) instead of starting one")
    p.add_argument("--name", default="burst")
    args = p.parse_args()
    nofile = raise_nofile()
    rows = []
    for max_sessions in args.max_sessions:
        if args.url:
            results = burst(args.url.rstrip("/"), args.connects, args.seconds, args.procs, args.hang_s, args.hold_s)
        else:
            with private_vani(args, max_sessions) as base:
                results = burst(base, args.connects, args.seconds, args.procs, args.hang_s, args.hold_s)
        row = summarize_burst(results, max_sessions, args.seconds)
        rows.append(row)
        print(table([row], COLUMNS), flush=True)
        print(f"outcomes {row['outcomes']}  1013 reasons {row['refusal_reasons']}", flush=True)
    print(table(rows, COLUMNS))
    path = write_json(args.name, {"args": vars(args), "rlimit_nofile": nofile, "rows": rows})
    print(f"wrote {path}")
    bad = [r for r in rows if r["bad"]]
    if bad:
        print(f"BURST FAILED: {[r['outcomes'] for r in bad]}", file=sys.stderr)
    return 1 if bad else 0


@contextlib.contextmanager
def private_vani(args: argparse.Namespace, max_sessions: int) -> Iterator[str]:
    """A private vani (echo sessions) for one row; stopped on exit."""
    from load.local_vani import local_vani

    with local_vani(args.ingress, gateway_replicas=args.gateway_replicas, max_sessions=max_sessions) as v:
        yield v.ws_base


if __name__ == "__main__":
    sys.exit(main())
