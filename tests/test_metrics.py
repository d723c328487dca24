"""Metrics that tell the truth (issue 14, item 3): every metric vani declares (``actors/metrics.CATALOG``) is in
Ray's Prometheus endpoint with a plausible value after a few short sessions that make each one happen.

The sessions: an echo session (frames, echo's added latency, a muted frame dropped), an agent session with a
tool call and a barge-in (every stage histogram, tool time, agent frames out, the agent's added latency), an
agent session whose TTS refuses its requests (provider errors), a burst of audio faster than the agent reads
it (inbound backpressure), a token for a session that is nowhere (a recovery's outcome), and outages of the
/agent app's session store and trace receiver while its sessions run (store errors, dropped spans).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from pathlib import Path

import httpx

from tests.adapters.audio import silence, speech
from tests.agent_helpers import AgentClient, script, utterance
from tests.audio_frames import numbered_frame
from tests.test_agent_pipeline import LONG_REPLY, agent_url, reply_done, sid
from vani.actors.metrics import CATALOG
from vani.client.session_client import VaniSession


def series(text: str, name: str) -> list[tuple[str, float]]:
    """``(labels, value)`` of every sample of Prometheus metric ``name``."""
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.eE+-]+|NaN)$", re.M)
    return [(m.group(1) or "", float(m.group(2))) for m in pattern.finditer(text)]


def problems(text: str) -> list[str]:
    """What is missing or implausible, per catalog entry."""
    out = []
    for name, spec in CATALOG.items():
        prom = f"ray_{name}"
        if spec.kind == "histogram":
            counts = series(text, f"{prom}_count")
            if not series(text, f"{prom}_bucket") or not any(v > 0 for _, v in counts):
                out.append(f"{name}: no observations")
        elif spec.kind == "counter":
            if not any(v > 0 for _, v in series(text, f"{prom}_total") + series(text, prom)):
                out.append(f"{name}: no count")
        elif not series(text, prom) or any(v < 0 for _, v in series(text, prom)):
            out.append(f"{name}: no value (or a negative one)")
    # what read zero in agent mode before: frames out and the added latency, from the /agent app's hosts
    if not any(v > 0 for labels, v in series(text, "ray_vani_frames_out_total") if 'host="agent-host-' in labels):
        out.append("vani_frames_out: no agent frames")
    if not any(v > 0 for labels, v in series(text, "ray_vani_added_latency_ms_count") if 'mode="agent"' in labels):
        out.append("vani_added_latency_ms: no agent turn")
    if not any(v > 0 for labels, v in series(text, "ray_vani_backpressure_waits_total") if "inbound" in labels):
        out.append("vani_backpressure_waits: no inbound wait")
    rss = [v for _, v in series(text, "ray_vani_host_rss_bytes")]
    if rss and min(rss) < 20e6:
        out.append(f"vani_host_rss_bytes implausible: {min(rss)}")
    return out


async def scrape(cluster, http: httpx.AsyncClient) -> str:
    text = ""
    for port in cluster.metrics_ports:
        try:
            text += (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text
        except httpx.HTTPError:
            pass
    return text


async def echo_session(cluster) -> VaniSession:
    """Frames both ways and a muted frame; left open (the active sessions gauge is > 0 while scraping)."""
    done = await VaniSession.connect(cluster.url("fast"), f"m-{uuid.uuid4().hex[:8]}")
    await done.close()  # a close code counted
    s = await VaniSession.connect(cluster.url("fast"), f"m-{uuid.uuid4().hex[:8]}")
    for i in range(5):
        await s.send_audio(numbered_frame(i))
    for _ in range(5):
        await s.recv_audio(10.0)
    await s.mute()
    await s.send_audio(numbered_frame(5))  # dropped: muted
    await s.unmute()
    return s


async def agent_turns(cluster, emulator: str) -> None:
    """A tool call, then a reply the user talks over."""
    s = sid("metric")
    await script(
        emulator, s, transcripts=["what time is it", "tell me everything", "stop"], use_tool=True, reply=LONG_REPLY
    )
    c = await AgentClient.connect(agent_url(cluster, s))
    await c.send_audio(utterance(0.6, 0.5, seed=1))
    await c.wait_type("tool.result", 30.0)
    await c.wait_type("audio.start", 30.0, turn_id=1)
    await c.send_audio(speech(0.9, seed=2) + silence(0.5))
    await c.wait_type("audio.clear", 30.0, turn_id=1)
    usage = (await c.wait_type("assistant.message", 30.0, turn_id=1))["usage"]
    assert usage["tool_calls"] == 1 and usage["stt_s"] > 0 and usage["audio_out_s"] > 0, usage
    await c.close()


async def tts_refused(cluster, emulator: str) -> None:
    s = sid("tts400")
    await script(emulator, s, transcripts=["hello"], faults={"tts": ["status=400"]})
    c = await AgentClient.connect(agent_url(cluster, s))
    await c.send_audio(utterance(0.6, 0.5, seed=3))
    await c.wait_type("error", 30.0, code="tts_failed")
    usage = (await reply_done(c, 1, 30.0))["usage"]
    # The LLM stream ended before the turn did: its tokens are the emulated OpenAI API's own usage field
    # (stream_options.include_usage), 10 prompt tokens a request.
    assert (usage["llm_usage"], usage["llm_prompt_tokens"]) == ("provider", 10), usage
    assert usage["llm_completion_tokens"] > 0 and usage["tts_characters"] > 0, usage
    await c.close()
    # The host said so in a JSON line (log_format=json) that names the session, the turn and the trace.
    line = await json_log_line(cluster, lambda x: x.get("session_id") == s and "TTS failed" in x["message"])
    assert line["turn_id"] == 1 and len(line["trace_id"]) == 32 and line["level"] == "WARNING", line


def json_lines(logs: Path) -> list[dict]:
    """The JSON log lines of a Ray session's workers (their stderr: <session>/logs/worker-*.err)."""
    out = []
    for path in logs.glob("worker-*.err"):
        for raw in path.read_text(errors="replace").splitlines():
            if raw.startswith("{") and '"message"' in raw:
                with contextlib.suppress(ValueError):
                    out.append(json.loads(raw))
    return out


async def json_log_line(cluster, wanted, timeout: float = 30.0) -> dict:
    """The first of the cluster's JSON log lines that ``wanted`` accepts."""
    logs = Path(cluster.cluster.head_node.get_logs_dir_path())
    deadline = time.monotonic() + timeout
    while True:
        found = [x for x in await asyncio.to_thread(json_lines, logs) if wanted(x)]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError("no such JSON log line")
        await asyncio.sleep(1.0)


async def outages(cluster, emulator: str) -> None:
    """A session streams (its event log is appended to the store every second, its spans exported) while the
    store and the trace receiver are down; a burst of 20 s of audio at once fills its inbound ring."""
    s = sid("outage")
    await script(emulator, s, transcripts=["hello"])
    c = await AgentClient.connect(agent_url(cluster, s))
    cluster.redis.stop()
    cluster.otlp.fail = True
    try:
        await c.send_audio(utterance(0.6, 0.5, seed=4))
        await reply_done(c, 1, 30.0)
        await c.send_audio(silence(20.0))
        await asyncio.sleep(3.0)  # the checkpointer's next writes fail; the batch exporter's too
    finally:
        cluster.redis.start()
        cluster.otlp.fail = False
    await c.close()
    # A resume token for a session that is nowhere: a fresh session, counted as a recovery outcome.
    stray = await AgentClient.connect(agent_url(cluster, sid("stray"), "resume_token=gone-token"))
    assert stray.first["recovered"] is False
    await stray.close()


async def test_every_declared_metric_is_exported_with_a_plausible_value(vani_cluster, provider_emulator):
    echo = await echo_session(vani_cluster)
    await agent_turns(vani_cluster, provider_emulator)
    await tts_refused(vani_cluster, provider_emulator)
    await outages(vani_cluster, provider_emulator)
    missing: list[str] = []
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            missing = problems(await scrape(vani_cluster, http))
            if not missing:
                break
            await asyncio.sleep(2)
    await echo.close()
    assert not missing, missing
