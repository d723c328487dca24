"""Recovery time: from SIGKILL of a session host to each of its sessions resumed from the session store.

N agent sessions (provider emulators) stream 256 ms chunks of silence in real time. Once all are live, the
host holding the most of them is killed with SIGKILL; Ray restarts it and its clients reconnect with their
resume tokens every 200 ms (as the Python and browser clients do) until ``session.started`` comes back. The
table gives, per store, how many came back ``recovered`` and the time from the kill to their new
``session.started`` (p50 / p95 / max), and whether any session on the other host was touched.

    python -m load.recovery_time --sessions 40 --store sqlite redis
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from load.agent_stack import agent_stack
from load.report import pct, table, write_json
from load.store_server import store_setting

CHUNK = b"\x00\x00" * 4096  # 256 ms of 16 kHz PCM16


class Client:
    def __init__(self, base: str, sid: str) -> None:
        self.base, self.sid = base, sid
        self.token: str | None = None
        self.closed_code: int | None = None
        self.recovered_after: float | None = None
        self.recovered_flag: bool | None = None
        self.ws: Any = None

    async def open(self) -> dict[str, Any]:
        query = f"?resume_token={self.token}" if self.token else ""
        self.ws = await connect(f"{self.base}/v1/sessions/{self.sid}{query}", max_size=1 << 22, open_timeout=60)
        started = json.loads(await self.ws.recv())
        self.token = started["resume_token"]
        return started

    async def stream(self, stop: float) -> None:
        """Send real-time audio and drain what comes back until ``stop`` or the server closes."""

        async def drain() -> None:
            async for _ in self.ws:
                pass

        reader = asyncio.create_task(drain())
        try:
            nxt = time.monotonic()
            while time.monotonic() < stop and not reader.done():
                await self.ws.send(CHUNK)
                nxt += 0.256
                await asyncio.sleep(max(0.0, nxt - time.monotonic()))
        except ConnectionClosed:
            pass
        finally:
            if not reader.done():
                await self.ws.close()
            reader.cancel()
        self.closed_code = self.closed_code or self.ws.close_code

    async def come_back(self, killed_at: float, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                started = await self.open()
                if started.get("type") == "session.started":
                    self.recovered_after = time.monotonic() - killed_at
                    self.recovered_flag = bool(started.get("recovered"))
                    await self.ws.close()
                    return
            except (ConnectionClosed, InvalidStatus, OSError, TimeoutError):
                pass
            await asyncio.sleep(0.2)


def run(store: str, n: int) -> dict[str, Any]:
    with store_setting(store) as setting, agent_stack("haproxy", n, session_store=setting) as (vani, _emu, _pid):
        registry = vani.registry()

        async def go() -> dict[str, Any]:
            clients = [Client(vani.ws_base, f"rt-{os.getpid()}-{store}-{i}") for i in range(n)]
            for c in clients:
                await c.open()
            stop = time.monotonic() + 600
            streams = {c.sid: asyncio.create_task(c.stream(stop)) for c in clients}
            await asyncio.sleep(3.0)  # every session live and checkpointed
            hosts = await registry.host_stats.remote()
            victim = max(hosts, key=lambda h: len(h["sessions"]))
            doomed = {s["session_id"] for s in victim["sessions"]}
            killed_at = time.monotonic()
            os.kill(victim["pid"], signal.SIGKILL)
            lost = [c for c in clients if c.sid in doomed]
            await asyncio.gather(*(streams[c.sid] for c in lost))
            await asyncio.gather(*(c.come_back(killed_at, killed_at + 120) for c in lost))
            others = [c for c in clients if c.sid not in doomed]
            touched = sum(1 for c in others if streams[c.sid].done())
            for c in others:
                streams[c.sid].cancel()
            times = [1000 * c.recovered_after for c in lost if c.recovered_after is not None]
            return {
                "store": store,
                "sessions": n,
                "on_killed_host": len(lost),
                "closed_1011": sum(1 for c in lost if c.closed_code == 1011),
                "recovered": sum(1 for c in lost if c.recovered_flag),
                "fresh": sum(1 for c in lost if c.recovered_flag is False),
                "never_back": sum(1 for c in lost if c.recovered_after is None),
                "recovery_p50_ms": pct(times, 50),
                "recovery_p95_ms": pct(times, 95),
                "recovery_max_ms": round(max(times), 1) if times else None,
                "others_touched": touched,
            }

        return asyncio.run(go())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--store", nargs="+", default=["sqlite", "redis", "none"])
    ap.add_argument("--name", default="recovery_time")
    args = ap.parse_args()
    rows = [run(store, args.sessions) for store in args.store]
    cols = list(rows[0])
    print("\nrecovery after SIGKILL of a session host (ms from the kill to the new session.started)\n")
    print(table(rows, cols))
    print(f"\nwritten: {write_json(args.name, {'args': vars(args), 'rows': rows})}")
    bad = [r for r in rows if r["store"] != "none" and (r["never_back"] or r["fresh"] or r["others_touched"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
