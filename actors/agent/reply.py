"""One assistant turn's work: LLM tokens -> speakable pieces -> TTS -> paced audio frames.

``run_turn`` runs inside the turn's cancellation scope (``AssistantTurn.spawn``): cancelling the turn
stops the LLM stream, a pending tool wait and the TTS request of this turn, and nothing else. Results
reach the conversation machine only as inbox events tagged with the turn id (``AUDIO_STARTED``,
``REPLY_DONE``), so a late event from a cancelled turn is recognisably stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from vani.actors.agent.audio_duration import Framer, framer_for
from vani.actors.agent.chunker import SpeakableChunker
from vani.actors.agent.turn import AssistantTurn, SpokenPiece
from vani.actors.wire import agent as ap
from vani.adapters.base import ChatMessage, LlmToken, LlmToolCall, ProviderError, TtsChunk

if TYPE_CHECKING:
    from vani.actors.agent.pipeline import Pipeline

log = logging.getLogger("vani.reply")

MAX_TOOL_ROUNDS = 2


async def run_turn(p: Pipeline, turn: AssistantTurn, messages: list[ChatMessage]) -> None:
    """Produce the whole reply of ``turn``; posts ``REPLY_DONE`` when its audio has played out."""
    pieces: asyncio.Queue[str | None] = asyncio.Queue()
    chunker = SpeakableChunker(p.settings.scheduler_first_words, p.settings.scheduler_max_words)
    p.turn_io[turn.turn_id] = (chunker, pieces)
    speaker = turn.spawn(_speak(p, turn, pieces), "tts")
    try:
        if turn.kind == "fallback":
            emit_token(p, turn, p.settings.agent_fallback_reply)
        else:
            await _think(p, turn, messages)
        await turn.released.wait()
        rest = chunker.flush()
        if rest:
            _piece_ready(turn, pieces, rest)
    except ProviderError as exc:
        log.warning("session=%s turn %d: LLM failed: %s", p.session_id, turn.turn_id, exc)
        p.send(ap.event("error", code="llm_failed", message=str(exc), turn_id=turn.turn_id))
        rest = chunker.flush()
        if rest:
            _piece_ready(turn, pieces, rest)
    finally:
        pieces.put_nowait(None)
    await speaker


async def _think(p: Pipeline, turn: AssistantTurn, messages: list[ChatMessage]) -> None:
    msgs = list(messages)
    for _ in range(MAX_TOOL_ROUNDS):
        call = None
        if turn.timings.llm_request is None:
            turn.timings.llm_request = time.monotonic()
        p.llm_streams += 1
        p.llm_streams_max = max(p.llm_streams_max, p.llm_streams)
        try:
            async for ev in p.llm.stream(msgs, p.tool):
                if isinstance(ev, LlmToken):
                    now = time.monotonic()
                    if turn.timings.first_token is None:
                        turn.timings.first_token = now
                        p.watchdog.disarm("llm_first_token")
                    if turn.timings.first_text_token is None and ev.text:
                        turn.timings.first_text_token = now
                    if turn.released.is_set():
                        emit_token(p, turn, ev.text)
                    else:
                        turn.held.append(ev.text)  # speculative: nothing leaves until EndOfTurn confirms
                elif isinstance(ev, LlmToolCall):
                    call = ev.call
                    if turn.timings.first_token is None:
                        turn.timings.first_token = time.monotonic()
                        p.watchdog.disarm("llm_first_token")
                    turn.timings.first_tool_token = turn.timings.first_tool_token or time.monotonic()
        finally:
            p.llm_streams -= 1
        if call is None:
            return
        await turn.released.wait()  # never execute a tool speculatively
        p.send(ap.event("tool.call", turn_id=turn.turn_id, call_id=call.id, name=call.name, arguments=call.arguments))
        result = await p.tools.run(call)
        p.send(
            ap.event(
                "tool.result",
                turn_id=turn.turn_id,
                call_id=call.id,
                result=result,
                executions=p.tools.executions.get(call.id, 0),
            )
        )
        added = [ChatMessage("assistant", "", tool_calls=[call]), ChatMessage("tool", result, tool_call_id=call.id)]
        turn.added += added
        msgs += added


def emit_token(p: Pipeline, turn: AssistantTurn, text: str) -> None:
    """Send one released token to the client and to the scheduler (synchronous)."""
    chunker, pieces = p.turn_io[turn.turn_id]
    turn.text += text
    p.send(ap.event("assistant.text", turn_id=turn.turn_id, text=text))
    for piece in chunker.feed(text):
        _piece_ready(turn, pieces, piece)


def _piece_ready(turn: AssistantTurn, pieces: asyncio.Queue[str | None], piece: str) -> None:
    if turn.timings.first_piece is None:
        turn.timings.first_piece = time.monotonic()
    pieces.put_nowait(piece)


async def _speak(p: Pipeline, turn: AssistantTurn, pieces: asyncio.Queue[str | None]) -> None:
    out = _AudioOut(p, turn)
    while (text := await pieces.get()) is not None:
        piece = SpokenPiece(text, start_s=turn.audio_s)
        turn.pieces.append(piece)
        turn.timings.tts_request = turn.timings.tts_request or time.monotonic()
        p.watchdog.arm("tts_stall", p.settings.watchdog_tts_stall_s)
        try:
            async for chunk in p.tts.synthesize(text, p.tts_options):
                p.watchdog.kick("tts_stall")
                await out.add(chunk, piece)
            await out.flush(piece)
        except ProviderError as exc:
            log.warning("session=%s turn %d: TTS failed: %s", p.session_id, turn.turn_id, exc)
            await out.flush(piece)  # what did arrive is still spoken
            p.send(ap.event("error", code="tts_failed", message=str(exc), turn_id=turn.turn_id))
        finally:
            p.watchdog.disarm("tts_stall")
    if out.index:
        p.send(ap.audio_end(turn.turn_id, out.index, turn.audio_s))
        # The reply is over when the user has heard it: until then a barge-in can still cut it.
        while (left := turn.audio_s - turn.played_s()) > 0.001:  # a clock (and the pause event)
            await turn.unpaused.wait()  # a paused reply is not over
            await asyncio.sleep(min(left, 0.05) if turn.client_played_s is not None else left)
    turn.outcome = "done"
    p.post("REPLY_DONE", turn.turn_id)


class _AudioOut:
    """A turn's audio on its way out: whole codec frames (whole samples for PCM), paced by their
    duration (``actors/agent/audio_duration.py``), coalesced into frames of ``audio_frame_ms``.

    The first frame goes out at once (it is the user-perceived latency); later audio waits until a frame's
    worth has arrived (or the piece ends), which cuts per-frame work without a delay anyone hears.
    """

    def __init__(self, p: Pipeline, turn: AssistantTurn) -> None:
        self.p, self.turn = p, turn
        self.lead = p.settings.playout_lead_ms / 1000.0
        self.frame_s = p.settings.audio_frame_ms / 1000.0
        self.index = 0
        self.format: dict[str, object] | None = None  # announced in audio.start with the first chunk
        self.framer: Framer | None = None

    async def add(self, chunk: TtsChunk, piece: SpokenPiece) -> None:
        if self.framer is None:
            await self.turn.unpaused.wait()  # a reply paused while thinking starts no audio
            fmt = chunk.format
            self.format = self.turn.audio_format = _format(fmt)
            self.framer = framer_for(
                fmt.encoding, fmt.container, fmt.sample_rate, fmt.channels, self.p.settings.tts_bit_rate
            )
            self.p.send(ap.audio_start(self.turn.turn_id, self.format))
        self.framer.feed(chunk.audio)
        if self.framer.has_frames() and (self.index == 0 or self.framer.ready_s() >= self.frame_s - 1e-9):
            await self._send(*self.framer.take(), piece)

    async def flush(self, piece: SpokenPiece) -> None:
        """The piece's TTS stream ended: send what is left of it."""
        if self.framer is not None:
            await self._send(*self.framer.rest(), piece)

    async def _send(self, data: bytes, seconds: float, piece: SpokenPiece) -> None:
        if not data:
            return
        turn = self.turn
        await _pace(turn, self.lead)
        await self.p.outbound.put_audio(ap.encode_audio(turn.turn_id, self.index, data))
        self.index += 1
        if turn.playback_t0 is None:
            turn.playback_t0 = turn.timings.first_audio = time.monotonic()
            self.p.post("AUDIO_STARTED", turn.turn_id)
        turn.audio_s += seconds
        piece.duration_s += seconds


async def _pace(turn: AssistantTurn, lead: float) -> None:
    """Stay at most ``lead`` seconds of audio ahead of real-time playback; hold while paused."""
    while True:
        await turn.unpaused.wait()
        if turn.playback_t0 is None:
            return
        ahead = turn.audio_s - (time.monotonic() - turn.playback_t0) - lead
        if ahead <= 0:
            return
        await asyncio.sleep(ahead)  # then look again: a pause may have started meanwhile


def _format(fmt: object) -> dict[str, object]:
    return {
        "encoding": getattr(fmt, "encoding", "linear16"),
        "sample_rate": getattr(fmt, "sample_rate", 24000),
        "channels": getattr(fmt, "channels", 1),
        "container": getattr(fmt, "container", "none"),
    }
