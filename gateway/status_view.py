"""``GET /v1/status``: what the registry knows, shown only as far as the caller may see it.

- ``api_key`` set: the key is required, with the session routes' rules (``Authorization: Bearer`` or
  ``?token=``): no credentials -> 401, wrong ones -> 403. With the key: the full view, session ids and
  per-session stats included.
- no ``api_key``: anyone may ask, so the answer holds counts only (sessions per host, nodes), no
  session ids.

``entrances`` has a row per node: its ingress state, this app's gateway replicas on it and its live
sessions (gateway/entrances.py); the entrance's address only with the key.

Host link addresses never appear: they are internal to the cluster, and a client has no use for them.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection

from vani.cluster.config import Settings
from vani.gateway.entrances import per_node, serve_details
from vani.gateway.session_route import authorized

PUBLIC_KEYS = ("app", "placement_mode", "max_sessions", "sessions", "refused", "nodes")


def _credentials_given(conn: HTTPConnection) -> bool:
    return "authorization" in conn.headers or "token" in conn.query_params


def _without_addresses(items: list[dict[str, Any]], key: str = "address") -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != key} for item in items]


async def status_response(settings: Settings, registry: Any, conn: HTTPConnection) -> JSONResponse:
    if settings.api_key and not authorized(settings, conn):
        if _credentials_given(conn):
            return JSONResponse({"error": "forbidden", "message": "wrong API key"}, status_code=403)
        return JSONResponse(
            {"error": "unauthorized", "message": "this server needs its API key (Authorization: Bearer or ?token=)"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    status = await registry.status.remote()
    view = {k: status[k] for k in PUBLIC_KEYS}
    view["hosts"] = [{k: h[k] for k in ("name", "node_id", "sessions")} for h in status["hosts"]]
    entrances = per_node(await serve_details(), settings.app_name, status["hosts"])
    view["entrances"] = entrances if settings.api_key else _without_addresses(entrances, "entrance_address")
    if settings.api_key:  # only a caller holding the key sees session ids
        view["host_stats"] = _without_addresses(await registry.host_stats.remote())
    return JSONResponse(view)
