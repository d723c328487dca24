"""Where each live session is: its host, since when, and (``actor`` mode) its host's start-up.

The registry's memory of placements. Existing sessions never move; entries go when their session is
released, when their host is lost, or (orphans) when their host turns out not to hold the session: a
gateway that died mid-connect, a host restarted by Ray with its sessions gone.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the table itself needs no Ray: unit tests build it alone
    from vani.actors.control.host_pool import HostPool

ORPHAN_GRACE_S = 15.0  # a placed session that never reached its host is forgotten after this


@dataclass
class Entry:
    host: str
    placed_at: float = field(default_factory=time.monotonic)
    ready: asyncio.Future | None = None  # actor mode: resolves to the address when the actor is up


class SessionTable:
    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, session_id: str) -> Entry | None:
        return self.entries.get(session_id)

    def add(self, session_id: str, entry: Entry) -> Entry:
        self.entries[session_id] = entry
        return entry

    def pop(self, session_id: str) -> Entry | None:
        return self.entries.pop(session_id, None)

    def per_host(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self.entries.values():
            counts[e.host] = counts.get(e.host, 0) + 1
        return counts

    def forget_host(self, host: str) -> None:
        for sid in [s for s, e in self.entries.items() if e.host == host]:
            del self.entries[sid]

    async def forget_orphans(self, pool: HostPool) -> None:
        """Drop entries older than the grace whose host does not hold the session (and re-read its address)."""
        by_host: dict[str, list[str]] = {}
        for sid, e in self.entries.items():
            if e.ready is None and time.monotonic() - e.placed_at > ORPHAN_GRACE_S:
                by_host.setdefault(e.host, []).append(sid)
        for host, sids in by_host.items():
            info = pool.hosts.get(host)
            if info is None:
                continue
            try:
                held = set(await info.handle.session_ids.remote())
                info.address = (await info.handle.ready.remote())["address"]
            except Exception:
                continue
            for sid in sids:
                entry = self.entries.get(sid)
                if sid not in held and entry is not None and entry.host == host:
                    del self.entries[sid]
