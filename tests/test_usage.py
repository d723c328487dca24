"""Usage accounting (issue 14, item 5): each turn's usage in its ``assistant.message``, the session's totals in
its status, the provider's own token counts when it sends them. The session is tests/test_replay.py's
recorded conversation (a real ``Session`` with the agent engine, scripted providers: a plain turn, a tool
call, an eager end of turn discarded, a barge-in); the counters by provider: tests/test_metrics.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.test_replay import Recorder, ToolLlm, conversation
from vani.actors.agent.usage import Usage
from vani.adapters.base import LlmDone, TurnEventType


def messages(rec: Recorder) -> list[dict[str, Any]]:
    sent = [json.loads(m) for m in rec.link.sent if isinstance(m, str)]
    return [m for m in sent if m.get("type") == "assistant.message"]


async def test_each_turn_and_the_session_are_booked():
    rec = await conversation()
    try:
        done = messages(rec)
        totals = rec.session.engine.snapshot()["usage"]
    finally:
        await rec.close()
    assert [m["outcome"] for m in done] == ["done", "done", "interrupted", "done"]
    usage = [m["usage"] for m in done]
    assert all(u["llm_usage"] == "counted" for u in usage)  # the scripted LLM sends no usage field
    assert [u["tool_calls"] for u in usage] == [0, 1, 0, 0]
    assert [u["llm_completion_tokens"] for u in usage] == [3, 1 + 4, 10, 1]  # streamed tokens (a tool call is one)
    assert all(u["llm_prompt_tokens"] > 0 and u["tts_characters"] > 0 and u["audio_out_s"] > 0 for u in usage)
    # every 20 ms frame the client sent reached the STT: 248 in all, 4.96 s, split between the turns as they end
    assert totals["stt_s"] == 4.96 and all(u["stt_s"] > 0 for u in usage)
    # The totals: every turn's, plus the discarded eager turn's LLM tokens (the provider billed them), plus
    # the audio streamed after the last turn.
    summed = Usage()
    for u in usage:
        summed.add(Usage(**{k: v for k, v in u.items() if k != "llm_usage"}))
    assert totals["llm_completion_tokens"] == summed.llm_completion_tokens + 1  # "Held." of the eager turn
    assert totals["tool_calls"] == 1 and totals["tts_characters"] == summed.tts_characters
    assert sum(u["stt_s"] for u in usage) <= totals["stt_s"]


class UsageLlm(ToolLlm):
    """Replies with the provider's own usage field at the end of each stream, as OpenAI's include_usage does."""

    async def stream(self, messages: list[Any], tool: Any = None) -> AsyncIterator[Any]:
        async for ev in super().stream(messages, tool):
            yield ev
        yield LlmDone(usage={"prompt_tokens": 42, "completion_tokens": 7})


async def test_the_providers_own_counts_win_over_counting():
    rec = Recorder([], llm=UsageLlm(["Sure thing."]), audio_frame_ms=0)
    await rec.start()
    await rec.say(TurnEventType.START_OF_TURN)
    await rec.talk(0.4)
    await rec.say(TurnEventType.END_OF_TURN, "hello", 0.0, 0.4)
    await rec.talk(1.5)
    try:
        (m,) = messages(rec)
    finally:
        await rec.close()
    u = m["usage"]
    assert (u["llm_prompt_tokens"], u["llm_completion_tokens"], u["llm_usage"]) == (42, 7, "provider")
    assert u["tts_characters"] == len("Sure thing.")


def test_a_malformed_usage_field_is_counted_instead():
    u = Usage()
    u.llm_stream({"prompt_tokens": "lots", "completion_tokens": 3}, tokens=5, prompt_chars=400)
    assert (u.llm_prompt_tokens, u.llm_completion_tokens, u.llm_counted) == (100, 5, True)
    u.llm_stream(None, tokens=2, prompt_chars=8)
    assert u.to_dict()["llm_usage"] == "counted" and u.llm_completion_tokens == 7


def test_vani_status_sessions_shows_each_sessions_usage(tmp_path):
    """``vani status --sessions`` against a real HTTP server answering /v1/status as a gateway with the key does."""
    body = {
        "app": "vani",
        "placement_mode": "sharded",
        "max_sessions": 10,
        "sessions": 1,
        "refused": 0,
        "nodes": ["n1"],
        "hosts": [{"name": "vani-host-n1-0", "node_id": "n1", "sessions": 1}],
        "entrances": [],
        "host_stats": [
            {
                "name": "vani-host-n1-0",
                "sessions": [
                    {
                        "session_id": "s-usage",
                        "state": "streaming",
                        "connected": True,
                        "counters": {"bytes_in": 64000},
                        "engine": {"usage": {"llm_prompt_tokens": 42, "tts_characters": 11, "llm_usage": "provider"}},
                    }
                ],
            }
        ],
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            out = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        vani = os.path.join(os.path.dirname(sys.executable), "vani")
        url = f"http://127.0.0.1:{server.server_address[1]}"
        plain = subprocess.run([vani, "status", "--url", url], capture_output=True, text=True, timeout=60)
        full = subprocess.run([vani, "status", "--url", url, "--sessions"], capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    usage_lines = [[x for x in run.stdout.splitlines() if x.strip().startswith("usage ")] for run in (plain, full)]
    assert plain.returncode == 0 and "s-usage" in plain.stdout and usage_lines[0] == []
    assert full.returncode == 0, full.stderr
    (line,) = usage_lines[1]
    assert "audio_in_s 2.0" in line and "llm_prompt_tokens 42" in line and "tts_characters 11" in line
