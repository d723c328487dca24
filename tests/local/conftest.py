"""Fixtures for the embedded-model tests: real recordings from tests/data, models loaded once."""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path

import pytest

from vani.adapters.base import SttOptions, TurnEvent

DATA = Path(__file__).resolve().parent.parent / "data"
TRANSCRIPTS: dict[str, str] = json.loads((DATA / "transcripts.json").read_text())


def read_wav(name: str) -> bytes:
    with wave.open(str(DATA / name)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        return w.readframes(w.getnframes())


def silence(seconds: float, rate: int = 16000) -> bytes:
    return bytes(2 * int(seconds * rate))


async def run_stream(stt, pcm: bytes, options: SttOptions, *, chunk: int = 2560, before_close=None, pace: float = 0):
    """Feed ``pcm`` in 80 ms chunks (as fast as the stream takes it, or at most ``pace`` x real time), close,
    return all events."""
    stream = await stt.open("test", options)
    events: list[TurnEvent] = []

    async def read() -> None:
        async for ev in stream.events():
            events.append(ev)

    reader = asyncio.create_task(read())
    try:
        t0 = asyncio.get_running_loop().time()
        for i in range(0, len(pcm), chunk):
            await stream.send_audio(pcm[i : i + chunk])
            if pace:
                await asyncio.sleep(max(0.0, t0 + (i + chunk) / 32000 / pace - asyncio.get_running_loop().time()))
        if before_close is not None:
            await before_close(stream, events)
        await stream.close()
        await asyncio.wait_for(reader, 120)
    finally:
        reader.cancel()
    return events


@pytest.fixture(scope="session")
async def local_stt():
    from vani.adapters.local.stt import LocalStt

    stt = LocalStt(None)
    await stt.warm_up()
    return stt
