"""The Ray Serve ingress: a FastAPI app deployed as the ``Gateway`` deployment.

Routes:
  GET /healthz                  liveness (and which app / placement mode)
  GET /v1/status                sessions, hosts, nodes (``vani status``; gateway/status_view.py)
  WS  /v1/sessions/{session_id} the duplex voice session (see docs/protocol.md)
  WS  /v2/listen                transcription only, Deepgram Flux's own path and schema (gateway/flux_route.py);
                                the session id from ?session_id= / X-Vani-Session, else a fresh one
  WS  /v2/flux/{session_id}     the same, the session id in the path (also .../v2/listen after it)
  GET /, /{file}                the browser client, client/web (gateway/web_route.py); declared last

Replicas are stateless: any replica reaches any session through the registry and the session's host.
"""

# No `from __future__ import annotations` here: FastAPI must see real types through Serve's
# class-based ingress (string annotations make it treat the WebSocket as a query parameter).

from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import Response
from ray import serve

from vani.actors.control.handle import registry_handle
from vani.actors.metrics import session_metrics
from vani.actors.tracing import configure as configure_tracing
from vani.cluster.config import Settings
from vani.cluster.logs import configure_logging
from vani.gateway.flux_route import flux_socket, listen_socket
from vani.gateway.session_route import session_socket
from vani.gateway.status_view import status_response
from vani.gateway.web_route import web_file, web_index

app = FastAPI(title="vani", docs_url=None, redoc_url=None)


@serve.deployment(max_ongoing_requests=100_000, health_check_period_s=5)
@serve.ingress(app)
class Gateway:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = Settings.from_dict(settings)
        configure_logging(self.settings.log_level, self.settings.log_format)
        configure_tracing(self.settings, "gateway")
        self._registry = None
        self._closes = session_metrics().closes

    @property
    def registry(self) -> Any:
        if self._registry is None:
            self._registry = registry_handle(self.settings)
        return self._registry

    @app.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        return {"ok": True, "app": self.settings.app_name, "placement_mode": self.settings.placement_mode}

    @app.get("/v1/status")
    async def status(self, request: Request) -> Response:
        return await status_response(self.settings, self.registry, request)

    @app.websocket("/v1/sessions/{session_id}")
    async def session(self, websocket: WebSocket, session_id: str) -> None:
        await session_socket(websocket, session_id, self.settings, self.registry, self._closes)

    @app.websocket("/v2/flux/{session_id}")
    async def flux(self, websocket: WebSocket, session_id: str) -> None:
        await flux_socket(websocket, session_id, self.settings, self.registry, self._closes)

    # Deepgram's SDKs append /v2/listen to their base URL: with a base of vani's root that is Flux's own
    # path, with a base of /v2/flux/{id} it is this one.
    @app.websocket("/v2/flux/{session_id}/v2/listen")
    async def flux_listen(self, websocket: WebSocket, session_id: str) -> None:
        await flux_socket(websocket, session_id, self.settings, self.registry, self._closes)

    @app.websocket("/v2/listen")
    async def listen(self, websocket: WebSocket) -> None:
        await listen_socket(websocket, self.settings, self.registry, self._closes)

    # The browser client. Declared after every API route so those always match first.
    @app.get("/")
    async def web_root(self, request: Request) -> Response:
        return web_index(request)

    @app.get("/{name}")
    async def web(self, name: str) -> Response:
        return web_file(name)
