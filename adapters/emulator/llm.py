"""Emulated chat completions: OpenAI-compatible SSE (OpenAI, Workers AI ``/ai/v1``) and the Workers AI
native ``/ai/run/{model}`` SSE (``data: {"response": ...}``).

The reply is deterministic (the script's ``reply``, else derived from the last user message), streamed
at ``ttft_ms`` then ``tokens_per_s``. The offered tool is requested once per conversation (never after a
``tool`` message) when the script sets ``use_tool`` or the user names the tool.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vani.adapters.emulator.control import Conn, Store
from vani.adapters.emulator.faults import UnitCounter
from vani.adapters.emulator.stream import DROP, LiveStream


def error_response(status: int, message: str, native: bool, retry_after: float | None = None) -> Response:
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    if native:
        body: dict[str, Any] = {
            "errors": [{"code": 3000 + status, "message": message}],
            "success": False,
            "result": {},
        }
    else:
        kind = {401: "authentication_error", 429: "rate_limit_exceeded"}.get(status, "invalid_request_error")
        if status >= 500:
            kind = "server_error"
        body = {"error": {"message": message, "type": kind, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def _tool_spec(tools: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    if not tools:
        return None
    t = tools[0]
    return t.get("function", t)  # OpenAI form or the flat Workers AI form


def plan(conn: Conn, body: dict[str, Any]) -> tuple[list[str], dict[str, Any] | None]:
    """Tokens to stream, and the tool call (name, arguments) if one is requested."""
    messages = body.get("messages") or [{"role": "user", "content": body.get("prompt", "")}]
    last_user = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
    tool = _tool_spec(body.get("tools"))
    had_tool_result = any(m.get("role") == "tool" for m in messages)
    if tool and not had_tool_result and (conn.script.use_tool or tool["name"].lower() in last_user.lower()):
        args = conn.script.tool_arguments
        if args is None:
            props = (tool.get("parameters") or {}).get("properties") or {}
            args = {k: last_user for k, v in props.items() if v.get("type") == "string"}
        return [], {"name": tool["name"], "arguments": args}
    text = conn.script.reply or f"Sure. You said: {last_user.strip() or 'nothing'}. Anything else?"
    return re.findall(r"\s*\S+", text), None


async def _auth_and_body(request: Request, store: Store, native: bool) -> tuple[Conn, dict[str, Any]] | Response:
    try:
        conn = store.conn("llm", request.headers, request.query_params)
    except ValueError as e:
        return error_response(400, f"emulator: {e}", native)
    if conn.fault.slow_start_ms:
        await asyncio.sleep(conn.fault.slow_start_ms / 1000)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme != "Bearer" or not token:
        return error_response(401, "Authentication error", native)
    if conn.fault.status:
        conn.script.record("llm", "rejected", status=conn.fault.status)
        return error_response(conn.fault.status, "injected fault", native, conn.fault.retry_after)
    try:
        body = json.loads(await request.body())
    except ValueError:
        return error_response(400, "request body is not valid JSON", native)
    if not isinstance(body, dict) or not (body.get("messages") or (native and body.get("prompt"))):
        return error_response(400, "messages is required", native)
    return conn, body


def _roles(body: dict[str, Any]) -> list[str]:
    """The roles of the request's messages, in order (tests check what context the LLM was given)."""
    return [str(m.get("role")) for m in body.get("messages") or [] if isinstance(m, dict)]


async def chat_completions(request: Request, store: Store) -> Response:
    got = await _auth_and_body(request, store, native=False)
    if isinstance(got, Response):
        return got
    conn, body = got
    tokens, call = plan(conn, body)
    conn.script.record("llm", "request", tool=bool(call), api="openai", roles=_roles(body))
    cid, model, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", body.get("model", "emulated"), int(time.time())
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": len(tokens) or 1,
        "total_tokens": 10 + (len(tokens) or 1),
    }
    call_id = f"call_{uuid.uuid4().hex[:10]}"
    if not body.get("stream"):
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(tokens)}
        if call:
            msg["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
                }
            ]
        return JSONResponse(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if call else "stop"}],
                "usage": usage,
            }
        )

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    units: list[dict[str, Any]] = [chunk({"content": t}) for t in tokens]
    if call:
        args = json.dumps(call["arguments"])
        third = max(1, len(args) // 3)
        units.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": call["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        units += [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + third]}}]})
            for i in range(0, len(args), third)
        ]
    head = [chunk({"role": "assistant", "content": ""})]
    tail = [chunk({}, "tool_calls" if call else "stop")]
    if (body.get("stream_options") or {}).get("include_usage"):
        tail.append(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
        )
    return _sse(conn, head, units, tail, split=conn.fault.split)


async def native_run(request: Request, store: Store) -> Response:
    got = await _auth_and_body(request, store, native=True)
    if isinstance(got, Response):
        return got
    conn, body = got
    tokens, call = plan(conn, body)
    conn.script.record("llm", "request", tool=bool(call), api="native", roles=_roles(body))
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": len(tokens) or 1,
        "total_tokens": 10 + (len(tokens) or 1),
    }
    calls = [{"name": call["name"], "arguments": call["arguments"]}] if call else []
    if not body.get("stream"):
        result: dict[str, Any] = {"response": "".join(tokens), "usage": usage}
        if calls:
            result["tool_calls"] = calls
        return JSONResponse({"result": result, "success": True, "errors": [], "messages": []})
    units: list[dict[str, Any]] = [{"response": t, "p": "abcdefghij"[: 1 + i % 9]} for i, t in enumerate(tokens)]
    if calls:  # (inferred) the native stream's tool-call frame has the non-stream shape
        units.append({"response": "", "tool_calls": calls})
    return _sse(conn, [], units, [{"response": "", "usage": usage}], split=True)


def _sse(conn: Conn, head: list[dict], units: list[dict], tail: list[dict], split: bool) -> Response:
    counter = UnitCounter(conn.fault)
    lat = conn.latency
    gap = 1.0 / max(lat.tokens_per_s, 0.1)

    async def body() -> AsyncIterator[bytes]:
        await asyncio.sleep(lat.ttft_ms / 1000)
        for frame in head:
            yield _frame(frame)
        for i, frame in enumerate(units):
            if i:
                await asyncio.sleep(gap)
            action = counter.action()
            if action == "drop":
                conn.script.record("llm", "dropped", units_sent=counter.sent)
                yield DROP
                return
            if action == "stall":
                await counter.stall()
            if action == "malformed":
                yield b'data: {"choices": [{"delta": \n\n'
            counter.sent += 1
            data = _frame(frame)
            if split and len(data) > 8:  # cut mid-JSON, as real networks do
                cut = 3 + (i * 7) % (len(data) - 6)
                yield data[:cut]
                yield data[cut:]
            else:
                yield data
        if counter.action() == "drop":  # drop_after == len(units): everything but the end of the stream
            conn.script.record("llm", "dropped", units_sent=counter.sent)
            yield DROP
            return
        for frame in tail:
            yield _frame(frame)
        yield b"data: [DONE]\n\n"
        conn.script.record("llm", "done", units_sent=counter.sent)

    def disconnected() -> None:
        conn.script.record("llm", "disconnect", units_sent=counter.sent, total=len(units))

    return LiveStream(body(), "text/event-stream", {"cache-control": "no-cache"}, disconnected)


def _frame(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
