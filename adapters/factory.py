"""Choose providers from ``Settings``: the one place a session gets STT / LLM / TTS from.

``build_providers(settings, session_id, with_reply=...)`` is what a session uses: every provider comes out
complete (per-session header, STT keep-alive), so nothing patches a provider after construction.
``make_stt`` / ``make_llm`` / ``make_tts`` build one each (``vani providers check`` and the adapter tests use
them). They read provider names from settings and credentials from the environment (``env`` overrides
``os.environ``, for tests); ``headers`` go on every HTTP / WebSocket request. Names:
stt: workers-ai | deepgram | local;  llm: workers-ai | openai | local;
tts: workers-ai | deepgram | deepgram-ws | local | espeak (plus ``tts_fallback``, another tts name).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vani.adapters.base import ErrorKind, LlmProvider, ProviderError, SttOptions, SttProvider, TtsOptions, TtsProvider
from vani.adapters.credentials import require_env

if TYPE_CHECKING:
    from vani.cluster.config import Settings

STT_NAMES = ("workers-ai", "deepgram", "local")
LLM_NAMES = ("workers-ai", "openai", "local")
TTS_NAMES = ("workers-ai", "deepgram", "deepgram-ws", "local", "espeak")
LOCAL = {
    ("stt", "local"): "vani.adapters.local.stt:LocalStt",
    ("llm", "local"): "vani.adapters.local.reply_engine:ReplyEngine",
    ("tts", "local"): "vani.adapters.local.tts:PiperTts",
    ("tts", "espeak"): "vani.adapters.local.tts:EspeakTts",
}


def _local(kind: str, name: str, settings: Any) -> Any:
    target = LOCAL[(kind, name)]
    module, _, cls = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as e:
        raise ProviderError(
            name, ErrorKind.CONFIG, f"{kind} provider {name!r} is unavailable ({target}: {e})"
        ) from None
    return factory.from_settings(settings)


def _unknown(kind: str, name: str, allowed: tuple[str, ...]) -> ProviderError:
    return ProviderError(
        name or "?", ErrorKind.CONFIG, f"unknown {kind} provider {name!r}; one of {', '.join(allowed)}"
    )


def _timeouts(s: Any) -> dict[str, float]:
    return {"connect_timeout_s": s.provider_connect_timeout_s}


def make_stt(
    settings: Any, env: dict[str, str] | None = None, *, headers: Mapping[str, str] | None = None
) -> SttProvider:
    """The configured ``SttProvider``; raises ``ProviderError(CONFIG)`` if it cannot be built."""
    from vani.adapters.stt.flux import FluxStt, deepgram_endpoint, workers_ai_endpoint

    name = settings.stt_provider
    common = {
        "max_reconnects": settings.stt_max_reconnects,
        "replay_max_s": settings.stt_replay_max_s,
        "keepalive_s": settings.stt_keepalive_s,
        "extra_headers": dict(headers or {}),
        **_timeouts(settings),
    }
    if name == "workers-ai":
        acct, token = require_env(name, "CF_ACCOUNT_ID", "CF_API_TOKEN", env=env)
        return FluxStt(workers_ai_endpoint(settings.cf_base_url, acct, token), name=name, **common)
    if name == "deepgram":
        (key,) = require_env(name, "DEEPGRAM_API_KEY", env=env)
        return FluxStt(deepgram_endpoint(settings.deepgram_base_url, key), name=name, **common)
    if name == "local":
        return _local("stt", name, settings)
    raise _unknown("stt", name, STT_NAMES)


def make_llm(
    settings: Any, env: dict[str, str] | None = None, *, headers: Mapping[str, str] | None = None
) -> LlmProvider:
    """The configured ``LlmProvider``. Workers AI uses its OpenAI-compatible endpoint unless ``llm_api=native``."""
    from vani.adapters.llm.openai_compat import OpenAiCompatLlm
    from vani.adapters.llm.workers_ai import WorkersAiNativeLlm

    name = settings.llm_provider
    common = {
        "max_tokens": settings.llm_max_tokens,
        "temperature": settings.llm_temperature,
        "max_retries": settings.llm_max_retries,
        "read_timeout_s": settings.provider_read_timeout_s,
        "extra_headers": dict(headers or {}),
        **_timeouts(settings),
    }
    if name == "workers-ai":
        acct, token = require_env(name, "CF_ACCOUNT_ID", "CF_API_TOKEN", env=env)
        if settings.llm_api == "native":
            return WorkersAiNativeLlm(settings.cf_base_url, acct, token, settings.llm_model, name=name, **common)
        base = f"{settings.cf_base_url.rstrip('/')}/accounts/{acct}/ai/v1"
        usage = settings.llm_stream_usage
        return OpenAiCompatLlm(base, token, settings.llm_model, name=name, include_usage=usage, **common)
    if name == "openai":
        # Local servers (llama.cpp, vLLM) often need no key: allow an empty one only for a custom base URL.
        key = (os.environ if env is None else env).get("OPENAI_API_KEY", "")
        if not key and "api.openai.com" in settings.openai_base_url:
            require_env(name, "OPENAI_API_KEY", env=env)
        base, model, usage = settings.openai_base_url, settings.llm_model, settings.llm_stream_usage
        return OpenAiCompatLlm(base, key or "none", model, name=name, include_usage=usage, **common)
    if name == "local":
        return _local("llm", name, settings)
    raise _unknown("llm", name, LLM_NAMES)


def _tts_one(
    name: str, settings: Any, env: dict[str, str] | None, headers: Mapping[str, str] | None = None
) -> TtsProvider:
    from vani.adapters.tts.aura_rest import AuraRestTts
    from vani.adapters.tts.deepgram_ws import DeepgramWsTts

    t = {
        "read_timeout_s": settings.provider_read_timeout_s,
        "extra_headers": dict(headers or {}),
        **_timeouts(settings),
    }
    if name == "workers-ai":
        acct, token = require_env(name, "CF_ACCOUNT_ID", "CF_API_TOKEN", env=env)
        return AuraRestTts(
            "workers-ai",
            settings.cf_base_url,
            token,
            account_id=acct,
            name=name,
            first_byte_timeout_s=settings.tts_first_byte_timeout_s * 2,
            **t,
        )
    if name == "deepgram":
        (key,) = require_env(name, "DEEPGRAM_API_KEY", env=env)
        return AuraRestTts(
            "deepgram",
            settings.deepgram_base_url,
            key,
            name=name,
            first_byte_timeout_s=settings.tts_first_byte_timeout_s * 2,
            **t,
        )
    if name == "deepgram-ws":
        (key,) = require_env(name, "DEEPGRAM_API_KEY", env=env)
        base = settings.deepgram_base_url.rstrip("/").replace("https://", "wss://").replace("http://", "ws://")
        return DeepgramWsTts(base + "/v1/speak", f"Token {key}", key, name=name, **t)
    if name in ("local", "espeak"):
        return _local("tts", name, settings)
    raise _unknown("tts", name, TTS_NAMES)


def make_tts(
    settings: Any, env: dict[str, str] | None = None, *, headers: Mapping[str, str] | None = None
) -> TtsProvider:
    """The configured ``TtsProvider``, wrapped in ``FallbackTts`` when ``tts_fallback`` is set."""
    primary = _tts_one(settings.tts_provider, settings, env, headers)
    if not settings.tts_fallback:
        return primary
    from vani.adapters.tts.fallback import FallbackTts

    secondary = _tts_one(settings.tts_fallback, settings, env, headers)
    return FallbackTts(primary, secondary, first_byte_timeout_s=settings.tts_first_byte_timeout_s)


def stt_options(settings: Any) -> SttOptions:
    """``SttOptions`` from the ``flux_*`` settings."""
    keyterms = [k.strip() for k in (settings.flux_keyterms or "").split(",") if k.strip()]
    return SttOptions(
        eot_threshold=settings.flux_eot_threshold,
        eager_eot_threshold=settings.flux_eager_eot_threshold,
        eot_timeout_ms=settings.flux_eot_timeout_ms,
        keyterms=keyterms,
    )


def tts_options(settings: Any) -> TtsOptions:
    """``TtsOptions`` from the ``tts_*`` settings."""
    return TtsOptions(
        speaker=settings.tts_speaker,
        encoding=settings.tts_encoding,
        container=settings.tts_container,
        sample_rate=settings.tts_sample_rate,
        bit_rate=settings.tts_bit_rate,
    )


@dataclass
class Providers:
    """One session's providers, built complete; the session owns them and closes them with ``aclose``."""

    stt: SttProvider
    stt_options: SttOptions
    llm: LlmProvider | None  # None when the session does not reply (transcription only)
    tts: TtsProvider | None
    tts_options: TtsOptions

    async def aclose(self) -> None:
        """Close the LLM / TTS clients (STT streams are closed by whoever opened them). Never raises."""
        for provider in (self.llm, self.tts):
            closer = getattr(provider, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()


def build_providers(settings: Settings, session_id: str, *, with_reply: bool) -> Providers:
    """Providers for one session. Raises ``ProviderError(CONFIG)`` if one cannot be built.

    ``settings.provider_session_header`` (when set) names a header carrying ``session_id`` on every
    provider request, so a provider-side log (or the emulator's per-session script) can tell sessions apart.
    """
    header = settings.provider_session_header
    headers = {header: session_id} if header else {}
    return Providers(
        stt=make_stt(settings, headers=headers),
        stt_options=stt_options(settings),
        llm=make_llm(settings, headers=headers) if with_reply else None,
        tts=make_tts(settings, headers=headers) if with_reply else None,
        tts_options=tts_options(settings),
    )
