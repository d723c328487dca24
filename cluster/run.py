"""Start or join Ray, deploy the Serve app and its control actors, and tear them down again."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import shutil
import signal
import sys
import sysconfig
import threading
import time
from typing import Any

import httpx

from vani.cluster.config import Settings
from vani.cluster.haproxy_files import haproxy_files_env, private_haproxy_dir
from vani.cluster.logs import configure_logging
from vani.cluster.ports import serve_ports_env

log = logging.getLogger("vani")


# Serve calls this in every process running its HTTP server: fixes for oversized WebSocket upgrades
# and absolute-form targets (gateway/ingress_guard.py). Set in Ray's environment before Ray starts.
PROXY_CALLBACK_ENV = {"RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": "vani.gateway.ingress_guard.proxy_callback"}


def _haproxy_env() -> dict[str, str]:
    # Each node's HAProxy takes at most RAY_SERVE_HAPROXY_MAXCONN connections (Serve's default 4096; a
    # higher value needs ulimit -n above twice that, or HAProxy refuses to start).
    env = {"RAY_SERVE_ENABLE_HA_PROXY": "1"}
    # HAProxy with its stats / Prometheus pages on private Unix sockets, no TCP (gateway/haproxy_bind.py).
    wrapper = os.path.join(sysconfig.get_path("scripts"), "vani-haproxy")
    if os.access(wrapper, os.X_OK):
        env["RAY_SERVE_HAPROXY_BINARY_PATH"] = wrapper
    return env


# Serve reads these when Ray starts (its controller and proxies inherit the environment).
INGRESS_ENV: dict[str, dict[str, str]] = {
    "haproxy": _haproxy_env(),
    "proxy": {"RAY_SERVE_ENABLE_HA_PROXY": "0"},
    "direct": {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1"},  # benchmarks only: a port per replica
}


def keep_ray_on(bind_host: str) -> str:
    """Make a Ray started by this process use ``bind_host`` as its node IP; returns the address to pass.

    Ray replaces a loopback node IP with the machine's interface IP (so other machines could join)
    unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0; then every Ray service and every session host's link
    server would listen on that interface. Set before Ray starts: its processes inherit it.
    """
    bind_host = "127.0.0.1" if bind_host == "localhost" else bind_host
    try:
        loopback = ipaddress.ip_address(bind_host).is_loopback
    except ValueError:
        raise ValueError(f"bind_host must be an IP address of this machine, not {bind_host!r}") from None
    if loopback:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        constants = sys.modules.get("ray._private.ray_constants")
        if constants is not None:  # Ray was imported before us: it read the variable already
            constants.ENABLE_RAY_CLUSTER = False
    return bind_host


def connect_ray(settings: Settings) -> dict[str, Any]:
    """``ray.init`` against ``settings.address``, or start a local single-node Ray on ``bind_host``."""
    node_ip = None if settings.address else keep_ray_on(settings.bind_host)
    haproxy_dir = None
    import ray

    if settings.ingress not in INGRESS_ENV:
        raise ValueError(f"ingress must be one of {', '.join(INGRESS_ENV)}, not {settings.ingress!r}")
    if ray.is_initialized():
        return {"dashboard_url": None}
    if settings.address:
        log.info("joining %s: its ingress mode is set by each node's `ray start` environment", settings.address)
        ctx = ray.init(address=settings.address, namespace=settings.namespace, log_to_driver=False)
    else:
        kwargs: dict[str, Any] = {
            # "local": always start a new Ray, never join one that `ray start` or a test left running.
            "address": "local",
            "namespace": settings.namespace,
            "include_dashboard": settings.dashboard,
            "dashboard_port": settings.dashboard_port,
            "_node_ip_address": node_ip,
            "log_to_driver": False,
        }
        if settings.metrics_export_port:
            kwargs["_metrics_export_port"] = settings.metrics_export_port
        os.environ.update(INGRESS_ENV[settings.ingress])  # before Ray starts: its processes inherit it
        if settings.ingress == "haproxy":
            # Its config and sockets in a directory of this run's own (cluster/haproxy_files.py); its stats
            # and Prometheus pages are Unix sockets there, no TCP port (gateway/haproxy_bind.py).
            if "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC" not in os.environ:
                haproxy_dir = private_haproxy_dir()
                os.environ.update(haproxy_files_env(haproxy_dir))
        # Serve's fallback proxy on ports of this Ray's own, never shared with another Serve (cluster/ports.py).
        for key, value in {**PROXY_CALLBACK_ENV, **serve_ports_env()}.items():
            os.environ.setdefault(key, value)
        ctx = ray.init(**kwargs)
    url = ctx.dashboard_url
    return {"dashboard_url": f"http://{url}" if url and not url.startswith("http") else url, "haproxy_dir": haproxy_dir}


def deploy(settings: Settings, timeout_s: float = 120.0) -> str:
    """Create the registry (and through it the session hosts) and run the gateway app; return its URL."""
    from ray import serve

    from vani.actors.control.deploy import start_registry
    from vani.gateway.app import Gateway
    from vani.gateway.scaling import alive_node_ids, deployment_options, spread_at_deploy

    start_registry(settings, timeout_s)
    serve.start(
        http_options={"host": settings.http_host, "port": settings.http_port},
        proxy_location="EveryNode",  # an entrance on every node that holds gateway replicas
    )
    nodes = len(alive_node_ids())
    gateway = Gateway.options(**deployment_options(settings, nodes))
    serve.run(gateway.bind(settings.to_dict()), name=settings.app_name, route_prefix=settings.route_prefix)
    if settings.gateway_replicas == 0 and settings.gateway_replicas_per_node > 0 and nodes > 1:
        try:
            spread_at_deploy(settings.app_name)
        except Exception:  # best effort: the app is deployed and serving either way
            log.warning("could not check the gateway replicas' spread over the nodes", exc_info=True)
    url = base_url(settings)
    wait_healthy(url, timeout_s)
    return url


def base_url(settings: Settings) -> str:
    prefix = settings.route_prefix.rstrip("/")
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::") else settings.http_host
    return f"http://{host}:{settings.http_port}{prefix}"


def wait_healthy(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"gateway at {url} not healthy after {timeout_s} s ({last!r})")


def undeploy(settings: Settings) -> None:
    """Delete the app and kill the registry and every host it created."""
    from ray import serve

    from vani.actors.control.deploy import stop_registry

    try:
        serve.delete(settings.app_name)
    except Exception as exc:  # already gone
        log.info("serve.delete: %r", exc)
    stop_registry(settings)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(
        address=getattr(args, "address", None),
        http_host=getattr(args, "host", None),
        bind_host=getattr(args, "bind_host", None),
        http_port=getattr(args, "port", None),
        placement_mode=getattr(args, "mode", None),
        ingress=getattr(args, "ingress", None),
        dashboard=False if getattr(args, "no_dashboard", False) else None,
    )


def cmd_up(args: argparse.Namespace) -> int:
    """``vani up``: run until Ctrl-C, then remove everything this command started."""
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)
    import ray
    from ray import serve

    info = connect_ray(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        url = deploy(settings)
        print(f"vani is up: {url}/", flush=True)
        print(f"  websocket: {url.replace('http', 'ws', 1)}/v1/sessions/<session_id>", flush=True)
        if info.get("dashboard_url"):
            print(f"  Ray dashboard: {info['dashboard_url']}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut the teardown short and leave actors or Ray behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("stopping vani ...", flush=True)
        try:
            undeploy(settings)
            if not settings.address:
                serve.shutdown()
        finally:
            ray.shutdown()
            if info.get("haproxy_dir"):
                shutil.rmtree(info["haproxy_dir"], ignore_errors=True)
        print("stopped.", flush=True)
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    """``vani deploy --address ADDR``: deploy onto a running cluster and return (Serve stays up)."""
    settings = _settings(args)
    connect_ray(settings)
    url = deploy(settings)
    print(f"vani deployed: {url}/")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """``vani status``: what the registry knows, from the gateway's /v1/status (with the API key if given)."""
    token = args.token or os.environ.get("VANI_API_KEY")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.get(f"{args.url.rstrip('/')}/v1/status", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        print(f"vani status: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    if resp.status_code in (401, 403):
        print(f"vani status: {args.url} needs its API key (--token or VANI_API_KEY)", file=sys.stderr)
        return 1
    if resp.status_code != 200:
        print(f"vani status: {args.url} answered HTTP {resp.status_code}", file=sys.stderr)
        return 1
    st = resp.json()
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    print(
        f"app {st['app']}  mode {st['placement_mode']}  sessions {st['sessions']}/{st['max_sessions']}"
        f"  refused {st['refused']}  nodes {len(st['nodes'])}"
    )
    print(f"{'node':<14} {'entrance':<10} {'address':<22} {'replicas':>8} {'sessions':>8}")
    for n in st.get("entrances", []):
        entrance, address = n["entrance"] or "-", n.get("entrance_address") or "-"
        print(f"{n['node_id'][:12]:<14} {entrance:<10} {address:<22} {n['gateway_replicas']:>8} {n['sessions']:>8}")
    print(f"{'host':<48} {'node':<14} {'sessions':>8}")
    for h in st["hosts"]:
        print(f"{h['name']:<48} {h['node_id'][:12]:<14} {h['sessions']:>8}")
    for h in st.get("host_stats", []):  # only with the API key
        for s in h["sessions"]:
            print(f"  {h['name']}  {s['session_id']}  {s['state']}  {'connected' if s['connected'] else 'detached'}")
            usage = s.get("engine", {}).get("usage")
            if args.sessions and usage:  # agent sessions (actors/agent/usage.py), and the client's audio in
                audio_in = round(s.get("counters", {}).get("bytes_in", 0) / 32000, 3)
                print(f"    usage  audio_in_s {audio_in}  " + "  ".join(f"{k} {v}" for k, v in usage.items()))
    return 0
