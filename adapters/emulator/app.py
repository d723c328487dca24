"""The emulator ASGI app: Workers AI, Deepgram and OpenAI-compatible APIs on one port.

Paths (same as the real services, so only the base URL changes):

- ``WS  /client/v4/accounts/{acct}/ai/run/@cf/deepgram/flux``       Workers AI Flux (Bearer)
- ``WS  /client/v4/accounts/{acct}/ai/run/@cf/deepgram/aura-2-en``  Workers AI Aura-2 speak WS (Bearer)
- ``POST /client/v4/accounts/{acct}/ai/run/@cf/deepgram/aura-2-en`` Workers AI Aura-2 REST
- ``POST /client/v4/accounts/{acct}/ai/run/{model}``                Workers AI native text generation
- ``POST /client/v4/accounts/{acct}/ai/v1/chat/completions``        Workers AI OpenAI-compatible
- ``POST /v1/chat/completions``                                      OpenAI-compatible
- ``WS  /v2/listen``                                                 Deepgram Flux (Token or Bearer)
- ``POST /v1/speak`` / ``WS /v1/speak``                              Deepgram Aura-2 REST / speak WS

Auth: any non-empty token of the right scheme is accepted; a missing one gets the provider's 401.

Per-connection control (so one test can fault one session and leave the rest clean):

- ``x-emulator-key: <key>`` header (or the ``tag`` query param) names the session's script.
- ``x-emulator-fault: <spec>`` header (or ``emulator_fault`` query param) applies a fault to this
  connection, e.g. ``drop_after=3``, ``status=429;retry_after=0.1``, ``stall_after=2;stall_ms=5000``,
  ``malformed_after=1``, ``error_after=2``, ``slow_start_ms=500``, ``mp3_quirk``, ``no_type``,
  ``unknown``, ``split``, ``drop_after_ms=300`` (see ``faults.Fault``).
- ``x-emulator-latency: ttft_ms=50;tokens_per_s=200`` overrides the latency model (``latency.Latency``).
- ``POST /__emulator/scripts/{key}`` with JSON ``{"transcripts": [...], "reply": "...", "use_tool": true,
  "tool_arguments": {...}, "latency": {...}, "faults": {"flux"|"llm"|"tts"|"tts_ws": [spec, ...]}}``
  registers a script; each connection to a service pops the next fault spec of its queue ("" = clean),
  so "fail once, then succeed" is ``{"faults": {"llm": ["status=503"]}}``.
- ``GET /__emulator/scripts/{key}`` returns the script's log (connections, EndOfTurns, LLM requests,
  disconnects) for assertions; ``DELETE`` removes it; ``GET /__emulator/health`` is a liveness probe
  (it also says which worker process answered and that process's CPU seconds).

``vani emulate`` with ``VANI_EMULATOR_WORKERS=N`` runs N worker processes on the one port; they share the
scripts through ``shared.SharedStore``, so any worker serves any session's script (see that module).
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from vani.adapters.emulator import flux, llm, tts
from vani.adapters.emulator.control import Script, Store
from vani.adapters.emulator.latency import Latency
from vani.adapters.emulator.shared import ENV, SharedStore

CF = "/client/v4/accounts/{acct}/ai"


def app_from_env() -> Starlette:
    """App factory for ``uvicorn --factory`` / multi-worker runs: latency from ``VANI_EMULATOR_LATENCY``,
    scripts in the shared store file ``VANI_EMULATOR_STORE`` when set (see ``shared``)."""
    latency = Latency().override(os.environ.get("VANI_EMULATOR_LATENCY"))
    path = os.environ.get(ENV)
    return build_app(latency, SharedStore(path, latency) if path else None)


def build_app(latency: Latency | None = None, store: Store | None = None) -> Starlette:
    """A fresh emulator app with its own script store (``app.state.store``) unless one is given."""
    store = store or Store(latency)

    async def cf_run_post(request: Request) -> Response:
        model = request.path_params["model"]
        if model.startswith("@cf/deepgram/aura"):
            return await tts.speak_rest(request, store, cf=True)
        return await llm.native_run(request, store)

    async def cf_run_ws(ws: WebSocket) -> None:
        model = ws.path_params["model"]
        if model == "@cf/deepgram/flux":
            await flux.serve(ws, store, cf=True)
        elif model.startswith("@cf/deepgram/aura"):
            await tts.speak_ws(ws, store, cf=True)
        else:
            await ws.send_denial_response(
                JSONResponse(
                    {"errors": [{"message": f"no websocket for {model}"}], "success": False, "result": {}},
                    400,
                )
            )

    async def script_put(request: Request) -> Response:
        try:
            script = Script.from_json(await request.json())
        except (ValueError, TypeError, AttributeError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        store.put(request.path_params["key"], script)
        return JSONResponse({"ok": True})

    async def script_get(request: Request) -> Response:
        state = store.state(request.path_params["key"])
        if state is None:
            return JSONResponse({"error": "no such script"}, status_code=404)
        return JSONResponse(state)

    async def script_delete(request: Request) -> Response:
        store.delete(request.path_params["key"])
        return JSONResponse({"ok": True})

    async def health(_: Request) -> Response:
        # Which worker answered and its own CPU, so a load run can tell the emulator's cost per process.
        t = os.times()
        return JSONResponse({"ok": True, "scripts": store.count(), "pid": os.getpid(), "cpu_s": t.user + t.system})

    def ws(handler: Any, **kw: Any) -> Any:
        async def endpoint(websocket: WebSocket) -> None:
            await handler(websocket, store, **kw)

        return endpoint

    def http(handler: Any, **kw: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            return await handler(request, store, **kw)

        return endpoint

    routes = [
        Route(CF + "/v1/chat/completions", http(llm.chat_completions), methods=["POST"]),
        Route(CF + "/run/{model:path}", cf_run_post, methods=["POST"]),
        WebSocketRoute(CF + "/run/{model:path}", cf_run_ws),
        Route("/v1/chat/completions", http(llm.chat_completions), methods=["POST"]),
        Route("/v1/speak", http(tts.speak_rest, cf=False), methods=["POST"]),
        WebSocketRoute("/v1/speak", ws(tts.speak_ws, cf=False)),
        WebSocketRoute("/v2/listen", ws(flux.serve, cf=False)),
        Route("/__emulator/scripts/{key}", script_put, methods=["POST", "PUT"]),
        Route("/__emulator/scripts/{key}", script_get, methods=["GET"]),
        Route("/__emulator/scripts/{key}", script_delete, methods=["DELETE"]),
        Route("/__emulator/health", health),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    return app
