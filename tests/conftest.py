"""Shared fixtures: one real 2-node Ray cluster (on 127.0.0.1) with vani deployed as several apps.

Each app is a full vani deployment (own registry, own session hosts, own settings) under its own route
prefix on one Serve HTTP port, so tests can use different limits without restarting Ray:

  /        default settings (500 ms echo delay), sharded
  /fast    echo delay 0, flood guard off (throughput and ordering)
  /strict  API key, max 30 sessions, 2 s TTL, tight flood guard
  /actor   one detached actor per session, 3 s TTL
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

# Keep every Ray address on loopback (without this Ray rewrites 127.0.0.1 to the machine's interface
# IP). Set at import time: Ray reads it when first imported, possibly by a test module.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

STRICT_KEY = "s3cret-test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class VaniCluster:
    http: str  # http://127.0.0.1:PORT
    ws: str  # ws://127.0.0.1:PORT
    metrics_ports: list[int]
    cluster: object
    node_ids: list[str]

    def url(self, app: str = "") -> str:
        return f"{self.ws}/{app}".rstrip("/")

    def http_url(self, app: str = "") -> str:
        return f"{self.http}/{app}".rstrip("/")


APPS = {
    "vani": dict(route_prefix="/"),
    "fast": dict(route_prefix="/fast", echo_delay_ms=0, flood_burst_s=0, gateway_replicas=2),
    "strict": dict(
        route_prefix="/strict",
        echo_delay_ms=0,
        api_key=STRICT_KEY,
        max_sessions=30,
        session_ttl_s=2.0,
        flood_burst_s=2.0,
        flood_rate=1.5,
    ),
    "actor": dict(route_prefix="/actor", placement_mode="actor", echo_delay_ms=0, session_ttl_s=3.0),
}


@pytest.fixture(scope="session")
def vani_cluster() -> Iterator[VaniCluster]:
    # Keep every address on loopback: without this Ray rewrites 127.0.0.1 to the machine's interface IP.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_metrics_report_interval_ms", "1000")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster

    from cluster.config import Settings
    from cluster.run import deploy, undeploy

    metrics_ports = [free_port(), free_port()]
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "node_ip_address": "127.0.0.1",
            "include_dashboard": False,
            "metrics_export_port": metrics_ports[0],
        },
    )
    cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1", metrics_export_port=metrics_ports[1])
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="vani", log_to_driver=False, _node_ip_address="127.0.0.1")
    port = free_port()
    deployed: list[Settings] = []
    try:
        for name, overrides in APPS.items():
            settings = Settings.load(
                env={}, app_name=name, http_port=port, hosts_per_node=1, dashboard=False, **overrides
            )
            deploy(settings)
            deployed.append(settings)
        node_ids = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        yield VaniCluster(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", metrics_ports, cluster, node_ids)
    finally:
        for settings in deployed:
            try:
                undeploy(settings)
            except Exception as exc:  # keep tearing down
                print(f"undeploy {settings.app_name}: {exc!r}", file=sys.stderr)
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
