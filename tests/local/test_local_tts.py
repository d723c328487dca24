"""Local TTS: valid PCM of plausible length at the requested rate, streamed per clause, intelligible."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.wer import wer
from vani.adapters.base import TtsOptions
from vani.adapters.local.tts import EspeakTts, PiperTts, split_clauses

TEXT = "Sure, I can book a table for two at seven tomorrow evening. Would you like me to add a note about parking?"


async def synth(provider, text: str, rate: int):
    chunks = [c async for c in provider.synthesize(text, TtsOptions(sample_rate=rate))]
    return chunks, b"".join(c.audio for c in chunks)


def test_split_clauses():
    assert split_clauses(TEXT) == [
        "Sure, I can book a table for two at seven tomorrow evening.",
        "Would you like me to add a note about parking?",
    ]
    assert split_clauses("One. ") == ["One."]
    assert split_clauses("  ...  ") == []
    long = "When you arrive at the harbour, turn left at the old post office, and we are the blue door."
    assert len(split_clauses(long)) == 3


@pytest.mark.parametrize("cls", [PiperTts, EspeakTts])
@pytest.mark.parametrize("rate", [16000, 24000, 48000])
async def test_valid_audio_of_plausible_length(cls, rate):
    chunks, pcm = await synth(cls(None), TEXT, rate)
    assert len(chunks) > 2  # streamed in pieces, not one blob
    assert all(c.format.encoding == "linear16" and c.format.sample_rate == rate for c in chunks)
    assert all(len(c.audio) % 2 == 0 and len(c.audio) <= 2 * int(rate * 0.2) for c in chunks)
    x = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    seconds = len(x) / rate
    # 18 words: people speak ~2-4 words per second.
    assert 3.5 <= seconds <= 10.0, seconds
    rms = float(np.sqrt(np.mean(x**2)))
    assert 0.02 < rms < 0.7 and np.max(np.abs(x)) <= 1.0


@pytest.mark.parametrize("cls,max_wer", [(PiperTts, 0.15), (EspeakTts, 0.35)])
async def test_round_trip_through_whisper(cls, max_wer):
    """Intelligibility without listening: synthesise at 16 kHz, transcribe with the local Whisper."""
    from vani.adapters.local import whisper_final

    _, pcm = await synth(cls(None), TEXT, 16000)
    text, _ = whisper_final.shared(None).transcribe(np.frombuffer(pcm, "<i2").astype(np.float32) / 32768)
    assert wer(TEXT, text) <= max_wer, text


async def test_first_clause_arrives_before_the_rest_is_synthesised():
    text = "First clause here. " + "Then a much longer second sentence follows. " * 3
    gen = EspeakTts(None).synthesize(text, TtsOptions())
    first = await gen.__anext__()
    assert first.audio
    await gen.aclose()  # cancel mid-reply (barge-in)
