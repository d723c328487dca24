"""The gateway's replica settings (gateway/scaling.py) and the HAProxy wrapper's config rewrite
(gateway/haproxy_bind.py), without Ray. The 2-node behaviour is tests/test_entrances.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sysconfig
import time
from types import SimpleNamespace

import pytest

from vani.cluster.config import Settings
from vani.gateway import scaling
from vani.gateway.haproxy_bind import harden, private_admin_socket, private_listeners
from vani.gateway.scaling import ConnectionsAndNodes, deployment_options, desired_replicas


def test_fixed_replicas_turn_autoscaling_off():
    opts = deployment_options(Settings(gateway_replicas=3))
    assert opts["num_replicas"] == 3 and "autoscaling_config" not in opts
    assert opts["ray_actor_options"]["runtime_env"]["env_vars"] == scaling.REPLICA_ENV
    assert opts["graceful_shutdown_timeout_s"] == Settings().gateway_drain_s


def test_autoscaling_options_come_from_the_settings():
    s = Settings(gateway_min_replicas=2, gateway_max_replicas=7, gateway_target_connections=50, gateway_drain_s=30)
    opts = deployment_options(s)
    cfg = opts["autoscaling_config"]
    assert (cfg["min_replicas"], cfg["initial_replicas"], cfg["max_replicas"]) == (2, 2, 7)
    assert cfg["target_ongoing_requests"] == 50
    assert cfg["policy"]["policy_kwargs"] == {"per_node": Settings().gateway_replicas_per_node}
    assert opts["graceful_shutdown_timeout_s"] == 30
    # A max below the min is raised to it rather than refused by Serve at deploy time.
    assert (
        deployment_options(Settings(gateway_min_replicas=4, gateway_max_replicas=1))["autoscaling_config"][
            "max_replicas"
        ]
        == 4
    )


def test_the_per_node_floor_is_the_minimum_at_deploy():
    cfg = deployment_options(Settings(gateway_replicas_per_node=2, gateway_min_replicas=1), nodes=3)
    assert (cfg["autoscaling_config"]["min_replicas"], cfg["autoscaling_config"]["initial_replicas"]) == (6, 6)
    assert deployment_options(Settings(gateway_replicas_per_node=0), nodes=3)["autoscaling_config"]["min_replicas"] == 1


@pytest.mark.parametrize(
    ("connections", "nodes", "per_node", "want"),
    [(0, 1, 1, 1), (0, 3, 1, 3), (0, 3, 2, 6), (450, 1, 1, 3), (450, 4, 1, 4), (401, 2, 0, 3), (0, 2, 0, 1)],
)
def test_desired_replicas_is_load_or_the_per_node_floor(connections, nodes, per_node, want):
    assert desired_replicas(connections, running=2, target=200, nodes=nodes, per_node=per_node) == want


def test_policy_reads_the_node_count_at_most_every_few_seconds(monkeypatch):
    calls = []
    monkeypatch.setattr(scaling, "_alive_nodes", lambda: calls.append(1) or 3)
    policy = ConnectionsAndNodes(per_node=1)
    config = SimpleNamespace(get_target_ongoing_requests=lambda: 200)

    def ctx(now: float, total: float) -> SimpleNamespace:
        return SimpleNamespace(
            current_time=now,
            total_num_requests=total,
            current_num_replicas=1,
            config=config,
            policy_state={"kept": True},
        )

    assert policy(ctx(100.0, 10)) == (3, {"kept": True})
    assert policy(ctx(101.0, 900)) == (5, {"kept": True})
    assert len(calls) == 1
    policy(ctx(100.0 + scaling.NODES_EVERY_S, 0))
    assert len(calls) == 2


CONFIG = """global
    stats socket /tmp/x/admin.sock mode 666 level admin
defaults
    mode http
frontend prometheus
    bind :9101
    mode http
    http-request use-service prometheus-exporter if { path /metrics }
frontend http_frontend
    bind 0.0.0.0:8000
    default_backend b
backend b
    server s1 127.0.0.1:30000
listen stats
  bind *:8404
  stats enable
  stats uri /stats
"""


def test_the_stats_and_prometheus_listeners_move_to_private_unix_sockets():
    out = private_listeners(CONFIG, "/run/n1")
    assert "    bind unix@/run/n1/prometheus.sock mode 600\n" in out
    assert "  bind unix@/run/n1/stats.sock mode 600\n" in out
    assert "    bind 0.0.0.0:8000\n" in out  # the client entrance stays where Serve put it
    assert "server s1 127.0.0.1:30000" in out
    assert private_listeners(out, "/run/n1") == out


def test_the_admin_socket_is_made_private_to_its_user():
    out = private_admin_socket(CONFIG)
    assert "    stats socket /tmp/x/admin.sock mode 600 level admin\n" in out
    hardened = harden(CONFIG, "/run/n1")
    assert "mode 666" not in hardened and "bind unix@/run/n1/prometheus.sock mode 600" in hardened
    assert private_admin_socket(out) == out
    # Serve's own template line, with the listener hand-over HAProxy's reloads use.
    serve_line = "    stats socket /p/admin.sock mode 666 level admin expose-fd listeners\n"
    assert private_admin_socket(serve_line) == serve_line.replace("666", "600")


def test_each_node_names_its_own_haproxy_files():
    from vani.cluster.haproxy_files import haproxy_files_env, private_haproxy_dir

    a, b = private_haproxy_dir(), private_haproxy_dir()
    try:
        assert a != b and os.stat(a).st_mode & 0o777 == 0o700
        env = haproxy_files_env(a)
        # Every file Serve's HAProxy mode keeps under its shared /tmp/haproxy-serve default is moved.
        from ray.serve._private import constants

        shared = [
            k
            for k in dir(constants)
            if k.startswith("RAY_SERVE_HAPROXY_") and "/tmp/haproxy-serve" in str(getattr(constants, k))
        ]
        assert sorted(shared) == sorted(env)
        assert all(v == a or os.path.dirname(v) == a for v in env.values())
    finally:
        os.rmdir(a)
        os.rmdir(b)


def test_the_wrapper_runs_the_real_haproxy_even_with_the_stats_ports_taken(tmp_path):
    """vani-haproxy, run as Serve runs it (the variable naming it set), starts the real HAProxy although the
    stats and Prometheus TCP ports Serve wrote are held by another process: those pages are on private Unix
    sockets next to the config (before, a taken port kept a node's entrance down for good)."""
    import httpx

    wrapper = os.path.join(sysconfig.get_path("scripts"), "vani-haproxy")
    taken = [socket.socket(), socket.socket()]
    for s in taken:
        s.bind(("127.0.0.1", 0))
        s.listen()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        entrance = free.getsockname()[1]
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        CONFIG.replace("/tmp/x", str(tmp_path))
        .replace("9101", str(taken[0].getsockname()[1]))
        .replace("8404", str(taken[1].getsockname()[1]))
        .replace("0.0.0.0:8000", f"127.0.0.1:{entrance}")
    )
    env = {**os.environ, "RAY_SERVE_HAPROXY_BINARY_PATH": wrapper}
    proc = subprocess.Popen([wrapper, "-db", "-f", str(cfg)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        sockets = {name: tmp_path / name for name in ("prometheus.sock", "stats.sock", "admin.sock")}
        deadline = time.monotonic() + 20
        while not all(p.exists() for p in sockets.values()):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "HAProxy did not start"
            time.sleep(0.1)
        for path in sockets.values():
            assert os.stat(path).st_mode & 0o777 == 0o600, path
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sockets["prometheus.sock"]))) as http:
            assert "haproxy_process_" in http.get("http://haproxy/metrics").text
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sockets["stats.sock"]))) as http:
            assert http.get("http://haproxy/stats").status_code == 200
        assert f"127.0.0.1:{entrance}" in cfg.read_text()
    finally:
        proc.kill()
        proc.wait()
        for s in taken:
            s.close()


def test_a_replica_doubled_up_while_a_node_has_none_is_the_one_to_restart():
    from vani.gateway.scaling import misplaced_replica

    def rep(node: str, name: str) -> dict:
        return {"node_id": node, "actor_name": name}

    assert misplaced_replica([rep("a", "r1"), rep("a", "r2")], ["a", "b"]) == "r2"
    assert misplaced_replica([rep("a", "r1"), rep("b", "r2")], ["a", "b"]) is None
    assert misplaced_replica([rep("a", "r1"), rep("b", "r2"), rep("b", "r3")], ["a", "b"]) is None
    assert misplaced_replica([rep("a", "r1")], ["a", "b"]) is None  # nothing to move: wait for Serve
