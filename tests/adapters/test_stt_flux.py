"""Flux STT adapter (Workers AI and Deepgram) against the emulated Flux: normal use and each fault."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.adapters.audio import chunks, silence, speech, turns
from tests.support.flux_rules import check_flux_order
from vani.adapters.base import ErrorKind, ProviderError, SttOptions, TurnEvent, TurnEventType
from vani.adapters.factory import make_stt
from vani.adapters.stt.flux import FluxStream, FluxStt, deepgram_endpoint, workers_ai_endpoint

E = TurnEventType
TWO_TURNS = turns((1.2, 0.6), (0.9, 0.6))


async def run(stream: FluxStream, pcm: bytes, tail: float = 0.0) -> list[TurnEvent]:
    """Send audio as fast as the socket takes it, close, and collect every event."""
    got: list[TurnEvent] = []

    async def collect() -> None:
        async for ev in stream.events():
            got.append(ev)

    reader = asyncio.create_task(collect())
    for c in chunks(pcm):
        await stream.send_audio(c)
    await asyncio.sleep(tail)
    await wait_for(lambda: _quiet(got), 5.0)
    await stream.close()
    await asyncio.wait_for(reader, 5)
    return got


def _quiet(got: list[TurnEvent], _state: dict = {}) -> bool:  # noqa: B006 - poll helper memory
    n = len(got)
    same = _state.get("n") == n
    _state["n"] = n
    return same


async def wait_for(cond, limit_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


def ends(events: list[TurnEvent]) -> list[TurnEvent]:
    return [e for e in events if e.event is E.END_OF_TURN]


@pytest.fixture
def cf(settings, env):
    return make_stt(settings.replace(stt_provider="workers-ai"), env)


async def test_workers_ai_turns_follow_flux_rules(cf, control, key):
    await control.script(key, transcripts=["hello there", "book a table for two"])
    events = await run(await cf.open(key, SttOptions()), TWO_TURNS)
    assert check_flux_order(events, max_update_gap_s=0.3) == []
    assert [e.event for e in events if e.event is not E.UPDATE] == [E.START_OF_TURN, E.END_OF_TURN] * 2
    assert [(e.transcript, e.turn_index, e.trigger) for e in ends(events)] == [
        ("hello there", 0, "model"),
        ("book a table for two", 1, "model"),
    ]
    first = ends(events)[0]
    assert [w.word for w in first.words] == ["hello", "there"]
    assert 0.25 <= first.audio_window_start <= 0.4 and 1.5 <= first.audio_window_end <= 1.9
    # Words span the speech, not the trailing silence: the last word ends ~eot_ms before EndOfTurn.
    assert 0.2 <= first.audio_window_end - first.words[-1].end <= 0.32, (first.words[-1], first.audio_window_end)
    updates = [e for e in events if e.event is E.UPDATE and e.turn_index == 0]
    assert len(updates) >= 3  # ~every 250 ms over 1.2 s of speech


async def test_deepgram_direct_same_semantics(settings, env, control, key):
    stt = make_stt(settings.replace(stt_provider="deepgram"), env)
    assert stt.endpoint.params == {"model": "flux-general-en"}
    await control.script(key, transcripts=["one", "two"])
    events = await run(await stt.open(key, SttOptions()), TWO_TURNS)
    assert check_flux_order(events) == []
    assert [e.transcript for e in ends(events)] == ["one", "two"]


async def test_eager_end_of_turn_and_resume(cf, control, key):
    await control.script(key, transcripts=["wait", "ok"])
    # 0.2 s pause: past eager (0.4 -> ~150 ms) but short of EndOfTurn (260 ms) -> TurnResumed.
    pcm = turns((0.8, 0.2), (0.6, 0.6))
    events = await run(await cf.open(key, SttOptions(eager_eot_threshold=0.4)), pcm)
    assert check_flux_order(events) == []
    kinds = [e.event for e in events if e.event is not E.UPDATE]
    assert kinds == [E.START_OF_TURN, E.EAGER_END_OF_TURN, E.TURN_RESUMED, E.EAGER_END_OF_TURN, E.END_OF_TURN]
    eager = [e for e in events if e.event is E.EAGER_END_OF_TURN][-1]
    assert eager.transcript == ends(events)[0].transcript == "wait"


async def test_timeout_trigger_when_threshold_unreachable(cf, control, key):
    await control.script(key, transcripts=["slow"])
    pcm = turns((0.6, 0.8))
    events = await run(await cf.open(key, SttOptions(eot_threshold=1.0, eot_timeout_ms=600)), pcm)
    assert [(e.trigger, e.transcript) for e in ends(events)] == [("timeout", "slow")]


async def test_configure_live_and_rejected(cf, control, key):
    await control.script(key, transcripts=["a"])
    stream = await cf.open(key, SttOptions())
    await stream.configure(eot_threshold=0.9, keyterms=["vani"])
    assert stream.opts.eot_threshold == 0.9 and stream.opts.keyterms == ["vani"]
    with pytest.raises(ProviderError) as err:
        await stream.configure(eot_threshold=3.0)
    assert err.value.kind is ErrorKind.BAD_REQUEST
    # 0.9 needs 0.9/0.7 * 260 ms ~ 335 ms of silence: a 0.3 s pause no longer ends the turn.
    events = await run(stream, turns((0.5, 0.3), (0.5, 0.6)))
    assert len(ends(events)) == 1


async def test_force_end_turn_manual_and_no_active_turn(cf, control, key):
    await control.script(key, transcripts=["cut short"])
    stream = await cf.open(key, SttOptions())
    got: list[TurnEvent] = []
    reader = asyncio.create_task(_collect(stream, got))
    await stream.force_end_turn()  # no active turn: a Warning, which the client ignores
    for c in chunks(silence(0.2) + speech(0.6)):
        await stream.send_audio(c)
    await wait_for(lambda: any(e.event is E.START_OF_TURN for e in got), 5)
    await stream.force_end_turn()
    await wait_for(lambda: ends(got), 5)
    await stream.close()
    await asyncio.wait_for(reader, 5)
    assert [(e.trigger, e.transcript) for e in ends(got)] == [("manual", "cut short")]
    assert check_flux_order(got) == []


async def _collect(stream: FluxStream, got: list[TurnEvent]) -> None:
    async for ev in stream.events():
        got.append(ev)


async def test_close_stream_sends_no_end_of_turn(cf, control, key):
    await control.script(key, transcripts=["never finished"])
    events = await run(await cf.open(key, SttOptions()), silence(0.2) + speech(0.8))
    assert events and not ends(events)
    assert events[0].event is E.START_OF_TURN


@pytest.mark.parametrize("fault", ["no_type", "unknown", "malformed_after=2"])
async def test_tolerates_missing_type_unknown_and_malformed_frames(settings, env, control, key, fault):
    await control.script(key, transcripts=["x y", "z"])
    stt = make_stt(settings.replace(stt_provider="workers-ai"), env, headers={"x-emulator-fault": fault})
    events = await run(await stt.open(key, SttOptions()), TWO_TURNS)
    assert [e.transcript for e in ends(events)] == ["x y", "z"]
    assert check_flux_order(events) == []


@pytest.mark.parametrize(
    ("status", "kind"), [(401, ErrorKind.AUTH), (429, ErrorKind.RATE_LIMITED), (400, ErrorKind.BAD_REQUEST)]
)
async def test_handshake_errors_are_typed_and_redacted(settings, control, key, status, kind):
    token = "sekrit-token-value"
    await control.script(key, faults={"flux": [f"status={status}"] * 10})
    stt = FluxStt(workers_ai_endpoint(settings.cf_base_url, "acct", token), name="workers-ai", max_reconnects=1)
    with pytest.raises(ProviderError) as err:
        await stt.open(key, SttOptions())
    assert err.value.kind is kind and err.value.status == status
    assert token not in str(err.value)


async def test_missing_auth_is_rejected_by_emulator(settings, key):
    stt = FluxStt(deepgram_endpoint(settings.deepgram_base_url, "k"), name="deepgram")
    stt.endpoint = dataclasses.replace(stt.endpoint, headers={})
    with pytest.raises(ProviderError) as err:
        await stt.open(key, SttOptions())
    assert err.value.kind is ErrorKind.AUTH


async def test_slow_start_and_stall_still_deliver_everything(cf, control, key):
    await control.script(key, transcripts=["p", "q"], faults={"flux": ["slow_start_ms=300;stall_after=2;stall_ms=300"]})
    events = await run(await cf.open(key, SttOptions()), TWO_TURNS)
    assert [e.transcript for e in ends(events)] == ["p", "q"]


# ---- resilience: reconnect and replay ------------------------------------------------------


@pytest.mark.parametrize("fault", ["drop_after=3", "error_after=5", "drop_after=9"])
async def test_reconnect_replays_unacknowledged_audio(cf, control, key, fault):
    """A drop mid-turn (or a fatal Error) loses no speech: every turn arrives once, in order."""
    script = ["first turn here", "second turn", "third and last"]
    await control.script(key, transcripts=script, faults={"flux": [fault]})
    pcm = turns((1.0, 0.6), (0.8, 0.6), (0.8, 0.6))
    stream = await cf.open(key, SttOptions())
    events = await run(stream, pcm)
    assert stream.reconnects == 1
    assert [(e.transcript, e.turn_index) for e in ends(events)] == [(t, i) for i, t in enumerate(script)]
    assert check_flux_order(events) == []
    log = await control.log(key)
    connects = [r for r in log if r["event"] == "connect"]
    received = sum(r["audio_bytes"] for r in log if r["event"] == "closed")
    assert len(connects) == 2
    assert received >= len(pcm)  # every byte reached the emulator; some twice (the replay)
    # Audio windows are on one continuous clock across the reconnect.
    assert ends(events)[-1].audio_window_end == pytest.approx(len(pcm) / 32000 - 0.6 + 0.26, abs=0.1)


async def test_reconnect_gives_up_with_typed_error(settings, env, control, key):
    await control.script(key, faults={"flux": ["", *["drop_after=0;status=503"] * 10]})
    stt = make_stt(settings.replace(stt_provider="workers-ai", stt_max_reconnects=2), env)
    stream = await stt.open(key, SttOptions())
    await control.script(key, faults={"flux": ["status=503"] * 20})  # every reconnect is refused
    with pytest.raises(ProviderError) as err:
        for c in chunks(TWO_TURNS):
            await stream.send_audio(c)
        await stream._ws.close()  # simulate the network dropping under us
        async for _ in stream.events():
            pass
    assert err.value.kind is ErrorKind.UNAVAILABLE
    await stream.close()
