"""TTS with a second provider: if the first fails or gives no audio in time, the second speaks instead.

Fallback happens only *before* the first chunk reaches the caller; a failure after audio was played
cannot be patched without repeating speech, so it surfaces as the primary's ``ProviderError``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from vani.adapters.base import ProviderError, TtsChunk, TtsOptions, TtsProvider

log = logging.getLogger(__name__)


@dataclass
class FallbackTts:
    primary: TtsProvider
    secondary: TtsProvider
    first_byte_timeout_s: float = 3.0
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"{self.primary.name}+{self.secondary.name}"
        self.fallbacks = 0  # for metrics and tests

    async def synthesize(self, text: str, options: TtsOptions) -> AsyncIterator[TtsChunk]:
        """Primary's audio, or the secondary's if the primary fails or stalls before its first chunk."""
        it = aiter(self.primary.synthesize(text, options))
        first: TtsChunk | None = None
        reason = ""
        try:
            async with asyncio.timeout(self.first_byte_timeout_s):
                first = await anext(it)
        except StopAsyncIteration:
            return
        except TimeoutError:
            reason = f"no audio within {self.first_byte_timeout_s:g} s"
        except ProviderError as e:
            reason = str(e)
        if first is None:
            await _close(it)
            self.fallbacks += 1
            log.warning("tts %s failed (%s); falling back to %s", self.primary.name, reason, self.secondary.name)
            try:
                async for chunk in self.secondary.synthesize(text, options):
                    yield chunk
            except ProviderError as e:
                raise ProviderError(self.name, e.kind, f"primary: {reason}; fallback: {e}", e.status) from None
            return
        try:
            yield first
            async for chunk in it:
                yield chunk
        finally:
            await _close(it)

    async def aclose(self) -> None:
        """Close both providers' clients (the wrapper holds no socket of its own)."""
        for provider in (self.primary, self.secondary):
            closer = getattr(provider, "aclose", None)
            if closer is not None:
                await closer()


async def _close(it: AsyncIterator[TtsChunk]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except (ProviderError, RuntimeError):
            pass
