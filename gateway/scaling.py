"""How many gateway replicas run, and where: Serve autoscaling on ongoing connections with a per-node floor.

Every client WebSocket is one ongoing request of the replica that accepted it, so Serve's own
queue-length policy (``target_ongoing_requests``) scales the gateway by open connections. vani adds a
floor of ``gateway_replicas_per_node`` per alive node: Serve schedules replicas with its SPREAD strategy,
so the floor puts a replica (and with it Serve's ingress, which runs on every node holding replicas) on
each node, and adding a node adds an entrance as well as session hosts.

The policy runs in Serve's controller (Serve pickles it by value). It reads the node count from Ray at
most every ``NODES_EVERY_S``; Serve applies min/max and the up/down delays around it.
"""

from __future__ import annotations

import math
from typing import Any

from vani.cluster.config import Settings

NODES_EVERY_S = 5.0
UPSCALE_DELAY_S = 10.0  # a burst of connects gets a new replica within seconds
DOWNSCALE_DELAY_S = 300.0  # removing a replica drains its connections (gateway_drain_s): do it rarely
# Serve runs a replica's user code on a second event loop in its own thread by default, so every websocket
# message crosses threads between uvicorn's loop and the relay. The gateway's code never blocks (it only
# awaits sockets and Ray calls), so it runs on uvicorn's loop: Serve's "throughput optimized" setting, which
# cut the replica's CPU per relayed frame by ~40 % (load/README.md, "Serve's one-loop replica").
REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}


def deployment_options(settings: Settings, nodes: int = 1) -> dict[str, Any]:
    """The Gateway deployment's Serve options for these settings on a cluster of ``nodes`` alive nodes
    (``cluster/run.py`` passes them). The per-node floor is also the deployment's minimum, so Serve starts
    those replicas together and its SPREAD scheduling deals them out one per node (replicas added one at a
    time, between other deployments' replicas, can land on a node that has one already)."""
    options: dict[str, Any] = {
        "name": f"{settings.app_name}-gateway",
        "ray_actor_options": {"num_cpus": 0, "runtime_env": {"env_vars": dict(REPLICA_ENV)}},
        "graceful_shutdown_timeout_s": settings.gateway_drain_s,
    }
    if settings.gateway_replicas > 0:
        options["num_replicas"] = settings.gateway_replicas
        return options
    floor = max(1, settings.gateway_min_replicas, nodes * settings.gateway_replicas_per_node)
    options["autoscaling_config"] = {
        "min_replicas": floor,
        "initial_replicas": floor,
        "max_replicas": max(floor, settings.gateway_max_replicas),
        "target_ongoing_requests": settings.gateway_target_connections,
        "upscale_delay_s": UPSCALE_DELAY_S,
        "downscale_delay_s": DOWNSCALE_DELAY_S,
        "policy": {
            "policy_function": "vani.gateway.scaling:ConnectionsAndNodes",
            "policy_kwargs": {"per_node": settings.gateway_replicas_per_node},
        },
    }
    return options


def desired_replicas(connections: float, running: int, target: float, nodes: int, per_node: int) -> int:
    """Replicas wanted: enough that each averages at most ``target`` connections, and ``per_node`` a node."""
    by_load = math.ceil(connections / target) if target > 0 else running
    return max(by_load, nodes * per_node, 1)


class ConnectionsAndNodes:
    """Serve autoscaling policy (called with an ``AutoscalingContext``, returns replicas and policy state).

    A class because Serve instantiates a class policy once with ``policy_kwargs`` and calls it every
    autoscaling tick; the node count is cached on the instance.
    """

    def __init__(self, per_node: int = 1) -> None:
        self.per_node = per_node
        self._nodes = 1
        self._nodes_at = -math.inf

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        now = ctx.current_time or 0.0
        if now - self._nodes_at >= NODES_EVERY_S:
            self._nodes, self._nodes_at = _alive_nodes(), now
        target = ctx.config.get_target_ongoing_requests()
        want = desired_replicas(ctx.total_num_requests, ctx.current_num_replicas, target, self._nodes, self.per_node)
        return want, ctx.policy_state or {}


def _alive_nodes() -> int:
    return len(alive_node_ids())


def alive_node_ids() -> list[str]:
    """The cluster's alive nodes (one GCS call)."""
    import ray

    return [n["NodeID"] for n in ray.nodes() if n.get("Alive")]


def misplaced_replica(replicas: list[dict[str, Any]], alive: list[str]) -> str | None:
    """A replica to restart so the per-node floor holds: one on a node holding more than one while another
    alive node holds none (``replicas``: Serve's RUNNING replica records; returns an actor name)."""
    by_node: dict[str, list[str]] = {node: [] for node in alive}
    for r in replicas:
        by_node.setdefault(r["node_id"], []).append(r["actor_name"])
    if not any(not names for node, names in by_node.items() if node in alive):
        return None
    crowded = [names for names in by_node.values() if len(names) > 1]
    return crowded[0][-1] if crowded else None


def spread_at_deploy(app: str, timeout_s: float = 60.0) -> None:
    """Right after ``vani deploy`` (no client has a socket on the new replicas yet), restart a replica that
    SPREAD put next to another while an alive node has none; Serve schedules the replacement by SPREAD
    again. Best effort within ``timeout_s``: later replicas (autoscaling, nodes joining) are Serve's alone."""
    import time

    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        details = ray.get(controller.get_serve_instance_details.remote())
        deployment = details["applications"][app]["deployments"][f"{app}-gateway"]
        states = [getattr(r["state"], "value", r["state"]) for r in deployment["replicas"]]
        running = [r for r, state in zip(deployment["replicas"], states, strict=True) if state == "RUNNING"]
        alive = alive_node_ids()
        if len(running) == len(states):
            victim = misplaced_replica(running, alive)
            if victim is None:
                return
            try:
                ray.kill(ray.get_actor(victim, namespace=SERVE_NAMESPACE), no_restart=True)
            except ValueError:  # gone already (Serve replaced it): look again
                pass
        time.sleep(1.0)
