"""Session registry: the control plane's single source of truth for where sessions live.

A named, detached Ray actor per Serve app (``<app>-registry``). It admits sessions (atomically:
check and reserve happen with no ``await`` between them, so a burst of connects cannot overshoot
``max_sessions``), places them (rendezvous hashing over live hosts in ``sharded`` mode; one detached
actor per session in ``actor`` mode), keeps one host set per alive Ray node, and forgets sessions
whose host died. It never sees audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from vani.actors.control import placement
from vani.actors.session.host import SessionHost
from vani.actors.session.loop_lag import behind
from vani.actors.wire.protocol import Close
from vani.cluster.config import Settings

log = logging.getLogger("vani.registry")

RECONCILE_EVERY_S = 2.0
ORPHAN_GRACE_S = 15.0  # a placed session that never reached its host is forgotten after this


@dataclass
class HostInfo:
    name: str
    node_id: str
    handle: Any
    address: str | None = None


@dataclass
class Entry:
    host: str
    placed_at: float = field(default_factory=time.monotonic)
    ready: asyncio.Future | None = None  # actor mode: resolves to the address when the actor is up


@ray.remote(max_restarts=-1)
class Registry:
    def __init__(self, settings: dict[str, Any], link_secret: bytes) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        self.settings = Settings.from_dict(settings)
        # Created by deploy() and passed in (not made here), so a restarted registry keeps the secret its
        # hosts and the gateway replicas already hold. Only Ray calls ever carry it.
        self._link_secret = link_secret
        self.app = self.settings.app_name
        self.ns = self.settings.namespace
        self.hosts: dict[str, HostInfo] = {}
        self.sessions: dict[str, Entry] = {}
        self.loads: dict[str, tuple[float, float]] = {}  # host -> (smoothed loop lag ms, when reported)
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
            if not new_ok or self._hosts_all_behind():
                self.refused += 1
                return {"ok": False, "code": Close.TRY_AGAIN, "reason": "try again later: overloaded"}
            entry = self._reserve(session_id)
            if entry is None:
                return {"ok": False, "code": Close.TRY_AGAIN, "reason": "try again later: no session hosts"}
        try:
            address = await self._address_of(session_id, entry)
        except Exception as exc:  # actor failed to start
            self.sessions.pop(session_id, None)
            log.error("placing %s failed: %r", session_id, exc)
            return {"ok": False, "code": Close.INTERNAL, "reason": "session host unavailable"}
        return {"ok": True, "address": address, "host": entry.host}

    async def refresh(self, session_id: str) -> dict[str, Any]:
        """The gateway could not reach the session's host: re-read its address, then place again."""
        entry = self.sessions.get(session_id)
        if entry is not None and entry.host in self.hosts:
            info = self.hosts[entry.host]
            with contextlib.suppress(Exception):
                info.address = (await info.handle.ready.remote())["address"]
        return await self.place(session_id)

    async def report_load(self, host: str, lag_ms: float) -> None:
        """A session host's smoothed event-loop lag (every ``vani.actors.session.loop_lag.PERIOD_S``)."""
        if host in self.hosts:  # a late report from a host already gone must not leave an entry behind
            self.loads[host] = (lag_ms, time.monotonic())

    def _behind(self, host: str) -> bool:
        load = self.loads.get(host)
        if load is None:  # not reported yet: a host that just started
            return False
        return behind(load[0], load[1], time.monotonic(), self.settings.overload_lag_ms)

    def _hosts_all_behind(self) -> bool:
        live = [h.name for h in self.hosts.values() if h.address]
        return self.settings.placement_mode == "sharded" and bool(live) and all(self._behind(h) for h in live)

    async def release(self, session_id: str, host: str) -> None:
        entry = self.sessions.get(session_id)
        if entry is None or entry.host != host:
            return
        del self.sessions[session_id]
        if self.settings.placement_mode == "actor":
            self.loads.pop(host, None)
            info = self.hosts.pop(host, None)
            if info is not None:
                ray.kill(info.handle, no_restart=True)

    # ------------------------------------------------------------------ placement
    def _reserve(self, session_id: str) -> Entry | None:
        # No await in here: admission and reservation are one atomic step.
        if self.settings.placement_mode == "actor":
            name = placement.session_actor_name(self.app, session_id)
            entry = Entry(host=name)
            entry.ready = asyncio.get_running_loop().create_task(self._start_session_actor(name, session_id))
        else:
            # Hosts that are behind real time take no new sessions (place() refuses when all are).
            live = [h.name for h in self.hosts.values() if h.address and not self._behind(h.name)]
            chosen = placement.choose_host(session_id, live)
            if chosen is None:
                return None
            entry = Entry(host=chosen)
        self.sessions[session_id] = entry
        return entry

    async def _address_of(self, session_id: str, entry: Entry) -> str:
        if entry.ready is not None:
            return await entry.ready
        info = self.hosts[entry.host]
        assert info.address is not None
        return info.address

    async def _start_session_actor(self, name: str, session_id: str) -> str:
        # One session per actor: never restarted (its state is gone with it), spread over nodes.
        handle = self._spawn_host(name, "SPREAD", max_concurrency=1000, max_restarts=0, single_session=session_id)
        ready = await handle.ready.remote()
        self.hosts[name] = HostInfo(name, ready["node_id"], handle, ready["address"])
        return ready["address"]

    @property
    def _host_settings(self) -> dict[str, Any]:
        return {**self.settings.to_dict(), "api_key": None}  # hosts never need the clients' API key

    def _spawn_host(
        self, name: str, strategy: Any, *, max_concurrency: int, max_restarts: int, single_session: str | None = None
    ) -> Any:
        """Create (or get) the named, detached session host actor ``name``."""
        return SessionHost.options(
            name=name,
            namespace=self.ns,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=self.settings.host_num_cpus,
            max_concurrency=max_concurrency,
            max_restarts=max_restarts,
            scheduling_strategy=strategy,
        ).remote(
            name, placement.registry_name(self.app), self.ns, single_session, self._host_settings, self._link_secret
        )

    # ------------------------------------------------------------------ reconciliation
    async def _reconcile_loop(self) -> None:
        last_orphans = time.monotonic()
        while True:
            await asyncio.sleep(RECONCILE_EVERY_S)
            try:
                await self._reconcile_hosts()
                if time.monotonic() - last_orphans > ORPHAN_GRACE_S:
                    last_orphans = time.monotonic()
                    await self._forget_orphans()
            except Exception:
                log.exception("reconcile failed")

    async def _reconcile_hosts(self) -> None:
        nodes = await asyncio.to_thread(ray.nodes)
        alive = {n["NodeID"] for n in nodes if n.get("Alive")}
        for name, info in list(self.hosts.items()):
            if info.node_id not in alive:
                log.warning("host %s lost with its node", name)
                self.hosts.pop(name)
                self.loads.pop(name, None)
                self._forget_host_sessions(name)
        if self.settings.placement_mode != "sharded":
            return
        new: list[HostInfo] = []
        for node_id in sorted(alive):
            for i in range(self.settings.hosts_per_node):
                name = placement.host_name(self.app, node_id, i)
                if name in self.hosts:
                    continue
                pinned = NodeAffinitySchedulingStrategy(node_id, soft=False)
                handle = self._spawn_host(name, pinned, max_concurrency=10000, max_restarts=-1)
                info = HostInfo(name, node_id, handle)
                self.hosts[name] = info
                new.append(info)
        results = await asyncio.gather(*(h.handle.ready.remote() for h in new), return_exceptions=True)
        for info, res in zip(new, results, strict=True):
            if isinstance(res, BaseException):
                log.error("host %s failed to start: %r", info.name, res)
                self.hosts.pop(info.name, None)
            else:
                info.address = res["address"]

    def _forget_host_sessions(self, host: str) -> None:
        for sid in [s for s, e in self.sessions.items() if e.host == host]:
            del self.sessions[sid]

    async def _forget_orphans(self) -> None:
        """Drop entries whose host does not hold the session (gateway died mid-connect, host restarted)."""
        by_host: dict[str, list[str]] = {}
        for sid, e in self.sessions.items():
            if e.ready is None and time.monotonic() - e.placed_at > ORPHAN_GRACE_S:
                by_host.setdefault(e.host, []).append(sid)
        for host, sids in by_host.items():
            info = self.hosts.get(host)
            if info is None:
                continue
            try:
                held = set(await info.handle.session_ids.remote())
                info.address = (await info.handle.ready.remote())["address"]
            except Exception:
                continue
            for sid in sids:
                if sid not in held and sid in self.sessions and self.sessions[sid].host == host:
                    del self.sessions[sid]

    # ------------------------------------------------------------------ views and teardown
    async def status(self) -> dict[str, Any]:
        per_host: dict[str, int] = {}
        for e in self.sessions.values():
            per_host[e.host] = per_host.get(e.host, 0) + 1
        return {
            "app": self.app,
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
                    "loop_lag_ms": self.loads.get(h.name, (None, 0.0))[0],
                    "overloaded": self._behind(h.name),
                }
                for h in self.hosts.values()
            ],
            "nodes": sorted({h.node_id for h in self.hosts.values()}),
        }

    async def where(self, session_id: str) -> dict[str, Any] | None:
        e = self.sessions.get(session_id)
        if e is None or e.host not in self.hosts:
            return None
        return {"host": e.host, "node_id": self.hosts[e.host].node_id}

    async def host_stats(self) -> list[dict[str, Any]]:
        infos = list(self.hosts.values())
        res = await asyncio.gather(*(h.handle.stats.remote() for h in infos), return_exceptions=True)
        return [r for r in res if not isinstance(r, BaseException)]

    async def shutdown(self) -> None:
        """Stop reconciling and kill every host this registry created."""
        if self._loop_task is not None:
            self._loop_task.cancel()
        for info in self.hosts.values():
            with contextlib.suppress(Exception):
                ray.kill(info.handle, no_restart=True)
        self.hosts.clear()
        self.sessions.clear()
