"""Long sessions stay bounded, and every waiting state has a watchdog: through the real gateway, on the
provider emulators (see tests/test_agent_pipeline.py for the other watchdogs)."""

from __future__ import annotations

from tests.adapters.audio import silence, speech
from tests.agent_helpers import AgentClient, script, utterance
from tests.test_agent_pipeline import agent_url, reply_done, sid, transitions


async def session_snapshot(cluster, session_id: str) -> dict:
    # From the registry over Ray: /v1/status shows no session ids without an API key.
    import ray

    from vani.actors.control.placement import registry_name

    for host in await ray.get_actor(registry_name("agent"), namespace="vani").host_stats.remote():
        for s in host["sessions"]:
            if s["session_id"] == session_id:
                return s
    raise AssertionError(f"session {session_id} not found")


async def test_long_agent_session_keeps_bounded_state(vani_cluster, provider_emulator):
    """Past llm_context_max_turns (16) and transcript_history_turns (20): only the newest turns are kept,
    the LLM is sent the newest 16, the per-turn audio clocks cover only the last few turns."""
    s, n = sid("long"), 23
    said = [f"question number {i}" for i in range(n)]
    await script(provider_emulator, s, transcripts=said, reply="Okay.", use_tool=True, tool_arguments={})
    c = await AgentClient.connect(agent_url(vani_cluster, s))
    for k in range(1, n + 1):
        await c.send_audio(utterance(0.5, 0.5, seed=k))
        m = await reply_done(c, k, 30.0)
        assert m["outcome"] == "done", m
    snap = await session_snapshot(vani_cluster, s)
    p = snap["engine"]
    assert [h["content"] for h in p["history"] if h["role"] == "user"] == said[-16:]
    assert p["transcripts"] == 20 and p["stats"]["turns"] == n
    assert 1 <= snap["engine"]["live_turn_clocks"] <= 4
    # The emulated LLM asks for the tool once per conversation it is sent: again at turn 17, the first
    # request whose context no longer holds turn 1 (and its tool call and result, dropped together).
    assert [e["turn_id"] for e in c.of_type("tool.call")] == [1, 17]
    assert [e["executions"] for e in c.of_type("tool.result")] == [1, 1]
    roles = [h["role"] for h in p["history"]]
    assert roles[0] == "user" and roles.count("tool") == 1
    i = roles.index("tool")
    assert roles[i - 2 : i + 2] == ["user", "assistant", "tool", "assistant"]
    assert p["tool_results"] == len(p["tool_executions"]) == 2
    assert c.violations == []
    await c.close()


async def test_flux_resume_history_is_the_recent_window(vani_cluster, provider_emulator):
    """Flux `Connected.history` on resume holds the most recent transcript_history_turns (20) finals."""
    s, n = sid("fluxlong"), 24
    said = [f"line {i}" for i in range(n)]
    await script(provider_emulator, s, transcripts=said)
    c = await AgentClient.connect(f"{vani_cluster.url('agent')}/v2/flux/{s}")
    for k in range(n):
        await c.send_audio(utterance(0.4, 0.4, seed=k))
        await c.wait_type("TurnInfo", 20.0, event="EndOfTurn", turn_index=k)
    await c.close()
    c2 = await AgentClient.connect(f"{vani_cluster.url('agent')}/v2/flux/{s}?resume_token={c.first['resume_token']}")
    assert c2.first["resumed"] is True
    assert [h["transcript"] for h in c2.first["history"]] == said[-20:]
    await c2.send_json({"type": "CloseStream"})
    await c2.ws.wait_closed()


async def test_watchdog_speculating_without_end_of_turn_forces_it(vani_cluster, provider_emulator):
    """EagerEndOfTurn, then neither EndOfTurn nor TurnResumed (the client went quiet): the speculating
    watchdog discards the held reply, forces the end of the turn, and the turn gets its reply."""
    s = sid("wdspec")
    await script(provider_emulator, s, transcripts=["is it open today"], reply="Yes, we are open today.")
    c = await AgentClient.connect(agent_url(vani_cluster, s, "eager_eot_threshold=0.3"))
    await c.send_audio(speech(0.6, seed=1) + silence(0.16))  # enough silence for eager, not for EndOfTurn
    await c.wait_type("conversation", to="speculating")
    wd = await c.wait_type("watchdog", 20.0)
    assert (wd["name"], wd["outcome"], wd["turn_id"], wd["state"]) == (
        "speculating",
        "force_end_turn",
        1,
        "transcribing",
    )
    eot = await c.wait_type("TurnInfo", 20.0, event="EndOfTurn")
    assert eot["trigger"] == "manual" and eot["transcript"] == "is it open today"
    m = await reply_done(c, 2)
    assert m["full_text"] == "Yes, we are open today." and m["outcome"] == "done"
    assert ("speculating", "WATCHDOG", "transcribing") in transitions(c)
    # The discarded speculation never produced anything the client heard or read.
    assert not [e for e in c.events if e.get("turn_id") == 1 and e["type"] not in ("conversation", "watchdog")]
    assert c.audio.get(1, 0) == 0 and c.violations == []
    await c.close()
