"""WS /v2/flux/{id}: transcription-only sessions speaking Deepgram Flux's schema, through the real gateway."""

from __future__ import annotations

import uuid

import pytest
from websockets.exceptions import InvalidStatus

from tests.adapters.audio import silence, speech
from tests.agent_helpers import AgentClient, emulator_log, script, utterance
from tests.support.flux_rules import check_flux_order
from vani.adapters.base import TurnEvent


def sid() -> str:
    return f"flux-{uuid.uuid4().hex[:10]}"


def flux_url(cluster, session_id: str, query: str = "") -> str:
    return f"{cluster.url('agent')}/v2/flux/{session_id}" + (f"?{query}" if query else "")


def turn_infos(c: AgentClient) -> list[TurnEvent]:
    return [TurnEvent.from_flux(e) for e in c.events if e.get("type") == "TurnInfo"]


async def test_flux_turns_schema_order_and_close_stream(vani_cluster, provider_emulator):
    s = sid()
    await script(provider_emulator, s, transcripts=["hello there", "book a table for two"])
    c = await AgentClient.connect(flux_url(vani_cluster, s))
    assert c.first["type"] == "Connected" and c.first["sequence_id"] == 0 and c.first["request_id"]
    await c.send_audio(utterance(0.8, 0.5, seed=1) + utterance(1.0, 0.5, seed=2))
    await c.wait_type("TurnInfo", event="EndOfTurn", turn_index=1)
    ends = [e for e in c.events if e.get("event") == "EndOfTurn"]
    assert [e["transcript"] for e in ends] == ["hello there", "book a table for two"]
    assert all(e["trigger"] == "model" for e in ends)
    assert check_flux_order(turn_infos(c)) == []
    seqs = [e["sequence_id"] for e in c.events]
    assert seqs == list(range(1, len(seqs) + 1))  # Connected was 0; every message numbered, no gaps
    assert all(e["request_id"] == c.first["request_id"] for e in c.events)
    assert not [e for e in c.events if e["type"] not in ("TurnInfo",)]  # nothing outside Flux's schema
    # CloseStream: speech in flight gets its last Update, no EndOfTurn, then the server closes.
    n = len(c.events)
    await c.send_audio(speech(0.5, seed=3))
    await c.send_json({"type": "CloseStream"})
    await c.ws.wait_closed()
    tail = c.events[n:]
    assert tail and all(e["type"] == "TurnInfo" and e["event"] != "EndOfTurn" for e in tail)
    log = await emulator_log(provider_emulator, s)
    closed = [e for e in log if e["event"] == "closed"]
    assert closed and closed[-1]["audio_bytes"] >= 2 * 16000 * (0.8 + 0.5 + 1.0 + 0.5 + 0.5) - 2


async def test_flux_configure_force_end_turn_and_warning(vani_cluster, provider_emulator):
    s = sid()
    await script(provider_emulator, s, transcripts=["first words"])
    c = await AgentClient.connect(flux_url(vani_cluster, s, "eot_threshold=0.9&keyterm=vani&keyterm=flux"))
    await c.send_json({"type": "ForceEndTurn"})
    warn = await c.wait_type("Warning")
    assert warn["code"] == "FORCE_END_TURN_NO_ACTIVE_TURN"
    await c.send_json({"type": "Configure", "thresholds": {"eot_threshold": 0.8, "eot_timeout_ms": 3000}})
    ok = await c.wait_type("ConfigureSuccess")
    assert ok["thresholds"]["eot_threshold"] == 0.8 and ok["thresholds"]["eot_timeout_ms"] == 3000
    assert ok["keyterms"] == ["vani", "flux"]  # the keyterm query params reached the provider
    await c.send_json({"type": "Configure", "thresholds": {"eot_threshold": 2.0}})
    assert (await c.wait_type("ConfigureFailure"))["type"] == "ConfigureFailure"
    await c.send_audio(speech(0.6, seed=4))
    await c.wait_type("TurnInfo", event="StartOfTurn")
    await c.send_json({"type": "ForceEndTurn"})
    end = await c.wait_type("TurnInfo", event="EndOfTurn")
    assert end["trigger"] == "manual" and end["transcript"] == "first words"
    await c.send_json({"type": "Bogus"})
    err = await c.wait_type("Error")
    assert err["code"] == "UNKNOWN_TYPE"  # Flux-shaped error; the connection stays open (documented)
    await c.close()


async def test_flux_eager_params_pass_through(vani_cluster, provider_emulator):
    s = sid()
    await script(provider_emulator, s, transcripts=["eager one"])
    c = await AgentClient.connect(flux_url(vani_cluster, s, "eager_eot_threshold=0.3&eot_threshold=0.7"))
    await c.send_audio(utterance(0.6, 0.5, seed=5))
    await c.wait_type("TurnInfo", event="EndOfTurn")
    events = [e["event"] for e in c.events if e["type"] == "TurnInfo"]
    assert "EagerEndOfTurn" in events and events.index("EagerEndOfTurn") < events.index("EndOfTurn")
    await c.close()


async def test_flux_history_survives_reconnect(vani_cluster, provider_emulator):
    s = sid()
    await script(provider_emulator, s, transcripts=["before the drop", "after the drop"])
    c = await AgentClient.connect(flux_url(vani_cluster, s))
    token = c.first["resume_token"]
    await c.send_audio(utterance(0.6, 0.5, seed=6))
    await c.wait_type("TurnInfo", event="EndOfTurn")
    await c.close()  # no CloseStream: the session waits for us within its TTL
    c2 = await AgentClient.connect(flux_url(vani_cluster, s, f"resume_token={token}"))
    assert c2.first["type"] == "Connected" and c2.first["resumed"] is True
    assert [h["transcript"] for h in c2.first["history"]] == ["before the drop"]
    assert c2.first["sequence_id"] > 0  # the numbering continues: same session
    await c2.send_audio(utterance(0.6, 0.5, seed=7))
    end = await c2.wait_type("TurnInfo", event="EndOfTurn")
    assert end["transcript"] == "after the drop" and end["turn_index"] == 1
    await c2.send_json({"type": "CloseStream"})
    await c2.ws.wait_closed()


async def test_flux_backpressure_keeps_every_byte(vani_cluster, provider_emulator):
    """A client far ahead of real time fills the 128 KB inbound buffer and is slowed down, not cut."""
    s = sid()
    await script(provider_emulator, s, transcripts=["a long one"])
    c = await AgentClient.connect(flux_url(vani_cluster, s))
    audio = utterance(6.0, 0.6, seed=8) + silence(4.0)  # ~340 KB sent as fast as the socket allows
    await c.send_audio(audio, size=32000)
    await c.wait_type("TurnInfo", event="EndOfTurn")
    await c.send_json({"type": "CloseStream"})
    await c.ws.wait_closed()
    closed = [e for e in await emulator_log(provider_emulator, s) if e["event"] == "closed"]
    assert closed[-1]["audio_bytes"] >= len(audio)


@pytest.mark.parametrize("query", ["eot_threshold=0.2", "encoding=mulaw", "eager_eot_threshold=abc"])
async def test_flux_bad_params_refused(vani_cluster, query):
    with pytest.raises(InvalidStatus):
        await AgentClient.connect(flux_url(vani_cluster, sid(), query))
