"""``vani talk --wav FILE``: stream a WAV to a session in real time and save what comes back.

The WAV must be 16 kHz mono 16-bit PCM (what the service takes); anything else is refused with a
clear message rather than resampled behind the user's back.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
import wave
from pathlib import Path

from vani.client.session_client import AgentPlayback, SessionRefused, VaniSession

RATE = 16000


def read_pcm16(path: str) -> bytes:
    with wave.open(path, "rb") as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            raise ValueError(
                f"{path}: need 16 kHz mono 16-bit PCM, got {w.getframerate()} Hz, "
                f"{w.getnchannels()} channel(s), {8 * w.getsampwidth()}-bit"
            )
        return w.readframes(w.getnframes())


def write_pcm16(path: str, pcm: bytes, rate: int = RATE) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


async def talk(url: str, pcm: bytes, *, session_id: str, frame_ms: int, tail_s: float, token: str | None) -> dict:
    """Send ``pcm`` paced at real time; collect audio and events until ``tail_s`` after the last frame."""
    frame_bytes = RATE * 2 * frame_ms // 1000
    session = await VaniSession.connect(url, session_id, token=token)
    received: list[bytes] = []
    events: list[dict] = []
    # Echo sessions send raw PCM; agent sessions announce each turn's audio with `audio.start` (format and
    # an 8-byte turn header on every frame), may pause it while user speech is judged (`audio.pause` /
    # `audio.resume`: held frames are released in order) and may clear it on barge-in (`audio.clear`).
    playback = AgentPlayback(rate=RATE)

    async def reader() -> None:
        async for item in session:
            if isinstance(item, bytes):
                received.extend(playback.on_frame(item))
                continue
            events.append(item)
            received.extend(playback.on_event(item))

    read_task = asyncio.create_task(reader())
    start = time.monotonic()
    for i, offset in enumerate(range(0, len(pcm), frame_bytes)):
        await session.send_audio(pcm[offset : offset + frame_bytes])
        await asyncio.sleep(max(0.0, start + (i + 1) * frame_ms / 1000 - time.monotonic()))
    await asyncio.sleep(tail_s)
    await session.close()
    try:
        await asyncio.wait_for(read_task, 5)
    except TimeoutError:
        read_task.cancel()
    return {
        "audio": b"".join(received),
        "rate": playback.rate,
        "events": events,
        "started": session.started,
        "playback": dict(playback.counts),
    }


def cmd_talk(args: argparse.Namespace) -> int:
    try:
        pcm = read_pcm16(args.wav)
    except (OSError, ValueError, EOFError) as exc:
        print(f"vani talk: {exc}")
        return 2
    out = args.out or str(Path(args.wav).with_suffix(".reply.wav"))
    session_id = args.session or f"talk-{uuid.uuid4().hex[:8]}"
    try:
        result = asyncio.run(
            talk(args.url, pcm, session_id=session_id, frame_ms=args.frame_ms, tail_s=args.tail_s, token=args.token)
        )
    except SessionRefused as exc:
        print(f"vani talk: {exc}")
        return 1
    except OSError as exc:
        print(f"vani talk: cannot connect to {args.url}: {exc}")
        return 1
    write_pcm16(out, result["audio"], result["rate"])
    kinds: dict[str, int] = {}
    for e in result["events"]:
        kinds[e.get("type", "?")] = kinds.get(e.get("type", "?"), 0) + 1
    print(
        f"session {session_id}: sent {len(pcm) / (2 * RATE):.2f} s, "
        f"received {len(result['audio']) / (2 * result['rate']):.2f} s of audio -> {out}"
    )
    print("events: " + ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())))
    print("playback: " + ", ".join(f"{k} {v}" for k, v in result["playback"].items()))
    return 0
