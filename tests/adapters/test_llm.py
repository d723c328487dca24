"""LLM adapters (OpenAI-compatible, Workers AI OpenAI endpoint, Workers AI native SSE) against the emulator."""

from __future__ import annotations

import asyncio

import pytest

from vani.adapters.base import ChatMessage, ErrorKind, LlmDone, LlmToken, LlmToolCall, ProviderError, ToolSpec
from vani.adapters.factory import make_llm
from vani.adapters.llm.openai_compat import OpenAiCompatLlm

WEATHER = ToolSpec(
    "get_weather",
    "Weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
HELLO = [ChatMessage("system", "Be brief."), ChatMessage("user", "hello there")]
REPLY = "Sure. You said: hello there. Anything else?"


async def collect(llm, messages=HELLO, tool=None) -> list:
    return [ev async for ev in llm.stream(messages, tool)]


def text(events) -> str:
    return "".join(e.text for e in events if isinstance(e, LlmToken))


@pytest.fixture(params=["openai", "workers-ai", "workers-ai-native"])
def llm(request, settings, env, key):
    name = request.param
    s = settings.replace(llm_provider=name.removesuffix("-native"), llm_api="native" if "native" in name else "openai")
    provider = make_llm(s, env, headers={"x-emulator-key": key})
    return provider


async def requests(control, key) -> list[dict]:
    return [r for r in await control.log(key) if r["event"] in ("request", "rejected")]


async def test_streams_deterministic_reply(llm, control, key):
    await control.script(key)
    events = await collect(llm)
    assert text(events) == REPLY
    assert sum(isinstance(e, LlmToken) for e in events) == len(REPLY.split())
    assert isinstance(events[-1], LlmDone) and events[-1].finish_reason == "stop"


async def test_tool_call_once_then_answer(llm, control, key):
    await control.script(key, use_tool=True, tool_arguments={"city": "Pune"})
    events = await collect(llm, tool=WEATHER)
    calls = [e.call for e in events if isinstance(e, LlmToolCall)]
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Pune"})]
    assert events[-1] == LlmDone("tool_calls", events[-1].usage)
    follow = [
        *HELLO,
        ChatMessage("assistant", tool_calls=calls),
        ChatMessage("tool", '{"temp_c": 31}', tool_call_id=calls[0].id),
    ]
    again = await collect(llm, follow, tool=WEATHER)
    assert not any(isinstance(e, LlmToolCall) for e in again) and text(again) == REPLY


async def test_split_frames_parse_identically(settings, env, key, control):
    await control.script(key)
    llm = make_llm(
        settings.replace(llm_provider="openai"), env, headers={"x-emulator-key": key, "x-emulator-fault": "split"}
    )
    assert text(await collect(llm)) == REPLY


@pytest.mark.parametrize(
    "fault", ["status=429;retry_after=0.05", "status=503", "malformed_after=0", "drop_after=0", "slow_start_ms=200"]
)
async def test_recovers_from_fault_before_first_token(llm, control, key, fault):
    await control.script(key, faults={"llm": [fault]})
    events = await collect(llm)
    assert text(events) == REPLY
    expected = 1 if fault.startswith("slow") else 2
    assert len(await requests(control, key)) == expected
    assert [e.retries for e in events if isinstance(e, LlmDone)] == [expected - 1]  # the llm span says so


async def test_stall_times_out_then_retries(settings, env, control, key):
    await control.script(key, faults={"llm": ["stall_after=0;stall_ms=5000"]})
    llm = make_llm(
        settings.replace(llm_provider="openai", provider_read_timeout_s=0.5), env, headers={"x-emulator-key": key}
    )
    events = await collect(llm)
    assert text(events) == REPLY  # no token was delivered before the stall, so the retry is safe


async def test_stall_after_tokens_is_a_timeout_error(settings, env, control, key):
    await control.script(key, faults={"llm": ["stall_after=1;stall_ms=5000"]})
    llm = make_llm(
        settings.replace(llm_provider="openai", provider_read_timeout_s=0.5), env, headers={"x-emulator-key": key}
    )
    with pytest.raises(ProviderError) as err:
        await collect(llm)
    assert err.value.kind is ErrorKind.TIMEOUT and not err.value.retryable


async def test_retry_never_duplicates_a_tool_call(llm, control, key):
    """The socket drops after the first tool-call unit (OpenAI: id/name, arguments still to come; native:
    the whole call, but before [DONE]): retried, and exactly one call is delivered."""
    await control.script(
        key, use_tool=True, tool_arguments={"city": "Pune, Maharashtra, India"}, faults={"llm": ["drop_after=1"]}
    )
    events = await collect(llm, tool=WEATHER)
    calls = [e for e in events if isinstance(e, LlmToolCall)]
    assert len(calls) == 1 and calls[0].call.arguments == {"city": "Pune, Maharashtra, India"}
    assert len(await requests(control, key)) == 2


async def test_no_retry_after_tokens_were_delivered(llm, control, key):
    await control.script(key, faults={"llm": ["drop_after=3"]})
    got = []
    with pytest.raises(ProviderError) as err:
        async for ev in llm.stream(HELLO):
            got.append(ev)
    assert text(got) == "".join(REPLY.split(" ")[:0]) + " ".join(REPLY.split(" ")[:3])
    assert err.value.kind is ErrorKind.UNAVAILABLE and not err.value.retryable
    assert len(await requests(control, key)) == 1


@pytest.mark.parametrize(
    ("fault", "kind", "attempts"),
    [
        ("status=401", ErrorKind.AUTH, 1),
        ("status=400", ErrorKind.BAD_REQUEST, 1),
        ("status=429", ErrorKind.RATE_LIMITED, 3),
        ("status=500", ErrorKind.UNAVAILABLE, 3),
    ],
)
async def test_unrecovered_errors_are_typed(llm, control, key, fault, kind, attempts):
    await control.script(key, faults={"llm": [fault] * 5})
    with pytest.raises(ProviderError) as err:
        await collect(llm)
    assert err.value.kind is kind and err.value.status == int(fault.split("=")[1])
    assert len(await requests(control, key)) == attempts  # max_retries=2 -> 3 attempts for retryable


async def test_secret_never_in_errors(emulator, control, key):
    await control.script(key, faults={"llm": ["status=401"]})
    llm = OpenAiCompatLlm(f"{emulator}/v1", "sk-very-secret-1234", "m", extra_headers={"x-emulator-key": key})
    with pytest.raises(ProviderError) as err:
        await collect(llm)
    assert "sk-very-secret-1234" not in str(err.value) and "sk-very" not in repr(err.value)


async def test_cancel_closes_http_stream_at_once(settings, env, control, key):
    await control.script(key, reply=" ".join(f"w{i}" for i in range(200)))
    llm = make_llm(
        settings.replace(llm_provider="openai"),
        env,
        headers={"x-emulator-key": key, "x-emulator-latency": "tokens_per_s=50"},
    )
    it = aiter(llm.stream(HELLO))
    assert isinstance(await anext(it), LlmToken)
    assert isinstance(await anext(it), LlmToken)
    await it.aclose()
    for _ in range(50):
        log = await control.log(key)
        gone = [r for r in log if r["event"] == "disconnect"]
        if gone:
            break
        await asyncio.sleep(0.05)
    assert gone and gone[0]["units_sent"] < 20 and gone[0]["total"] == 200


async def test_cancel_by_task_cancel(settings, env, control, key):
    await control.script(key, reply=" ".join(f"w{i}" for i in range(200)))
    llm = make_llm(
        settings.replace(llm_provider="workers-ai"),
        env,
        headers={"x-emulator-key": key, "x-emulator-latency": "tokens_per_s=50"},
    )
    first = asyncio.Event()

    async def consume():
        async for _ in llm.stream(HELLO):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if any(r["event"] == "disconnect" for r in await control.log(key)):
            break
        await asyncio.sleep(0.05)
    assert any(r["event"] == "disconnect" for r in await control.log(key))
