"""Shared fixtures: one real 2-node Ray cluster (on 127.0.0.1) with vani deployed as several apps.

Each app is a full vani deployment (own registry, own session hosts, own settings) under its own route
prefix on one Serve HTTP port, so tests can use different limits without restarting Ray:

  /        default settings (500 ms echo delay), sharded
  /fast    echo delay 0, flood guard off, no admission by load (throughput and ordering)
  /strict  API key, max 30 sessions, 2 s TTL, tight flood guard, no admission by load
  /actor   one detached actor per session, 3 s TTL
  /agent   voice-agent sessions (and /agent/v2/flux transcription sessions) on the provider emulator,
           their session store a real Redis (the other apps: the default SQLite)
  /local   voice-agent and transcription sessions on the embedded offline models (the `vani up` default)
  /localcap like /local, one session per node (admission by the embedded models' capacity)
  /mp3     like /agent, with MP3 TTS and a 96 KB inbound ring
  /overload echo delay 0, tight flood guard, admission by load (its hosts get stalled by the test)

The session-protocol apps run ``session_mode="echo"``. The provider emulator runs in its own process on
127.0.0.1 (``provider_emulator``), started before the cluster so the agent apps can point at it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# Keep every Ray address on loopback (without this Ray rewrites 127.0.0.1 to the machine's interface
# IP). Set at import time: Ray reads it when first imported, possibly by a test module.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# Serve's proxy prefers replicas on its own node; spread connections so tests see every replica.
os.environ["RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING"] = "0"

from load.store_server import PrivateRedis
from tests.support.otlp_receiver import OtlpHttpReceiver
from vani.cluster.haproxy_files import haproxy_files_env, private_haproxy_dir
from vani.cluster.ports import free_port, serve_ports_env
from vani.cluster.run import INGRESS_ENV, PROXY_CALLBACK_ENV

# vani's fixes for the HTTP ingress, installed as `vani up` installs them (gateway/ingress_guard.py), and
# the default ingress (Serve's HAProxy mode), as `vani up` starts it.
os.environ.update(PROXY_CALLBACK_ENV)
os.environ.update(INGRESS_ENV["haproxy"])

STRICT_KEY = "s3cret-test-key"


@dataclass
class VaniCluster:
    http: str  # http://127.0.0.1:PORT, the head node's entrance
    ws: str  # ws://127.0.0.1:PORT
    metrics_ports: list[int]
    cluster: object
    node_ids: list[str]
    entrance_ports: list[int]  # each node's entrance (HAProxy), head first
    haproxy_root: str = ""  # each node's HAProxy files, in a subdirectory each (cluster/haproxy_files.py)
    redis: Any = None  # the /agent app's session store (load/store_server.PrivateRedis): stop() / start()
    otlp: Any = None  # the /agent app's trace receiver (tests/support/otlp_receiver.OtlpHttpReceiver)

    def url(self, app: str = "") -> str:
        return f"{self.ws}/{app}".rstrip("/")

    def http_url(self, app: str = "") -> str:
        return f"{self.http}/{app}".rstrip("/")


AGENT = dict(
    session_mode="agent",
    stt_provider="deepgram",
    llm_provider="openai",
    tts_provider="deepgram",
    deepgram_base_url="{emulator}",
    openai_base_url="{emulator}/v1",
    llm_model="emulated",
    provider_session_header="x-emulator-key",
    flood_burst_s=0,
    session_ttl_s=5.0,
    # Generous: this machine's 2 cores are shared with other clusters, and a watchdog must never fire
    # by accident in a test (the watchdog tests fault the emulator for longer than these).
    watchdog_turn_no_audio_s=1.5,
    watchdog_llm_first_token_s=10.0,
    watchdog_tts_stall_s=10.0,
    watchdog_paused_s=8.0,
    # Above the watchdogs, as the defaults are (4-5 s < 10 s): a stalled provider stream is ended by its
    # watchdog, never by a read timeout racing it at the same second.
    provider_read_timeout_s=20.0,
)
# Every app but the default one runs one gateway replica (a process each: keep the cluster small); the
# default app runs as `vani up` does, autoscaled with a replica per node, so both nodes are entrances.
APPS = {
    "vani": dict(route_prefix="/", gateway_replicas=0),
    # /fast and /strict: no admission by loop lag (overload_lag_ms=0). Their tests open many sessions at once
    # and assert where or how many land; on this shared 2-core box a lag spike past the default 500 ms once
    # refused one of them "overloaded" (admission by load has its own app, /overload, below).
    "fast": dict(route_prefix="/fast", echo_delay_ms=0, flood_burst_s=0, gateway_replicas=2, overload_lag_ms=0),
    "strict": dict(
        route_prefix="/strict",
        echo_delay_ms=0,
        api_key=STRICT_KEY,
        max_sessions=30,
        session_ttl_s=2.0,
        flood_burst_s=2.0,
        flood_rate=1.5,
        overload_lag_ms=0,
    ),
    "actor": dict(route_prefix="/actor", placement_mode="actor", echo_delay_ms=0, session_ttl_s=3.0),
    # Its sessions' durable state goes to a real Redis (tests/test_recovery.py); the other apps use the
    # default SQLite store (tests/test_session_lifecycle.py kills a host of /fast).
    # Its gateway and hosts export their spans to a real OTLP/HTTP receiver (tests/test_tracing_cluster.py)
    # and log JSON lines (tests/test_metrics.py).
    "agent": dict(
        route_prefix="/agent",
        **AGENT,
        session_store="{redis}",
        otel_exporter="otlp",
        otel_endpoint="{otlp}",
        log_format="json",
    ),
    # Aura's MP3 (paced by frame headers, actors/agent/audio_duration.py) and a non-default inbound ring.
    "mp3": dict(route_prefix="/mp3", **{**AGENT, "tts_encoding": "mp3", "inbound_ring_bytes": 98304}),
    # Overload (tests/test_overload.py): a tight flood guard, so hosts the test stalls (SIGSTOP) surely
    # burst a backlog far past it; a loop-lag threshold above the default so a busy box never trips it
    # by accident (the stall does, for sure).
    "overload": dict(
        route_prefix="/overload", echo_delay_ms=0, flood_burst_s=2.0, flood_rate=1.5, overload_lag_ms=1000.0
    ),
    # The embedded offline default (real models, no network): what `vani up` runs.
    "local": dict(route_prefix="/local", session_mode="agent", flood_burst_s=0, session_ttl_s=5.0),
    # The same, taking one session per node on the embedded models (tests/test_local_capacity.py).
    "localcap": dict(
        route_prefix="/localcap",
        session_mode="agent",
        flood_burst_s=0,
        session_ttl_s=1.0,
        local_max_sessions_per_node=1,
    ),
}
for _name, _app in APPS.items():
    _app.setdefault("session_mode", "echo")  # the session-protocol apps keep their echo meaning
    _app.setdefault("gateway_replicas", 1)
    # Undeploying at the end waits for each replica's open connections up to the drain time (600 s by
    # default): a test that fails with a socket open must not hold the teardown for 10 minutes.
    _app.setdefault("gateway_drain_s", 5.0)

# The emulator's latency for tests: fast, so suites stay short (tests assert order, never speed).
EMULATOR_LATENCY = "ttft_ms=20;tokens_per_s=400;ttfb_ms=20;rtf=0.02"


@pytest.fixture(scope="session")
def provider_emulator() -> Iterator[str]:
    """The provider emulator (``vani emulate``) in its own process on 127.0.0.1; yields its base URL."""
    import subprocess
    import time

    import httpx

    port = free_port()
    code = (
        "import os, uvicorn\n"
        "from vani.adapters.emulator.app import build_app\n"
        "from vani.adapters.emulator.cli import SERVER_KW\n"
        "from vani.adapters.emulator.latency import Latency\n"
        f"uvicorn.run(build_app(Latency().override(os.environ['VANI_EMULATOR_LATENCY'])), host='127.0.0.1', "
        f"port={port}, **SERVER_KW)\n"
    )
    env = {**os.environ, "VANI_EMULATOR_LATENCY": EMULATOR_LATENCY}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/__emulator/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "provider emulator did not start"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def node_env(haproxy_dir: str, entrance_port: int | None = None) -> dict[str, str]:
    """A node's own HAProxy files in ``haproxy_dir`` (cluster/haproxy_files.py). A worker node's entrance
    listens on ``entrance_port`` (Serve's per-node override); the head's on the app's ``http_port``."""
    os.makedirs(haproxy_dir, mode=0o700, exist_ok=True)
    # Serve's fallback proxy (head node) on ports of this cluster's own, never shared (cluster/ports.py).
    env = {**haproxy_files_env(haproxy_dir), **serve_ports_env()}
    if entrance_port is not None:
        env["RAY_SERVE_WORKER_PROXY_HTTP_PORT"] = str(entrance_port)
    return env


def start_two_node_cluster(cluster_cls, worker_entrance_port: int, haproxy_root: str, attempts: int = 3):
    """A head and a worker node on 127.0.0.1. Retried: Ray gives a raylet a fixed 30 s to register,
    which a loaded 2-core box occasionally misses."""
    for attempt in range(attempts):
        metrics_ports = [free_port(), free_port()]
        cluster = cluster_cls(shutdown_at_exit=True)
        try:
            cluster.add_node(
                num_cpus=2,
                node_ip_address="127.0.0.1",
                include_dashboard=False,
                metrics_export_port=metrics_ports[0],
                env_vars=node_env(os.path.join(haproxy_root, "h")),
            )
            cluster.add_node(
                num_cpus=2,
                node_ip_address="127.0.0.1",
                metrics_export_port=metrics_ports[1],
                env_vars=node_env(os.path.join(haproxy_root, "w"), worker_entrance_port),
            )
            cluster.wait_for_nodes()
            return cluster, metrics_ports
        except Exception as exc:
            print(f"cluster start attempt {attempt + 1} failed: {exc!r}", file=sys.stderr)
            cluster.shutdown()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def vani_cluster(provider_emulator: str) -> Iterator[VaniCluster]:
    # Keep every address on loopback: without this Ray rewrites 127.0.0.1 to the machine's interface IP.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_metrics_report_interval_ms", "1000")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Dummy credentials for the emulated providers; Ray's node processes inherit this environment.
    from vani.adapters.emulator.cli import env_for

    for k, v in env_for(provider_emulator).items():
        if not k.startswith("VANI_"):
            os.environ.setdefault(k, v)
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster

    from vani.cluster.config import Settings
    from vani.cluster.run import deploy, undeploy

    redis = PrivateRedis()  # Debian's redis-server on a free loopback port, for the /agent app's sessions
    redis.start()
    otlp = OtlpHttpReceiver()  # the /agent app's spans
    port, worker_port = free_port(), free_port()
    store_dir = tempfile.mkdtemp(prefix="vani-test-sessions-")  # each run's session stores (SQLite), removed after
    haproxy_root = private_haproxy_dir()  # each node's HAProxy config and sockets, in a subdirectory each
    cluster, metrics_ports = start_two_node_cluster(Cluster, worker_port, haproxy_root)
    ray.init(address=cluster.address, namespace="vani", log_to_driver=False, _node_ip_address="127.0.0.1")
    deployed: list[Settings] = []
    try:
        for name, overrides in APPS.items():
            overrides = {
                k: v.format(emulator=provider_emulator, redis=redis.url, otlp=otlp.url) if isinstance(v, str) else v
                for k, v in overrides.items()
            }
            settings = Settings.load(
                env={},
                app_name=name,
                http_port=port,
                hosts_per_node=1,
                dashboard=False,
                session_store_dir=store_dir,
                **overrides,
            )
            deploy(settings)
            deployed.append(settings)
        node_ids = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        yield VaniCluster(
            f"http://127.0.0.1:{port}",
            f"ws://127.0.0.1:{port}",
            metrics_ports,
            cluster,
            node_ids,
            [port, worker_port],
            haproxy_root,
            redis,
            otlp,
        )
    finally:
        for settings in deployed:
            try:
                undeploy(settings)
            except Exception as exc:  # keep tearing down
                print(f"undeploy {settings.app_name}: {exc!r}", file=sys.stderr)
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(store_dir, ignore_errors=True)
        shutil.rmtree(haproxy_root, ignore_errors=True)
        redis.close()
        otlp.close()
