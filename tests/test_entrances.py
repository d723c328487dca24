"""Every node is an entrance (the default HAProxy ingress): the shared 2-node cluster's default app runs as
`vani up` / `vani deploy` run it, autoscaled with a gateway replica per node and Serve's ingress on every
node holding one (tests/conftest.py gives the worker node's entrance its own port, both on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
import uuid
from typing import Any

import httpx
import psutil
import pytest
import ray

from tests.audio_frames import numbered_frame
from vani.client.session_client import VaniSession
from vani.cluster.config import Settings
from vani.cluster.run import deploy, undeploy
from vani.gateway.entrances import serve_details
from vani.gateway.scaling import REPLICA_ENV


def sid() -> str:
    return f"en-{uuid.uuid4().hex[:10]}"


async def echoed(s: VaniSession) -> None:
    await s.send_audio(numbered_frame(1))
    assert isinstance(await s.recv_audio(timeout=10), bytes)


def gateway(details: dict[str, Any], app: str) -> dict[str, Any]:
    return details["applications"][app]["deployments"][f"{app}-gateway"]


def running_replicas(details: dict[str, Any], app: str) -> list[dict[str, Any]]:
    return [r for r in gateway(details, app)["replicas"] if getattr(r["state"], "value", r["state"]) == "RUNNING"]


async def until(check, timeout: float = 90.0):
    """Poll ``check`` (async, returns a truthy value when done) until it passes or ``timeout`` ends."""
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got or time.monotonic() > deadline:
            return got
        await asyncio.sleep(1.0)


async def replica_per_node(vani_cluster, app: str = "vani") -> bool:
    nodes = {r["node_id"] for r in running_replicas(await serve_details(), app)}
    return nodes == set(vani_cluster.node_ids)


async def entrances_healthy(vani_cluster) -> bool:
    proxies = (await serve_details())["proxies"]
    return set(proxies) == set(vani_cluster.node_ids) and all(
        getattr(p["status"], "value", p["status"]) == "HEALTHY" for p in proxies.values()
    )


async def test_each_node_has_a_gateway_replica_and_an_entrance(vani_cluster):
    placed = await until(lambda: replica_per_node(vani_cluster))
    # Serve reports a node's proxy STARTING while it (re)loads HAProxy after a replica change.
    assert await until(lambda: entrances_healthy(vani_cluster), timeout=60)
    details = await serve_details()
    where = [(r["node_id"], r["state"]) for r in gateway(details, "vani")["replicas"]]
    assert placed, f"the per-node replica floor is not honoured: {where}, nodes {vani_cluster.node_ids}"
    assert set(details["proxies"]) == set(vani_cluster.node_ids)
    scaling = gateway(details, "vani")["deployment_config"]["autoscaling_config"]
    defaults = Settings()
    floor = len(vani_cluster.node_ids) * defaults.gateway_replicas_per_node
    assert scaling["min_replicas"] == max(defaults.gateway_min_replicas, floor)
    assert scaling["max_replicas"] == defaults.gateway_max_replicas
    assert scaling["target_ongoing_requests"] == defaults.gateway_target_connections
    assert scaling["policy"]["policy_function"] == "vani.gateway.scaling:ConnectionsAndNodes"
    # /v1/status (no API key on this app: counts only, no addresses) shows the same, per node.
    async with httpx.AsyncClient() as http:
        st = (await http.get(f"{vani_cluster.http_url()}/v1/status")).json()
    rows = {n["node_id"]: n for n in st["entrances"]}
    assert set(rows) == set(vani_cluster.node_ids)
    for row in rows.values():
        assert row["entrance"] == "HEALTHY" and row["gateway_replicas"] >= 1
        assert "entrance_address" not in row


def haproxies(root: str) -> list[psutil.Process]:
    """The HAProxy processes whose config lives under ``root`` (this cluster's, not another Ray's)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "-f" in cmd and cmd.index("-f") + 1 < len(cmd) and cmd[cmd.index("-f") + 1].startswith(root + os.sep):
            found.append(p)
    return found


async def test_each_nodes_haproxy_listens_on_its_entrance_only_and_keeps_its_files_private(vani_cluster):
    """HAProxy's stats and Prometheus pages are Unix sockets (vani-haproxy): no TCP port that another process
    could take first (which kept the worker's entrance down for good) and none to expose. Each node's
    config and sockets are in its own directory, 0700, not Serve's shared /tmp/haproxy-serve."""
    assert await until(lambda: entrances_healthy(vani_cluster), timeout=60)
    procs = haproxies(vani_cluster.haproxy_root)
    configs = {p.cmdline()[p.cmdline().index("-f") + 1] for p in procs}
    assert len(configs) == len(vani_cluster.node_ids), configs  # one per node (reloads keep the path)
    ports: set[int] = set()
    for p in procs:
        for c in p.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN:
                ports.add(c.laddr.port)
    assert ports == set(vani_cluster.entrance_ports)
    for config in configs:
        node_dir = os.path.dirname(config)
        assert os.stat(os.path.dirname(node_dir)).st_mode & 0o777 == 0o700  # the node's own directory
        for name in ("admin.sock", "stats.sock", "prometheus.sock"):
            assert os.stat(os.path.join(node_dir, name)).st_mode & 0o777 == 0o600, name


def fallback_ports(config: str) -> set[int]:
    """The ports of the fallback Serve proxy that HAProxy's config names (its ``backup`` server)."""
    with open(config) as f:
        lines = [line.split() for line in f if "SERVE_PROXY_ACTOR-fallback" in line]
    return {int(words[2].rsplit(":", 1)[1]) for words in lines if words[0] == "server"}


async def test_the_fallback_proxy_holds_a_port_of_its_own_that_no_other_server_can_share(vani_cluster):
    """HAProxy sends a connection to Serve's fallback proxy when it holds every replica as down. At Serve's
    fixed 8500 with SO_REUSEPORT, two Serves on one machine split those connections: a connect burst on one
    private vani was answered by another deployment's sessions (cluster/ports.py)."""
    assert await until(lambda: entrances_healthy(vani_cluster), timeout=60)
    configs = {p.cmdline()[p.cmdline().index("-f") + 1] for p in haproxies(vani_cluster.haproxy_root)}
    ports = set().union(*(fallback_ports(c) for c in configs))
    assert len(ports) == 1, ports  # the head node's one fallback proxy, named in every node's config
    (port,) = ports
    assert port != 8500
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        pass  # it listens
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with pytest.raises(OSError) as err:
            s.bind(("127.0.0.1", port))
        assert err.value.errno == errno.EADDRINUSE


async def test_gateway_replicas_run_the_relay_on_uvicorns_loop(vani_cluster):
    """Serve's one-loop replica (gateway/scaling.REPLICA_ENV): no cross-thread hop per relayed message."""
    assert await until(lambda: replica_per_node(vani_cluster))
    pids = [r["pid"] for r in running_replicas(await serve_details(), "vani")]
    assert pids
    for pid in pids:
        env = psutil.Process(pid).environ()
        assert {k: env.get(k) for k in REPLICA_ENV} == REPLICA_ENV, f"replica {pid}"


async def test_clients_through_each_entrance_are_served_on_hosts_of_both_nodes(vani_cluster):
    sessions = []
    for port in vani_cluster.entrance_ports:
        for _ in range(6):
            s = await VaniSession.connect(f"ws://127.0.0.1:{port}/fast", sid())
            await echoed(s)
            sessions.append(s)
    registry = ray.get_actor("fast-registry", namespace="vani")
    nodes = {(await registry.where.remote(s.session_id))["node_id"] for s in sessions}
    assert nodes == set(vani_cluster.node_ids)
    # A session is reached from any entrance: resume through the other node's entrance.
    first = sessions[0]
    await first.close(graceful=False)
    other = vani_cluster.entrance_ports[1]
    again = await VaniSession.connect(f"ws://127.0.0.1:{other}/fast", first.session_id, resume_token=first.resume_token)
    assert again.started["resumed"] is True
    await echoed(again)
    for s in [again, *sessions[1:]]:
        await s.close()


async def test_more_connections_add_gateway_replicas(vani_cluster):
    """Serve autoscaling counts each open WebSocket: past gateway_target_connections per replica it adds
    replicas (up to gateway_max_replicas), spread over the nodes."""
    settings = Settings.load(
        env={},
        app_name="scale",
        route_prefix="/scale",
        http_port=vani_cluster.entrance_ports[0],
        hosts_per_node=1,
        dashboard=False,
        session_mode="echo",
        echo_delay_ms=0,
        gateway_replicas=0,
        gateway_replicas_per_node=0,
        gateway_min_replicas=1,
        gateway_max_replicas=3,
        gateway_target_connections=2,
    )
    await asyncio.to_thread(deploy, settings)
    sessions: list[VaniSession] = []
    try:
        assert len(running_replicas(await serve_details(), "scale")) == 1
        for _ in range(8):
            sessions.append(await VaniSession.connect(f"{vani_cluster.ws}/scale", sid()))

        async def scaled() -> bool:
            return len(running_replicas(await serve_details(), "scale")) == 3

        assert await until(scaled, timeout=120), "8 connections at 2 per replica did not reach the max of 3"
        for s in sessions:  # the connections made before the scale-up are untouched by it
            await echoed(s)
    finally:
        for s in sessions:
            await s.close()
        await asyncio.to_thread(undeploy, settings)


async def test_killing_one_nodes_gateway_replica_leaves_the_other_entrance_serving(vani_cluster):
    assert await until(lambda: replica_per_node(vani_cluster))
    worker = vani_cluster.node_ids[1] if len(vani_cluster.node_ids) > 1 else vani_cluster.node_ids[0]
    victims = [r for r in running_replicas(await serve_details(), "vani") if r["node_id"] == worker]
    assert victims
    for r in victims:
        ray.kill(ray.get_actor(r["actor_name"], namespace="serve"), no_restart=True)
    gone = {r["actor_name"] for r in victims}

    async def noticed() -> bool:  # Serve saw the replica die (HAProxy's server list follows within moments)
        return not gone & {r["actor_name"] for r in running_replicas(await serve_details(), "vani")}

    assert await until(noticed, timeout=60)

    async def served(port: int) -> bool:
        try:
            s = await VaniSession.connect(f"ws://127.0.0.1:{port}/", sid())
        except Exception:
            return False
        await s.close()
        return s.started["resumed"] is False

    head = vani_cluster.entrance_ports[0]
    assert await until(lambda: served(head), timeout=30)
    for _ in range(5):
        assert await served(head), "the head node's entrance refused a new session after the kill"

    async def replaced() -> bool:  # Serve replaces the replica (on whichever node SPREAD picks)
        return len(running_replicas(await serve_details(), "vani")) >= len(vani_cluster.node_ids)

    assert await until(replaced, timeout=120)


async def test_a_client_that_closes_is_let_go_by_its_host(vani_cluster):
    """Serve's direct ingress (under HAProxy) cancels the gateway's request the moment it reads the client's
    disconnect; the gateway still closes its link, so the host suspends the session (then resume works
    and the TTL runs). Before that fix about half of these sessions stayed attached to a dead socket."""
    registry = ray.get_actor("fast-registry", namespace="vani")
    for _ in range(10):
        s = await VaniSession.connect(f"{vani_cluster.ws}/fast", sid())
        await s.close(graceful=False)

        async def suspended(session_id: str = s.session_id) -> bool:
            stats = await registry.host_stats.remote()
            return any(x["session_id"] == session_id and not x["connected"] for h in stats for x in h["sessions"])

        assert await until(suspended, timeout=20), f"{s.session_id} still attached to its closed connection"
