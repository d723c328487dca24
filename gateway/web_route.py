"""The browser client (``client/web``) served at ``/`` of each app: plain files, no build step.

Only the files directly in ``client/web`` are served, by exact name (no paths, so nothing outside the
folder is reachable), with explicit MIME types: AudioWorklet modules must come as ``text/javascript``.
The gateway declares these routes after its API routes, so ``/healthz``, ``/v1/...`` and ``/v2/...``
always win.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response

from vani import client

WEB_DIR = Path(client.__file__).resolve().parent / "web"
MIME = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
# Small files that change with the server: always revalidate, so an upgrade never mixes old and new modules.
# Public and static: any origin may import the module and its worklets (module scripts need CORS).
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Access-Control-Allow-Origin": "*"}


def web_files() -> dict[str, Path]:
    """Servable files by name (read per request: cheap, and edits show up without a restart)."""
    if not WEB_DIR.is_dir():
        return {}
    return {p.name: p for p in WEB_DIR.iterdir() if p.is_file() and p.suffix in MIME}


def web_file(name: str) -> Response:
    path = web_files().get(name)
    if path is None:
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(path, media_type=MIME[path.suffix], headers=HEADERS)


def web_index(request: Request) -> Response:
    """``index.html``; ``/agent`` (no slash) redirects to ``/agent/`` so the page's relative URLs
    (modules, websockets) resolve under the app's route prefix."""
    path = request.url.path
    if not path.endswith("/"):
        return RedirectResponse(path + "/", status_code=308)
    return web_file("index.html")
