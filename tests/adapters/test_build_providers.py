"""``build_providers``: a session's providers come out complete (session header, STT keep-alive), unpatched."""

from __future__ import annotations

import asyncio

import pytest

from vani.adapters.base import ChatMessage, LlmDone, SttOptions, TtsOptions
from vani.adapters.factory import build_providers


@pytest.fixture
def remote(settings, env, monkeypatch):
    """Settings naming the emulated remote providers; credentials from the real environment."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return settings.replace(
        stt_provider="workers-ai",
        llm_provider="openai",
        tts_provider="workers-ai",
        tts_fallback="deepgram-ws",
        provider_session_header="x-emulator-key",
        stt_keepalive_s=0.2,
    )


async def test_session_header_reaches_every_provider(remote, control, key):
    # The primary TTS fails once, so the fallback (a WebSocket TTS) speaks too and must carry the header.
    await control.script(key, faults={"tts": ["status=503"]})
    providers = build_providers(remote, key, with_reply=True)
    assert providers.llm is not None and providers.tts is not None
    # The stream's own tag names another key: only the header can file this connection under ``key``.
    stream = await providers.stt.open("not-the-session", SttOptions())
    await asyncio.sleep(0.5)  # no audio: the keep-alive sends silence
    await stream.close()
    events = [e async for e in providers.llm.stream([ChatMessage("user", "hello")])]
    assert isinstance(events[-1], LlmDone)
    audio = [c async for c in providers.tts.synthesize("Hello there.", TtsOptions())]
    assert audio
    await providers.aclose()
    log = await control.log(key)
    assert {(e["service"], e["event"]) for e in log} >= {
        ("flux", "connect"),
        ("llm", "request"),
        ("tts", "rejected"),
        ("tts_ws", "connect"),
    }
    closed = next(e for e in log if (e["service"], e["event"]) == ("flux", "closed"))
    assert closed["audio_bytes"] > 0  # keep-alive silence, sent at the configured 0.2 s


async def test_transcription_only_has_no_reply_providers(remote):
    providers = build_providers(remote.replace(provider_session_header=""), "s1", with_reply=False)
    assert providers.llm is None and providers.tts is None
    assert providers.stt.extra_headers == {} and providers.stt.keepalive_s == 0.2
    assert providers.stt_options.eot_threshold == remote.flux_eot_threshold
    assert providers.tts_options.speaker == remote.tts_speaker
    await providers.aclose()  # nothing to close, and never raises
