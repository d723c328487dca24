"""Where clients can enter: per node, Serve's ingress (HAProxy or proxy), this app's gateway replicas and
the node's live sessions, for ``GET /v1/status`` and ``vani status``.

Serve's controller knows the ingress and replicas per node (the same record ``serve status`` and Ray's
dashboard read); the registry knows the sessions per host, and so per node.
"""

from __future__ import annotations

from typing import Any

RUNNING = "RUNNING"


async def serve_details() -> dict[str, Any]:
    """Serve's own view of the cluster (``ServeInstanceDetails`` as a dict)."""
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    return await controller.get_serve_instance_details.remote()


def per_node(details: dict[str, Any], app: str, hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per node that has an entrance, gateway replicas or session hosts (sorted by node id)."""
    port = (details.get("http_options") or {}).get("port")
    proxies = details.get("proxies") or {}
    replicas: dict[str, int] = {}
    for deployment in (details.get("applications", {}).get(app) or {}).get("deployments", {}).values():
        for r in deployment.get("replicas", []):
            if _name(r.get("state")) == RUNNING and r.get("node_id"):
                replicas[r["node_id"]] = replicas.get(r["node_id"], 0) + 1
    sessions: dict[str, int] = {}
    for h in hosts:
        sessions[h["node_id"]] = sessions.get(h["node_id"], 0) + h["sessions"]
    rows = []
    for node in sorted(set(proxies) | set(replicas) | set(sessions)):
        proxy = proxies.get(node)
        rows.append(
            {
                "node_id": node,
                "entrance": _name(proxy.get("status")) if proxy else None,
                "entrance_address": f"{proxy.get('node_ip')}:{port}" if proxy else None,
                "gateway_replicas": replicas.get(node, 0),
                "sessions": sessions.get(node, 0),
            }
        )
    return rows


def _name(value: Any) -> Any:
    """An enum's value (Serve's states are str enums; str() of one is its qualified name in 3.11)."""
    return getattr(value, "value", value)
