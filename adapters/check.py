"""``vani providers check``: which providers are configured, and whether they answer.

Each configured provider gets one tiny real request (open+close a Flux stream, a one-token completion,
a two-word utterance), bounded by ``--timeout``. Errors are printed typed and redacted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from vani.adapters.base import ChatMessage, LlmDone, ProviderError


@dataclass
class CheckResult:
    role: str
    name: str
    configured: bool
    ok: bool
    detail: str
    ms: float = 0.0


async def _probe_stt(p: Any, settings: Any) -> str:
    from vani.adapters.factory import stt_options

    stream = await p.open("providers-check", stt_options(settings))
    await stream.send_audio(bytes(2560))
    await stream.close()
    return "stream opened and closed"


async def _probe_llm(p: Any, settings: Any) -> str:
    n = 0
    async for ev in p.stream([ChatMessage("user", "Say OK.")]):
        n += 1
        if isinstance(ev, LlmDone):
            break
    return f"{n} event(s)"


async def _probe_tts(p: Any, settings: Any) -> str:
    from vani.adapters.factory import tts_options

    size, fmt = 0, None
    async for chunk in p.synthesize("Hello there.", tts_options(settings)):
        size += len(chunk.audio)
        fmt = chunk.format
    return f"{size} bytes {fmt.encoding if fmt else ''}/{fmt.container if fmt else ''}"


async def check_all(settings: Any, timeout_s: float, env: dict[str, str] | None = None) -> list[CheckResult]:
    """Build and probe each configured provider (stt, llm, tts, and tts_fallback if set)."""
    from vani.adapters import factory

    plan: list[tuple[str, str, Callable[[], Any], Callable[[Any, Any], Awaitable[str]]]] = [
        ("stt", settings.stt_provider, lambda: factory.make_stt(settings, env), _probe_stt),
        ("llm", settings.llm_provider, lambda: factory.make_llm(settings, env), _probe_llm),
        ("tts", settings.tts_provider, lambda: factory._tts_one(settings.tts_provider, settings, env), _probe_tts),
    ]
    if settings.tts_fallback:
        fb = settings.tts_fallback
        plan.append(("tts_fallback", fb, lambda: factory._tts_one(fb, settings, env), _probe_tts))
    results = []
    for role, name, build, probe in plan:
        try:
            provider = build()
        except ProviderError as e:
            results.append(CheckResult(role, name, False, False, str(e)))
            continue
        t0 = time.perf_counter()
        try:
            detail = await asyncio.wait_for(probe(provider, settings), timeout_s)
            results.append(CheckResult(role, name, True, True, detail, (time.perf_counter() - t0) * 1000))
        except TimeoutError:
            results.append(CheckResult(role, name, True, False, f"no answer within {timeout_s:g} s"))
        except ProviderError as e:
            results.append(CheckResult(role, name, True, False, str(e)))
        finally:
            closer = getattr(provider, "aclose", None)
            if closer is not None:
                await closer()
    return results


def cmd_check(args: argparse.Namespace) -> int:
    """Print one line per provider; exit 1 if any configured provider does not answer."""
    from vani.cluster.config import Settings

    settings = Settings.load()
    results = asyncio.run(check_all(settings, float(getattr(args, "timeout", 5.0))))
    print(f"{'role':<13} {'provider':<12} {'configured':<10} {'answers':<8} {'ms':>7}  detail")
    for r in results:
        ms = f"{r.ms:7.0f}" if r.ok else "      -"
        print(
            f"{r.role:<13} {r.name:<12} {'yes' if r.configured else 'no':<10} {'yes' if r.ok else 'NO':<8} {ms}  "
            f"{r.detail}"
        )
    return 0 if all(r.ok for r in results) else 1
