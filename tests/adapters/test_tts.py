"""TTS adapters (Aura-2 REST on Workers AI and Deepgram, Deepgram speak WS) and the fallback."""

from __future__ import annotations

import asyncio
import io
import wave

import pytest

from vani.adapters.base import ErrorKind, ProviderError, TtsOptions
from vani.adapters.emulator.audio import speech_pcm
from vani.adapters.factory import make_tts
from vani.adapters.http_client import _env_proxy, proxy_for, streaming_client
from vani.adapters.tts.fallback import FallbackTts

TEXT = "Hello there, how can I help you today?"


def pcm_len(text: str, rate: int = 24000) -> int:
    return len(speech_pcm(text, rate))


async def synth(tts, text=TEXT, **opts):
    chunks = [c async for c in tts.synthesize(text, TtsOptions(**opts))]
    return b"".join(c.audio for c in chunks), chunks


@pytest.fixture(params=["workers-ai", "deepgram"])
def rest(request, settings, env, key):
    tts = make_tts(settings.replace(tts_provider=request.param), env, headers={"x-emulator-key": key})
    return tts


async def test_rest_linear16_raw(rest):
    audio, chunks = await synth(rest, encoding="linear16", container="none", sample_rate=16000)
    assert len(audio) == pcm_len(TEXT, 16000) and len(chunks) > 3  # streamed, not one blob
    assert chunks[0].format.encoding == "linear16" and chunks[0].format.sample_rate == 16000


async def test_rest_wav_and_mp3_are_real_audio(rest):
    audio, chunks = await synth(rest, encoding="linear16", container="wav", sample_rate=24000)
    with wave.open(io.BytesIO(audio)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnframes()) == (24000, 2, pcm_len(TEXT) // 2)
    assert chunks[0].format.container == "wav"
    audio, chunks = await synth(rest, encoding="mp3", bit_rate=48000)
    assert chunks[0].format.encoding == "mp3" and (audio[:3] == b"ID3" or audio[0] == 0xFF)
    assert len(audio) > 2000


async def test_workers_ai_mp3_quirk_is_reported(settings, env, key):
    tts = make_tts(
        settings.replace(tts_provider="workers-ai"),
        env,
        headers={"x-emulator-key": key, "x-emulator-fault": "mp3_quirk"},
    )
    _, chunks = await synth(tts, encoding="linear16", container="none")
    assert {c.format.encoding for c in chunks} == {"mp3"}  # believed the bytes, not the request


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("status=429", ErrorKind.RATE_LIMITED),
        ("status=503", ErrorKind.UNAVAILABLE),
        ("drop_after=2", ErrorKind.UNAVAILABLE),
        ("status=401", ErrorKind.AUTH),
    ],
)
async def test_rest_faults_are_typed(rest, control, key, fault, kind):
    await control.script(key, faults={"tts": [fault]})
    with pytest.raises(ProviderError) as err:
        await synth(rest, encoding="linear16")
    assert err.value.kind is kind


async def test_rest_unknown_speaker_is_bad_request(rest):
    with pytest.raises(ProviderError) as err:
        await synth(rest, speaker="nobody")
    assert err.value.kind is ErrorKind.BAD_REQUEST


async def test_rest_slow_first_byte_times_out(settings, env, key):
    headers = {"x-emulator-key": key, "x-emulator-latency": "ttfb_ms=2000"}
    tts = make_tts(settings.replace(tts_provider="deepgram"), env, headers=headers)
    tts.first_byte_timeout_s = 0.3
    with pytest.raises(ProviderError) as err:
        await synth(tts)
    assert err.value.kind is ErrorKind.TIMEOUT


# ---- Deepgram speak WebSocket ---------------------------------------------------------------


@pytest.fixture
def ws_tts(settings, env, key):
    tts = make_tts(settings.replace(tts_provider="deepgram-ws"), env, headers={"x-emulator-key": key})
    return tts


async def test_ws_utterances_on_one_socket(ws_tts, control, key):
    await control.script(key)
    a, chunks = await synth(ws_tts, "First sentence here.")
    b, _ = await synth(ws_tts, "And a second one.")
    assert len(a) == pcm_len("First sentence here.") and len(b) == pcm_len("And a second one.")
    assert chunks[0].format.encoding == "linear16" and chunks[0].format.sample_rate == 24000
    assert [r["event"] for r in await control.log(key)].count("connect") == 1
    await ws_tts.aclose()


async def test_ws_streamed_sentences(ws_tts):
    async def sentences():
        for s in ("One.", "Two two.", "Three three three."):
            yield s
            await asyncio.sleep(0.01)

    audio = b"".join([c.audio async for c in ws_tts.synthesize_stream(sentences(), TtsOptions())])
    assert len(audio) == sum(pcm_len(s) for s in ("One.", "Two two.", "Three three three."))
    await ws_tts.aclose()


async def test_ws_barge_in_clear_drops_stale_audio(ws_tts, control, key):
    """Cancel mid-utterance -> Clear; the next utterance gets exactly its own audio, none of the old."""
    await control.script(key)
    long_text = " ".join(["lengthy"] * 60)
    ws_tts.extra_headers["x-emulator-latency"] = "rtf=0.5"
    it = aiter(ws_tts.synthesize(long_text, TtsOptions()))
    first = await anext(it)
    assert first.audio
    await it.aclose()  # barge-in
    b, _ = await synth(ws_tts, "Short reply.")
    assert len(b) == pcm_len("Short reply.")
    assert "clear" in [r["event"] for r in await control.log(key)]
    await ws_tts.aclose()


@pytest.mark.parametrize("fault", ["drop_after=2", "status=503"])
async def test_ws_faults_are_typed(ws_tts, control, key, fault):
    await control.script(key, faults={"tts_ws": [fault]})
    with pytest.raises(ProviderError) as err:
        await synth(ws_tts)
    assert err.value.kind is ErrorKind.UNAVAILABLE
    a, _ = await synth(ws_tts, "Back again.")  # the next utterance reconnects
    assert len(a) == pcm_len("Back again.")
    await ws_tts.aclose()


async def test_ws_malformed_frame_is_ignored(ws_tts, control, key):
    await control.script(key, faults={"tts_ws": ["malformed_after=1"]})
    a, _ = await synth(ws_tts)
    assert len(a) == pcm_len(TEXT)
    await ws_tts.aclose()


# ---- fallback -----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["status=503", "drop_after=0", "slow_start_ms=3000"])
async def test_fallback_on_error_or_timeout(settings, env, control, key, fault):
    tts = make_tts(
        settings.replace(tts_provider="workers-ai", tts_fallback="deepgram", tts_first_byte_timeout_s=0.5), env
    )
    assert isinstance(tts, FallbackTts)
    tts.primary.extra_headers = {"x-emulator-key": key}
    tts.secondary.extra_headers = {"x-emulator-key": key + "-fb"}
    await control.script(key, faults={"tts": [fault]})
    audio, _ = await synth(tts, encoding="linear16", container="none")
    assert len(audio) == pcm_len(TEXT) and tts.fallbacks == 1
    audio, _ = await synth(tts, encoding="linear16", container="none")  # primary healthy again
    assert len(audio) == pcm_len(TEXT) and tts.fallbacks == 1


async def test_fallback_failure_reports_both(settings, env, control, key):
    tts = make_tts(
        settings.replace(tts_provider="workers-ai", tts_fallback="deepgram"), env, headers={"x-emulator-key": key}
    )
    await control.script(key, faults={"tts": ["status=503", "status=500"]})
    with pytest.raises(ProviderError) as err:
        await synth(tts)
    assert "primary" in err.value.message and "fallback" in err.value.message


async def test_streaming_client_has_no_connection_cap_and_reads_raw() -> None:
    """One host's sessions stream at once: a pool cap (aiohttp's default is 100) would queue a session's request
    behind others' streams. Bodies are handed over as sent (no content decoding), as with httpx before."""
    client = streaming_client(2.0, 1.0)
    try:
        assert client.connector is not None and client.connector.limit == 0
        assert client.auto_decompress is False
        assert client.timeout.sock_read == 2.0 and client.timeout.sock_connect == 1.0 and client.timeout.total is None
    finally:
        await client.close()


def test_proxy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """As httpx did: ``HTTPS_PROXY`` / ``ALL_PROXY`` apply, ``NO_PROXY`` hosts go direct, no proxy by default."""
    for name in ("https_proxy", "http_proxy", "all_proxy", "no_proxy", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    _env_proxy.cache_clear()
    assert proxy_for("https://api.deepgram.com/v1/speak") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    _env_proxy.cache_clear()
    try:
        assert proxy_for("https://api.deepgram.com/v1/speak") == "http://proxy.internal:3128"
        assert proxy_for("http://127.0.0.1:8000/v1/speak") is None
        assert proxy_for("http://api.example.com/x") is None  # no HTTP_PROXY, no ALL_PROXY
    finally:
        _env_proxy.cache_clear()
