"""The session host actors of one app: spawning them, knowing where they listen, killing them.

``sharded`` mode keeps ``hosts_per_node`` named, detached hosts pinned to every alive Ray node (restarted
by Ray when they crash, dropped with their node); ``actor`` mode spawns one host per session, never
restarted, killed when its session ends. Every host is given the deployment's settings (without the
clients' API key) and its link secret at spawn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from vani.actors.control import placement
from vani.actors.session.host import SessionHost
from vani.cluster.config import Settings

log = logging.getLogger("vani.registry")


@dataclass
class HostInfo:
    name: str
    node_id: str
    handle: Any
    address: str | None = None  # the host's link server; None until it answered ``ready``


async def alive_nodes() -> dict[str, float]:
    """The Ray nodes alive now, by id, with the CPUs Ray gives each (``ray.nodes`` blocks: run off the loop)."""
    nodes = await asyncio.to_thread(ray.nodes)
    return {n["NodeID"]: float(n.get("Resources", {}).get("CPU", 1.0)) for n in nodes if n.get("Alive")}


class HostPool:
    def __init__(self, settings: Settings, link_secret: bytes) -> None:
        self.settings = settings
        self._link_secret = link_secret
        self.hosts: dict[str, HostInfo] = {}

    def live(self) -> list[str]:
        """Hosts whose link server is known (the ones a session can be placed on)."""
        return [h.name for h in self.hosts.values() if h.address]

    def address(self, name: str) -> str:
        address = self.hosts[name].address
        assert address is not None
        return address

    async def reread_address(self, name: str) -> None:
        """Ask a host where it listens now (a restarted host listens on a new port)."""
        info = self.hosts.get(name)
        if info is not None:
            with contextlib.suppress(Exception):
                info.address = (await info.handle.ready.remote())["address"]

    def drop_lost(self, alive: Collection[str]) -> list[str]:
        """Forget the hosts whose node is gone; returns their names."""
        lost = [name for name, info in self.hosts.items() if info.node_id not in alive]
        for name in lost:
            log.warning("host %s lost with its node", name)
            del self.hosts[name]
        return lost

    async def fill_nodes(self, alive: Collection[str]) -> None:
        """``sharded`` mode: spawn the hosts missing on alive nodes and wait until they listen."""
        new: list[HostInfo] = []
        for node_id in sorted(alive):
            for i in range(self.settings.hosts_per_node):
                name = placement.host_name(self.settings.app_name, node_id, i)
                if name in self.hosts:
                    continue
                pinned = NodeAffinitySchedulingStrategy(node_id, soft=False)
                info = HostInfo(name, node_id, self._spawn(name, pinned, max_concurrency=10000, max_restarts=-1))
                self.hosts[name] = info
                new.append(info)
        results = await asyncio.gather(*(h.handle.ready.remote() for h in new), return_exceptions=True)
        for info, res in zip(new, results, strict=True):
            if isinstance(res, BaseException):
                log.error("host %s failed to start: %r", info.name, res)
                self.hosts.pop(info.name, None)
            else:
                info.address = res["address"]

    async def start_session_actor(self, name: str, session_id: str) -> str:
        """``actor`` mode: one host for ``session_id``; returns its address once it listens."""
        # One session per actor: never restarted (its state is gone with it), spread over nodes.
        handle = self._spawn(name, "SPREAD", max_concurrency=1000, max_restarts=0, single_session=session_id)
        ready = await handle.ready.remote()
        self.hosts[name] = HostInfo(name, ready["node_id"], handle, ready["address"])
        return ready["address"]

    def kill(self, name: str) -> None:
        info = self.hosts.pop(name, None)
        if info is not None:
            ray.kill(info.handle, no_restart=True)

    def kill_all(self) -> None:
        for info in self.hosts.values():
            with contextlib.suppress(Exception):
                ray.kill(info.handle, no_restart=True)
        self.hosts.clear()

    async def stats(self) -> list[dict[str, Any]]:
        """Every host's own stats (hosts that do not answer are left out)."""
        infos = list(self.hosts.values())
        res = await asyncio.gather(*(h.handle.stats.remote() for h in infos), return_exceptions=True)
        return [r for r in res if not isinstance(r, BaseException)]

    def _spawn(
        self, name: str, strategy: Any, *, max_concurrency: int, max_restarts: int, single_session: str | None = None
    ) -> Any:
        """Create (or get) the named, detached session host actor ``name``."""
        settings = {**self.settings.to_dict(), "api_key": None}  # hosts never need the clients' API key
        return SessionHost.options(
            name=name,
            namespace=self.settings.namespace,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=self.settings.host_num_cpus,
            max_concurrency=max_concurrency,
            max_restarts=max_restarts,
            scheduling_strategy=strategy,
        ).remote(
            name,
            placement.registry_name(self.settings.app_name),
            self.settings.namespace,
            single_session,
            settings,
            self._link_secret,
        )
