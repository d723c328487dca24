"""Agent sessions end to end through the real gateway, on the provider emulators.

STT (Flux), LLM and TTS are the emulators (they stand in for remote providers); everything of ours is
real: gateway, registry, session hosts, conversation machine, scheduler, barge-in, watchdogs.
"""

from __future__ import annotations

import asyncio
import os
import uuid

from tests.adapters.audio import silence, speech
from tests.agent_helpers import AgentClient, script, utterance
from vani.actors.agent.tools import ToolExecutor
from vani.adapters.base import ToolCall
from vani.cluster.config import Settings


def sid(prefix: str = "ag") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def agent_url(cluster, session_id: str, query: str = "") -> str:
    return f"{cluster.url('agent')}/v1/sessions/{session_id}" + (f"?{query}" if query else "")


async def snapshot(cluster, session_id: str) -> dict:
    # Per-session stats come from the registry over Ray: /v1/status shows no session ids without an API key.
    import ray

    from vani.actors.control.placement import registry_name

    for host in await ray.get_actor(registry_name("agent"), namespace="vani").host_stats.remote():
        for s in host["sessions"]:
            if s["session_id"] == session_id:
                return s["engine"]
    raise AssertionError(f"session {session_id} not found")


def transitions(c: AgentClient, turn_id: int | None = None) -> list[tuple[str, str, str]]:
    return [(e["from"], e["event"], e["to"]) for e in c.of_type("conversation")]


async def reply_done(c: AgentClient, turn_id: int, timeout: float = 20.0) -> dict:
    return await c.wait_type("assistant.message", timeout, turn_id=turn_id)


async def test_multi_turn_conversation_history_and_latency_report(vani_cluster, provider_emulator):
    s = sid()
    await script(provider_emulator, s, transcripts=["hello there", "what is on the menu"])
    c = await AgentClient.connect(agent_url(vani_cluster, s))
    assert c.first["type"] == "session.started" and c.first["mode"] == "agent"
    await c.send_audio(utterance(0.6, 0.5, seed=1))
    m1 = await reply_done(c, 1)
    assert m1["full_text"] == "Sure. You said: hello there. Anything else?" and not m1["interrupted"]
    await c.wait_type("conversation", to="listening", event="REPLY_DONE")
    await c.send_audio(utterance(0.8, 0.5, seed=2))
    m2 = await reply_done(c, 2)
    await c.wait_type("LatencyReport", turn_id=2)
    assert m2["full_text"] == "Sure. You said: what is on the menu. Anything else?"
    # Tokens streamed as text events, in order, and they add up to the reply.
    for m in (m1, m2):
        toks = "".join(e["text"] for e in c.of_type("assistant.text", turn_id=m["turn_id"]))
        assert toks == m["full_text"]
        assert c.audio.get(m["turn_id"], 0) > 0
    starts = c.of_type("audio.start")
    assert [e["turn_id"] for e in starts] == [1, 2]
    # The emulated TTS streams 40 ms chunks; after the first frame the session sends >= 100 ms frames,
    # except the last frame of each speakable piece (one per sentence / clause of the reply).
    for m in (m1, m2):
        later = c.frames[m["turn_id"]][1:]
        pieces = sum(m["full_text"].count(ch) for ch in ".,:?!")
        assert len([n for n in later if n < 4800]) <= pieces, c.frames[m["turn_id"]]
    assert starts[0]["format"] == {"encoding": "linear16", "sample_rate": 24000, "channels": 1, "container": "none"}
    assert c.violations == []
    assert transitions(c)[:5] == [
        ("idle", "AUDIO_FRAME", "listening"),
        ("listening", "TURN_START", "transcribing"),
        ("transcribing", "TRANSCRIPT_FINAL", "thinking"),
        ("thinking", "AUDIO_STARTED", "speaking"),
        ("speaking", "REPLY_DONE", "listening"),
    ]
    reports = c.of_type("LatencyReport")
    assert [r["turn_id"] for r in reports] == [1, 2]
    for r in reports:
        for f in ("stt_latency", "ttt_token_latency", "ttt_text_latency", "tts_latency", "total_latency"):
            assert r[f] >= 0, (f, r)
        assert r["outcome"] == "done"
    snap = await snapshot(vani_cluster, s)
    assert snap["history"] == [
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": m1["full_text"]},
        {"role": "user", "content": "what is on the menu"},
        {"role": "assistant", "content": m2["full_text"]},
    ]
    assert snap["llm_streams_max"] == 1
    await c.close()


LONG_REPLY = " ".join(f"Sentence number {i} is here, and it keeps going." for i in range(12))


async def test_fifty_rapid_interruptions_no_stale_audio(vani_cluster, provider_emulator):
    s = sid("barge")
    n = 50
    await script(
        provider_emulator, s, transcripts=["tell me everything"] + ["no wait stop please"] * n, reply=LONG_REPLY
    )
    c = await AgentClient.connect(agent_url(vani_cluster, s))
    await c.send_audio(utterance(0.6, 0.5, seed=0))
    for k in range(1, n + 1):
        # Wait until this turn's audio is reaching us, then talk over it.
        while k not in c.first_audio_at:
            await c.wait_type("audio.start", 20.0, turn_id=k)
            await asyncio.sleep(0.01)
        await c.send_audio(speech(0.9, seed=k) + silence(0.5))
        await c.wait_type("audio.clear", 20.0, turn_id=k)
    await c.wait_type("audio.start", 20.0, turn_id=n + 1)
    await asyncio.sleep(0.3)  # let any straggler frame arrive: it would be recorded as a violation
    assert c.violations == []
    assert [e["turn_id"] for e in c.of_type("audio.clear")] == list(range(1, n + 1))
    for k in range(1, n + 1):
        m = c.of_type("assistant.message", turn_id=k)[0]
        assert m["interrupted"] and m["outcome"] == "interrupted"
        # Cut mid-reply: the user talks over the first second of a ~30 s reply, so what was heard is a strict
        # prefix of what the LLM had produced (full_text, itself a prefix of the reply), never all of it.
        heard, produced = m["text"].split(), m["full_text"].split()
        assert LONG_REPLY.startswith(m["full_text"]) and len(heard) < len(produced), m
        assert produced[: len(heard)] == heard, m
        r = await c.wait_type("LatencyReport", turn_id=k)
        assert r["interrupt_stop_latency"] >= 0
    snap = await snapshot(vani_cluster, s)
    # The history keeps the newest llm_context_max_turns user turns (the last one, n + 1, still replying).
    keep = Settings().llm_context_max_turns
    interrupted = [h for h in snap["history"] if h["role"] == "assistant"]
    assert min(n, keep) - 1 <= len(interrupted) <= min(n, keep), snap["history"]
    assert all(h["content"].endswith("[interrupted]") for h in interrupted)
    assert snap["llm_streams_max"] == 1 and snap["stats"]["interrupted"] == n
    await c.close()


async def test_reply_survives_a_dropped_connection(vani_cluster, provider_emulator):
    """A network drop mid-reply does not interrupt it: the resumed connection is told the playing turn
    again (``audio.start``, so its gateway gate and its client accept the frames) and gets the rest."""
    s = sid("drop")
    reply = " ".join(f"Part {i} of the answer comes now, slowly and clearly." for i in range(3))
    await script(provider_emulator, s, transcripts=["tell me a story"], reply=reply)
    c = await AgentClient.connect(agent_url(vani_cluster, s))
    await c.send_audio(utterance(0.6, 0.5, seed=7))
    await c.wait_type("audio.start", 20.0, turn_id=1)
    while c.audio.get(1, 0) == 0:  # noqa: ASYNC110 - the reader task fills c.audio
        await asyncio.sleep(0.01)
    await c.close()  # the client goes away mid-reply
    await asyncio.sleep(1.0)
    c2 = await AgentClient.connect(agent_url(vani_cluster, s, f"resume_token={c.first['resume_token']}"))
    assert c2.first["resumed"] is True
    m = await reply_done(c2, 1, timeout=30.0)
    assert m["outcome"] == "done" and not m["interrupted"] and m["text"] == reply
    assert c2.of_type("audio.start", turn_id=1), "the resumed connection is told which turn is playing"
    assert c2.violations == [] and c2.audio.get(1, 0) > 0
    end = c2.of_type("audio.end", turn_id=1)[0]
    expected = end["duration_s"] * 24000 * 2
    # Frames already on their way to the dead socket are lost with it; the rest arrives.
    assert c.audio[1] + c2.audio[1] >= 0.8 * expected, (c.audio[1], c2.audio[1], expected)
    await c2.close()


async def test_backchannel_does_not_interrupt(vani_cluster, provider_emulator):
    s = sid("bc")
    await script(
        provider_emulator, s, transcripts=["tell me about the menu", "uh-huh"], reply="We cook Indian home food today."
    )
    c = await AgentClient.connect(agent_url(vani_cluster, s))
    await c.send_audio(utterance(0.6, 0.5, seed=1))
    await c.wait_type("audio.start", turn_id=1)
    await c.send_audio(speech(0.3, seed=2) + silence(0.5))  # "uh-huh" while the assistant speaks
    bc = await c.wait_type("backchannel")
    assert bc["transcript"] == "uh-huh" and bc["turn_id"] == 1
    m = await reply_done(c, 1)
    assert not m["interrupted"] and m["text"] == "We cook Indian home food today."
    assert c.of_type("audio.clear") == [] and c.violations == []
    await c.close()


async def test_llm_stream_never_blocks_audio_or_stt_events(vani_cluster, provider_emulator):
    s = sid("slow")
    await script(
        provider_emulator,
        s,
        transcripts=["go slowly", "mhm"],
        reply="one two three four five six seven eight nine ten eleven twelve.",
        latency={"ttft_ms": 50, "tokens_per_s": 4},
    )
    c = await AgentClient.connect(agent_url(vani_cluster, s))
    await c.send_audio(utterance(0.6, 0.5, seed=1))
    await c.wait_type("assistant.text", turn_id=1)
    # While the slow LLM streams (3 s), audio keeps flowing and Flux events keep arriving.
    await c.send_audio(speech(0.3, seed=3) + silence(0.5))
    eot = await c.wait_type("TurnInfo", event="EndOfTurn", turn_index=1)
    assert eot["transcript"] == "mhm"
    assert c.of_type("assistant.message", turn_id=1) == []  # the LLM stream was still running
    m = await reply_done(c, 1)
    assert not m["interrupted"]
    await c.close()


async def test_eager_end_of_turn_holds_then_releases(vani_cluster, provider_emulator):
    s = sid("eager")
    await script(provider_emulator, s, transcripts=["is it open today"], reply="Yes, we are open today.")
    c = await AgentClient.connect(agent_url(vani_cluster, s, "eager_eot_threshold=0.3"))
    await c.send_audio(speech(0.6, seed=1) + silence(0.16))  # enough silence for eager, not for EndOfTurn
    await c.wait_type("conversation", to="speculating")
    await asyncio.sleep(0.4)  # the speculative LLM has produced its tokens by now: they must be held
    assert c.of_type("assistant.text") == [] and c.of_type("audio.start") == []
    await c.send_audio(silence(0.4))
    m = await reply_done(c, 1)
    assert m["full_text"] == "Yes, we are open today."
    types = [(e["type"], e.get("event")) for e in c.events]
    eot = types.index(("TurnInfo", "EndOfTurn"))
    first_text = types.index(("assistant.text", None))
    assert first_text > eot  # nothing left the server before EndOfTurn confirmed
    assert ("speculating", "TRANSCRIPT_FINAL", "thinking") in transitions(c)
    assert (await c.wait_type("LatencyReport", turn_id=1))["speculative"] is True
    await c.close()


async def test_eager_turn_resumed_discards_and_never_runs_tool(vani_cluster, provider_emulator):
    s = sid("resume")
    await script(provider_emulator, s, transcripts=["what time is it"], use_tool=True, tool_arguments={})
    c = await AgentClient.connect(agent_url(vani_cluster, s, "eager_eot_threshold=0.3"))
    await c.send_audio(speech(0.6, seed=1) + silence(0.16))
    await c.wait_type("conversation", to="speculating")
    await asyncio.sleep(0.4)  # the speculative LLM asked for the tool: it must not run
    await c.send_audio(speech(0.4, seed=2))  # the user goes on: TurnResumed
    await c.wait_type("conversation", event="TURN_RESUMED", to="transcribing")
    assert c.of_type("tool.call") == [] and c.of_type("tool.result") == []
    await c.send_audio(silence(0.6))
    m = await reply_done(c, 2)
    assert m["full_text"]
    calls = c.of_type("tool.call")
    results = c.of_type("tool.result")
    assert len(calls) == 1 and calls[0]["turn_id"] == 2 and results[0]["executions"] == 1
    # The discarded turn 1 never produced anything the client saw.
    assert not [e for e in c.events if e.get("turn_id") == 1 and e["type"] != "conversation"]
    snap = await snapshot(vani_cluster, s)
    assert snap["stats"]["eager_started"] == 2 and snap["stats"]["eager_discarded"] == 1
    assert list(snap["tool_executions"].values()) == [1]
    roles = [h["role"] for h in snap["history"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    await c.close()


async def test_tool_executor_runs_each_call_id_once():
    ex = ToolExecutor()
    call = ToolCall("call_1", "clock", {"utc_offset_hours": 1})
    first, second, third = await asyncio.gather(ex.run(call), ex.run(call), ex.run(call))  # concurrent repeats
    assert first == second == third
    assert await ex.run(ToolCall("call_1", "clock", {"utc_offset_hours": 1})) == first  # a later replay
    assert ex.executions == {"call_1": 1}
    await ex.run(ToolCall("call_2", "clock", {}))
    assert ex.executions == {"call_1": 1, "call_2": 1}


async def test_watchdog_llm_no_first_token_speaks_fallback(vani_cluster, provider_emulator):
    s = sid("wdllm")
    await script(provider_emulator, s, transcripts=["anyone there"], faults={"llm": ["slow_start_ms=25000"]})
    c = await AgentClient.connect(agent_url(vani_cluster, s))
    await c.send_audio(utterance(0.6, 0.5, seed=1))
    wd = await c.wait_type("watchdog", 20.0)
    assert wd["name"] == "llm_first_token" and wd["outcome"] == "fallback_reply" and wd["turn_id"] == 1
    m = await reply_done(c, 2, 30.0)
    assert m["full_text"].startswith("Sorry") and c.audio.get(2, 0) > 0
    assert c.of_type("assistant.message", turn_id=1)[0]["outcome"] == "watchdog"
    await c.close()


async def test_watchdog_tts_stall_ends_reply(vani_cluster, provider_emulator):
    s = sid("wdtts")
    await script(
        provider_emulator,
        s,
        transcripts=["say something"],
        reply="Here it is.",
        faults={"tts": ["stall_after=1;stall_ms=25000"]},
    )
    c = await AgentClient.connect(agent_url(vani_cluster, s))
    await c.send_audio(utterance(0.6, 0.5, seed=1))
    wd = await c.wait_type("watchdog", 20.0)
    assert wd["name"] == "tts_stall" and wd["outcome"] == "reply_ended"
    await c.wait_type("audio.clear", turn_id=1)
    await c.wait_type("conversation", event="CANCELLED", to="listening")
    assert c.violations == []
    await c.close()


async def test_watchdog_turn_open_without_audio_forces_end_of_turn(vani_cluster, provider_emulator):
    s = sid("wdturn")
    await script(provider_emulator, s, transcripts=["and then the line went quiet"], reply="Okay.")
    c = await AgentClient.connect(agent_url(vani_cluster, s))
    await c.send_audio(speech(0.6, seed=1))  # the client stops sending mid-turn
    wd = await c.wait_type("watchdog", 20.0)
    assert wd["name"] == "turn_no_audio" and wd["outcome"] == "force_end_turn"
    eot = await c.wait_type("TurnInfo", event="EndOfTurn")
    assert eot["trigger"] == "manual"
    m = await reply_done(c, 1)
    assert m["full_text"] == "Okay."
    await c.close()


async def test_no_cross_session_bleed_100_sessions(vani_cluster, provider_emulator):
    n = int(os.environ.get("BLEED_N", "100"))
    ids = [sid(f"bleed{i}") for i in range(n)]
    await asyncio.gather(
        *(
            script(provider_emulator, s, transcripts=[f"session {i} here"], reply=f"Hello {i}.")
            for i, s in enumerate(ids)
        )
    )

    async def one(i: int, s: str) -> AgentClient:
        # Ramp the connects over ~5 s (a realistic arrival burst, not one thundering herd on 2 cores);
        # every session's turn still overlaps the others'.
        await asyncio.sleep(i * 0.05)
        c = await AgentClient.connect(agent_url(vani_cluster, s))
        await c.send_audio(utterance(0.6, 0.5, seed=i))
        await reply_done(c, 1, timeout=90.0)
        await c.close()
        return c

    clients = await asyncio.gather(*(one(i, s) for i, s in enumerate(ids)))
    wds = [(i, e) for i, c in enumerate(clients) for e in c.events if e["type"] in ("watchdog", "error")]
    assert wds == []
    for i, c in enumerate(clients):
        m = c.of_type("assistant.message", turn_id=1)[0]
        assert m["full_text"] == f"Hello {i}."
        assert [e["transcript"] for e in c.of_type("TurnInfo", event="EndOfTurn")] == [f"session {i} here"]
        assert set(c.audio) == {1} and c.violations == []
        texts = "".join(e["text"] for e in c.of_type("assistant.text"))
        assert texts == f"Hello {i}."
