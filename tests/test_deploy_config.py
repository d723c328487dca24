"""deploy/ray-cluster.yaml is a valid Ray cluster launcher config that installs and deploys vani.

Validated against the schema Ray ships (``ray/autoscaler/ray-schema.json``), the one ``ray up`` uses.
Nothing is started.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "ray-cluster.yaml"
SCHEMA = Path(ray.__file__).resolve().parent / "autoscaler" / "ray-schema.json"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def test_config_matches_rays_cluster_schema(config):
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(config, schema)


def test_node_types_are_consistent(config):
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    workers = [name for name in types if name != config["head_node_type"]]
    assert workers, "needs a worker node type"
    for name in workers:
        assert types[name]["min_workers"] <= types[name]["max_workers"] <= config["max_workers"]


def test_setup_installs_vani_with_voice_extras(config):
    installs = [c for c in config["setup_commands"] if "pip install" in c and "vani[" in c]
    assert installs and "local" in installs[0] and "voice-gpl" in installs[0]


def test_head_starts_ray_then_deploys_vani(config):
    head = " ".join(config["head_start_ray_commands"])
    assert "ray start --head" in head
    assert head.index("ray start --head") < head.index("vani deploy --address")
    workers = " ".join(config["worker_start_ray_commands"])
    assert "ray start --address=$RAY_HEAD_IP:6379" in workers


def test_a_broken_config_is_rejected():
    # Guard against a schema that accepts anything: a config without a provider must fail.
    schema = json.loads(SCHEMA.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"cluster_name": "vani"}, schema)


def test_every_node_runs_vanis_proxy_hook(config):
    """The ingress fixes run in each node's Serve proxy only if that node's `ray start` names the hook."""
    from vani.cluster.run import PROXY_CALLBACK_ENV

    ((key, value),) = PROXY_CALLBACK_ENV.items()
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        start = next(c for c in commands if "ray start" in c)
        assert f"{key}={value}" in start
        assert start.index(key) < start.index("ray start")


def test_every_node_is_an_haproxy_entrance(config):
    """The default ingress (HAProxy, stats on loopback through vani-haproxy) on every node's `ray start`."""
    from vani.cluster.run import INGRESS_ENV

    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        start = next(c for c in commands if "ray start" in c)
        assert INGRESS_ENV["haproxy"]["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
        for key in ("RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_HAPROXY_BINARY_PATH"):
            assert start.index(key) < start.index("ray start")
        assert "RAY_SERVE_ENABLE_HA_PROXY=1" in start
        assert "RAY_SERVE_HAPROXY_BINARY_PATH=$HOME/venv/bin/vani-haproxy" in start
        # Serve's proxies never share a port with another process's (cluster/ports.py).
        assert "SERVE_SOCKET_REUSE_PORT_ENABLED=0" in start


def test_every_nodes_haproxy_keeps_its_files_in_a_private_directory(config):
    """Not Serve's shared /tmp/haproxy-serve (cluster/haproxy_files.py): each of Serve's HAProxy file
    variables names ~/.vani/haproxy, made mode 0700 before Ray starts."""
    from vani.cluster.haproxy_files import haproxy_files_env

    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        start = next(c for c in commands if "ray start" in c)
        assert start.index("mkdir -p -m 700 ~/.vani/haproxy") < start.index("ray start")
        for key, value in haproxy_files_env("$HOME/.vani/haproxy").items():
            assert f"{key}={value} " in start or f"{key}={value}\n" in start, key
            assert start.index(key) < start.index("ray start")
