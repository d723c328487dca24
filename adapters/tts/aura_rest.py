"""Aura-2 over REST, streaming the response body: Workers AI ``@cf/deepgram/aura-2-en`` and Deepgram
``/v1/speak``. Audio chunks are yielded as they arrive; the reported format is checked against the
body's magic bytes (see ``sniff``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from vani.adapters.base import AudioFormat, ErrorKind, ProviderError, TtsChunk, TtsOptions
from vani.adapters.errors import http_error, transport_error
from vani.adapters.http_client import TRANSPORT_ERRORS, proxy_for, streaming_client
from vani.adapters.tts.sniff import sniff

PCM_ENCODINGS = ("linear16", "mulaw", "alaw")
BITRATE_ENCODINGS = ("mp3", "opus", "aac")


@dataclass
class AuraRestTts:
    """``flavor`` is ``"workers-ai"`` (JSON body params, Bearer) or ``"deepgram"`` (query params, Token)."""

    flavor: str
    base_url: str  # Workers AI: .../client/v4 ; Deepgram: https://api.deepgram.com
    secret: str
    account_id: str = ""
    name: str = ""
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    extra_headers: dict[str, str] = field(default_factory=dict)
    _client: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        self.name = self.name or self.flavor

    def _http(self) -> aiohttp.ClientSession:
        if self._client is None:
            self._client = streaming_client(self.read_timeout_s, self.connect_timeout_s)
        return self._client

    def request(self, text: str, o: TtsOptions) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, str]]:
        """URL, query params, JSON body and headers for one utterance."""
        params: dict[str, Any] = {"encoding": o.encoding, "container": o.container}
        if o.encoding in PCM_ENCODINGS:
            params["sample_rate"] = o.sample_rate  # Deepgram rejects sample_rate for compressed encodings
        if o.bit_rate and o.encoding in BITRATE_ENCODINGS:
            params["bit_rate"] = o.bit_rate
        base = self.base_url.rstrip("/")
        if self.flavor == "workers-ai":
            url = f"{base}/accounts/{self.account_id}/ai/run/@cf/deepgram/aura-2-en"
            return url, {}, {"text": text, "speaker": o.speaker, **params}, {"Authorization": f"Bearer {self.secret}"}
        query = {"model": f"aura-2-{o.speaker}-en", **params}
        return f"{base}/v1/speak", query, {"text": text}, {"Authorization": f"Token {self.secret}"}

    async def synthesize(self, text: str, options: TtsOptions) -> AsyncIterator[TtsChunk]:
        """Audio chunks as the body arrives. Cancel (or ``aclose()``) to close the HTTP stream at once."""
        if not text.strip():
            return
        url, query, body, headers = self.request(text, options)
        asked = AudioFormat(options.encoding, options.sample_rate, options.container)
        try:
            async with self._http().post(
                url, params=query, json=body, headers={**headers, **self.extra_headers}, proxy=proxy_for(url)
            ) as resp:
                # Everything buffered per read (fewer, larger pieces when the host is busy): the reply cuts
                # them into paced frames of audio_frame_ms (reply._AudioOut, audio_duration.take).
                chunks = resp.content.iter_any()
                if resp.status != 200:
                    raise http_error(self.name, resp.status, await resp.read(), self.secret)
                head = b""
                try:
                    async with asyncio.timeout(self.first_byte_timeout_s):
                        async for chunk in chunks:
                            head += chunk
                            if len(head) >= 44:
                                break
                except TimeoutError:
                    raise ProviderError(
                        self.name, ErrorKind.TIMEOUT, f"no audio within {self.first_byte_timeout_s:g} s", retryable=True
                    ) from None
                if not head:
                    raise ProviderError(self.name, ErrorKind.PROTOCOL, "empty audio body")
                fmt = sniff(head, asked)
                yield TtsChunk(head, fmt)
                async for chunk in chunks:
                    if chunk:
                        yield TtsChunk(chunk, fmt)
        except TRANSPORT_ERRORS as e:
            raise transport_error(self.name, e, self.secret) from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
