"""Provider selection by settings, credentials from env only, and ``vani providers check``."""

from __future__ import annotations

import pytest

from vani.adapters.base import ErrorKind, ProviderError
from vani.adapters.check import check_all
from vani.adapters.factory import make_llm, make_stt, make_tts, stt_options
from vani.adapters.llm.openai_compat import OpenAiCompatLlm
from vani.adapters.llm.workers_ai import WorkersAiNativeLlm
from vani.adapters.tts.deepgram_ws import DeepgramWsTts
from vani.cluster.config import Settings


def test_defaults_are_local():
    s = Settings()
    assert (s.stt_provider, s.llm_provider, s.tts_provider, s.tts_fallback) == ("local", "local", "local", None)


@pytest.mark.parametrize("make", [make_stt, make_llm, make_tts])
def test_missing_credentials_name_the_variable(settings, make):
    s = settings.replace(stt_provider="workers-ai", llm_provider="workers-ai", tts_provider="workers-ai")
    with pytest.raises(ProviderError) as err:
        make(s, {"CF_ACCOUNT_ID": "acct"})
    assert err.value.kind is ErrorKind.CONFIG and "CF_API_TOKEN" in err.value.message


def test_unknown_names_are_config_errors(settings, env):
    with pytest.raises(ProviderError) as err:
        make_llm(settings.replace(llm_provider="gpt-nine"), env)
    assert err.value.kind is ErrorKind.CONFIG and "workers-ai, openai, local" in err.value.message


def test_choice_by_settings(settings, env):
    assert isinstance(make_llm(settings.replace(llm_provider="workers-ai"), env), OpenAiCompatLlm)
    assert isinstance(make_llm(settings.replace(llm_provider="workers-ai", llm_api="native"), env), WorkersAiNativeLlm)
    llm = make_llm(settings.replace(llm_provider="workers-ai"), env)
    assert llm.base_url.endswith("/accounts/emulated/ai/v1")
    assert isinstance(make_tts(settings.replace(tts_provider="deepgram-ws"), env), DeepgramWsTts)
    local_llm = make_llm(settings.replace(llm_provider="openai", openai_base_url="http://127.0.0.1:1/v1"), {})
    assert local_llm.api_key == "none"  # llama.cpp / vLLM need no key
    opts = stt_options(settings.replace(flux_keyterms="vani, Ray ", flux_eager_eot_threshold=0.4))
    assert opts.keyterms == ["vani", "Ray"] and opts.eager_eot_threshold == 0.4


def test_settings_from_env_strings():
    s = Settings.load(env={"VANI_TTS_FALLBACK": "deepgram", "VANI_FLUX_EOT_TIMEOUT_MS": "3000"})
    assert s.tts_fallback == "deepgram" and s.flux_eot_timeout_ms == 3000


async def test_providers_check_reports_each(settings, env):
    s = settings.replace(
        stt_provider="workers-ai", llm_provider="openai", tts_provider="deepgram", tts_fallback="deepgram-ws"
    )
    results = await check_all(s, 10.0, env)
    assert [(r.role, r.name, r.configured, r.ok) for r in results] == [
        ("stt", "workers-ai", True, True),
        ("llm", "openai", True, True),
        ("tts", "deepgram", True, True),
        ("tts_fallback", "deepgram-ws", True, True),
    ]
    bad = await check_all(s.replace(deepgram_base_url="http://127.0.0.1:9"), 3.0, env)
    assert [r.ok for r in bad] == [True, True, False, False]
    missing = await check_all(s, 3.0, {})
    assert [r.configured for r in missing] == [False, True, False, False]  # a custom OpenAI URL needs no key
