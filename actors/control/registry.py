"""Session registry: the control plane's single source of truth for where sessions live.

A named, detached Ray actor per Serve app (``<app>-registry``). It admits sessions (atomically:
check and reserve happen with no ``await`` between them, so a burst of connects cannot overshoot
``max_sessions``), places them (rendezvous hashing over live hosts in ``sharded`` mode; one detached
actor per session in ``actor`` mode), keeps one host set per alive Ray node, and forgets sessions
whose host died. It never sees audio.

This module is the Ray-facing actor; its parts live next to it: the hosts it spawns
(``host_pool.py``), their load reports (``loads.py``), where sessions are (``session_table.py``),
hashing and names (``placement.py``). Starting and finding it: ``deploy.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray

from vani.actors.control import local_capacity, placement
from vani.actors.control.host_pool import HostPool, alive_nodes
from vani.actors.control.loads import LoadBook
from vani.actors.control.session_table import ORPHAN_GRACE_S, Entry, SessionTable
from vani.actors.wire.protocol import Close
from vani.cluster.config import Settings
from vani.cluster.logs import configure_logging

log = logging.getLogger("vani.registry")

RECONCILE_EVERY_S = 2.0


@ray.remote(max_restarts=-1)
class Registry:
    def __init__(self, settings: dict[str, Any], link_secret: bytes) -> None:
        self.settings = Settings.from_dict(settings)
        configure_logging(self.settings.log_level, self.settings.log_format)
        # Created by start_registry() and passed in (not made here), so a restarted registry keeps the secret its
        # hosts and the gateway replicas already hold. Only Ray calls ever carry it.
        self._link_secret = link_secret
        self.pool = HostPool(self.settings, link_secret)
        self.loads = LoadBook(self.settings.overload_lag_ms)
        self.sessions = SessionTable()
        self.node_cpus: dict[str, float] = {}  # alive nodes, as of the last reconcile
        self._loop_task: asyncio.Task | None = None
        self.refused = 0

    async def start(self) -> dict:
        """Create the hosts for the nodes alive now and start reconciling (idempotent)."""
        if self._loop_task is None:
            await self._reconcile_hosts()
            self._loop_task = asyncio.get_running_loop().create_task(self._reconcile_loop())
        return await self.status()

    async def link_secret(self) -> bytes:
        """The deployment's link secret, for gateway replicas (Ray callers are trusted: see README "Security")."""
        return self._link_secret

    # ------------------------------------------------------------------ data-plane entry points
    async def place(self, session_id: str, new_ok: bool = True) -> dict[str, Any]:
        """Admit (if new) and locate ``session_id``. Returns ``{ok, address, host}`` or a refusal.

        ``new_ok=False``: the calling gateway replica is behind real time; it may reach existing
        sessions but takes no new ones.
        """
        entry = self.sessions.get(session_id)
        if entry is None:
            if len(self.sessions) >= self.settings.max_sessions:
                self.refused += 1
                return {"ok": False, "code": Close.TRY_AGAIN, "reason": "try again later: max sessions reached"}
            sharded = self.settings.placement_mode == "sharded"
            if not new_ok or (sharded and self.loads.all_behind(self.pool.live())):
                self.refused += 1
                return {"ok": False, "code": Close.TRY_AGAIN, "reason": "try again later: overloaded"}
            if self._at_local_capacity():
                self.refused += 1
                return {"ok": False, "code": Close.TRY_AGAIN, "reason": local_capacity.REASON}
            entry = self._reserve(session_id)
            if entry is None:
                return {"ok": False, "code": Close.TRY_AGAIN, "reason": "try again later: no session hosts"}
        try:
            address = await entry.ready if entry.ready is not None else self.pool.address(entry.host)
        except Exception as exc:  # actor failed to start
            self.sessions.pop(session_id)
            log.error("placing %s failed: %r", session_id, exc)
            return {"ok": False, "code": Close.INTERNAL, "reason": "session host unavailable"}
        return {"ok": True, "address": address, "host": entry.host}

    def _reserve(self, session_id: str) -> Entry | None:
        # No await in here: admission and reservation are one atomic step.
        if self.settings.placement_mode == "actor":
            name = placement.session_actor_name(self.settings.app_name, session_id)
            entry = Entry(host=name)
            entry.ready = asyncio.get_running_loop().create_task(self.pool.start_session_actor(name, session_id))
            return self.sessions.add(session_id, entry)
        # Hosts that are behind real time, or on a node whose embedded models are at capacity, take no new
        # sessions (place() refuses when all are).
        full = self._full_nodes()
        chosen = placement.choose_host(
            session_id,
            [h for h in self.pool.live() if not self.loads.behind(h) and self.pool.hosts[h].node_id not in full],
        )
        return None if chosen is None else self.sessions.add(session_id, Entry(host=chosen))

    def _full_nodes(self) -> set[str]:
        if not local_capacity.uses_local_models(self.settings):
            return set()
        node_of = {name: info.node_id for name, info in self.pool.hosts.items()}
        counts = local_capacity.per_node((e.host for e in self.sessions.entries.values()), node_of)
        return local_capacity.full_nodes(self.settings, self.node_cpus, counts)

    def _at_local_capacity(self) -> bool:
        """No node can take one more session on the embedded models (actors/control/local_capacity.py)."""
        if self.settings.placement_mode == "actor":
            cap = local_capacity.total_cap(self.settings, self.node_cpus)
            return cap is not None and len(self.sessions) >= cap
        live, full = self.pool.live(), self._full_nodes()
        return bool(live and full) and all(self.pool.hosts[h].node_id in full for h in live)

    async def refresh(self, session_id: str) -> dict[str, Any]:
        """The gateway could not reach the session's host: re-read its address, then place again."""
        entry = self.sessions.get(session_id)
        if entry is not None:
            await self.pool.reread_address(entry.host)
        return await self.place(session_id)

    async def report_load(self, host: str, lag_ms: float) -> None:
        """A session host's smoothed event-loop lag (every ``vani.actors.session.loop_lag.PERIOD_S``)."""
        if host in self.pool.hosts:  # a late report from a host already gone must not leave an entry behind
            self.loads.report(host, lag_ms)

    async def release(self, session_id: str, host: str) -> None:
        entry = self.sessions.get(session_id)
        if entry is None or entry.host != host:
            return
        self.sessions.pop(session_id)
        if self.settings.placement_mode == "actor":
            self.loads.forget(host)
            self.pool.kill(host)

    # ------------------------------------------------------------------ reconciliation
    async def _reconcile_loop(self) -> None:
        last_orphans = time.monotonic()
        while True:
            await asyncio.sleep(RECONCILE_EVERY_S)
            try:
                await self._reconcile_hosts()
                if time.monotonic() - last_orphans > ORPHAN_GRACE_S:
                    last_orphans = time.monotonic()
                    await self.sessions.forget_orphans(self.pool)
            except Exception:
                log.exception("reconcile failed")

    async def _reconcile_hosts(self) -> None:
        alive = await alive_nodes()
        self.node_cpus = alive
        # No await between dropping a host and forgetting its sessions: place() never sees one without the other.
        for name in self.pool.drop_lost(alive):
            self.loads.forget(name)
            self.sessions.forget_host(name)
        if self.settings.placement_mode == "sharded":
            await self.pool.fill_nodes(alive)

    # ------------------------------------------------------------------ views and teardown
    async def status(self) -> dict[str, Any]:
        per_host = self.sessions.per_host()
        hosts = self.pool.hosts.values()
        return {
            "app": self.settings.app_name,
            "placement_mode": self.settings.placement_mode,
            "max_sessions": self.settings.max_sessions,
            "sessions": len(self.sessions),
            "refused": self.refused,
            "hosts": [
                {
                    "name": h.name,
                    "node_id": h.node_id,
                    "address": h.address,
                    "sessions": per_host.get(h.name, 0),
                    "loop_lag_ms": self.loads.lag_ms(h.name),
                    "overloaded": self.loads.behind(h.name),
                }
                for h in hosts
            ],
            "nodes": sorted({h.node_id for h in hosts}),
            # Sessions each node takes on the embedded models (None: no cap, see actors/control/local_capacity.py).
            "local_capacity": {n: local_capacity.node_cap(self.settings, c) for n, c in self.node_cpus.items()},
        }

    async def where(self, session_id: str) -> dict[str, Any] | None:
        e = self.sessions.get(session_id)
        if e is None or e.host not in self.pool.hosts:
            return None
        return {"host": e.host, "node_id": self.pool.hosts[e.host].node_id}

    async def host_stats(self) -> list[dict[str, Any]]:
        return await self.pool.stats()

    async def shutdown(self) -> None:
        """Stop reconciling and kill every host this registry created."""
        if self._loop_task is not None:
            self._loop_task.cancel()
        self.pool.kill_all()
        self.sessions.entries.clear()
