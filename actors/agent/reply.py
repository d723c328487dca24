"""One assistant turn's work: LLM tokens -> speakable pieces -> TTS -> paced audio frames.

``run_turn`` runs inside the turn's cancellation scope (``TurnHandle.spawn``): cancelling the turn
stops the LLM stream, a pending tool wait and the TTS request of this turn, and nothing else. Results
reach the conversation machine only as inbox events tagged with the turn id (``AUDIO_STARTED``,
``REPLY_DONE``), so a late event from a cancelled turn is recognisably stale.
"""

from __future__ import annotations

import logging
import math

from vani.actors.agent.audio_duration import Framer, framer_for
from vani.actors.agent.context import AgentContext
from vani.actors.agent.playback import Playback, SpokenPiece
from vani.actors.agent.turn import TurnHandle, TurnKind
from vani.actors.clock import Clock
from vani.actors.metrics import metric, provider_error
from vani.actors.wire import agent as ap
from vani.adapters.base import ChatMessage, LlmDone, LlmToken, LlmToolCall, ProviderError, TtsChunk

log = logging.getLogger("vani.reply")

MAX_TOOL_ROUNDS = 2


async def run_turn(ctx: AgentContext, turn: TurnHandle, messages: list[ChatMessage]) -> None:
    """Produce the whole reply of ``turn``; posts ``REPLY_DONE`` when its audio has played out."""
    speaker = turn.spawn(_speak(ctx, turn), "tts")
    try:
        try:
            if turn.kind is TurnKind.FALLBACK:
                emit_token(ctx, turn, ctx.settings.agent_fallback_reply)
            else:
                await _think(ctx, turn, messages)
            await turn.released.wait()
        except ProviderError as exc:
            provider_error("llm", exc)
            log.warning("session=%s turn %d: LLM failed: %s", ctx.session_id, turn.turn_id, exc)
            ctx.send(ap.event("error", code="llm_failed", message=str(exc), turn_id=turn.turn_id))
        rest = turn.io.chunker.flush()
        if rest:
            _piece_ready(ctx, turn, rest)
    finally:
        turn.io.pieces.put_nowait(None)  # the speaker ends after what it has
    await speaker


async def _think(ctx: AgentContext, turn: TurnHandle, messages: list[ChatMessage]) -> None:
    msgs = list(messages)
    clock, timings = ctx.clock, turn.timings
    for _ in range(MAX_TOOL_ROUNDS):
        call = None
        if timings.llm_request is None:
            timings.llm_request = clock.now()
        ctx.streams.opened()
        turn.llm_streams += 1
        stage = turn.stage("llm", **{"vani.provider": ctx.settings.llm_provider, "vani.model": ctx.settings.llm_model})
        tokens, provider_usage = 0, None
        try:
            async for ev in ctx.llm.stream(msgs, ctx.tool):
                if isinstance(ev, LlmDone):
                    provider_usage = ev.usage
                    stage.attributes["vani.retries"] = ev.retries
                    continue
                if not tokens:
                    stage.events.append(("first_token", clock.now(), {}))
                tokens += 1
                if isinstance(ev, LlmToken):
                    now = clock.now()
                    if timings.first_token is None:
                        timings.first_token = now
                        ctx.watchdog.disarm("llm_first_token")
                    if timings.first_text_token is None and ev.text:
                        timings.first_text_token = now
                    if turn.released.is_set():
                        emit_token(ctx, turn, ev.text)
                    else:
                        turn.held.append(ev.text)  # speculative: nothing leaves until EndOfTurn confirms
                elif isinstance(ev, LlmToolCall):
                    call = ev.call
                    if timings.first_token is None:
                        timings.first_token = clock.now()
                        ctx.watchdog.disarm("llm_first_token")
                    timings.first_tool_token = timings.first_tool_token or clock.now()
            stage.end = clock.now()
        except ProviderError as exc:
            stage.end, stage.error = clock.now(), str(exc)
            raise
        finally:
            ctx.streams.closed()
            turn.llm_streams -= 1
            stage.attributes.update({"vani.tokens": tokens, "vani.tool_call": call is not None})
            turn.usage.llm_stream(provider_usage, tokens, sum(len(m.content or "") for m in msgs))
        if call is None:
            return
        await turn.released.wait()  # never execute a tool speculatively
        ctx.send(ap.event("tool.call", turn_id=turn.turn_id, call_id=call.id, name=call.name, arguments=call.arguments))
        tool = turn.stage("tool", **{"vani.tool": call.name, "vani.call_id": call.id})
        result = await ctx.tools.run(call)
        tool.end = clock.now()
        turn.usage.tool_calls += 1
        metric("vani_tool_s").observe(tool.end - tool.start, tags={"tool": call.name})
        ctx.send(
            ap.event(
                "tool.result",
                turn_id=turn.turn_id,
                call_id=call.id,
                result=result,
                executions=ctx.tools.executions.get(call.id, 0),
            )
        )
        added = [ChatMessage("assistant", "", tool_calls=[call]), ChatMessage("tool", result, tool_call_id=call.id)]
        turn.added += added
        msgs += added


def emit_token(ctx: AgentContext, turn: TurnHandle, text: str) -> None:
    """One released token to the chunker, and to the client (synchronous).

    The turn's first text goes out at once; later tokens are sent together at most every
    ``assistant_text_interval_ms`` (one event, one JSON encode and one send per hop instead of one per token;
    0 = one event per token). ``flush_text`` sends what is pending: the timer, and the turn's end.
    """
    turn.text += text
    io, interval = turn.io, ctx.settings.assistant_text_interval_ms / 1000.0
    if interval <= 0 or not io.text_sent:
        io.text_sent = True
        ctx.send(ap.event("assistant.text", turn_id=turn.turn_id, text=text))
    else:
        now = ctx.clock.now()
        if io.text_due is not None and now >= io.text_due:
            # The batch closed at its deadline; its timer is late (a busy loop). Batches follow the tokens'
            # times, not the timer's: what a replay (timers on time) says too.
            flush_text(ctx, turn)
        io.text_pending += text
        if io.text_timer is None:
            io.text_due = now + interval
            io.text_timer = ctx.clock.call_later(interval, flush_text, ctx, turn)
    for piece in io.chunker.feed(text):
        _piece_ready(ctx, turn, piece)


def flush_text(ctx: AgentContext, turn: TurnHandle) -> None:
    io = turn.io
    if io.text_timer is not None:
        io.text_timer.cancel()
        io.text_timer = None
    io.text_due = None
    if io.text_pending:
        text, io.text_pending = io.text_pending, ""
        ctx.send(ap.event("assistant.text", turn_id=turn.turn_id, text=text))


def _piece_ready(ctx: AgentContext, turn: TurnHandle, piece: str) -> None:
    if turn.timings.first_piece is None:
        turn.timings.first_piece = ctx.clock.now()
    turn.io.pieces.put_nowait(piece)


async def _speak(ctx: AgentContext, turn: TurnHandle) -> None:
    out = _AudioOut(ctx, turn)
    playback, pieces = turn.playback, turn.io.pieces
    while (text := await pieces.get()) is not None:
        piece = SpokenPiece(text, start_s=playback.audio_s)
        playback.pieces.append(piece)
        ctx.checkpoint()  # what was heard grows piece by piece: a lost host's record is at most a piece behind
        turn.timings.tts_request = turn.timings.tts_request or ctx.clock.now()
        ctx.watchdog.arm("tts_stall", ctx.settings.watchdog_tts_stall_s)
        stage = turn.stage("tts", **{"vani.provider": ctx.settings.tts_provider, "vani.characters": len(text)})
        turn.usage.tts_characters += len(text)
        fallbacks = getattr(ctx.tts, "fallbacks", 0)  # adapters/tts/fallback.py counts its switches
        try:
            async for chunk in ctx.tts.synthesize(text, ctx.tts_options):
                if not stage.events:
                    now = ctx.clock.now()
                    stage.events.append(("first_byte", now, {}))
                    turn.timings.tts_first_byte = turn.timings.tts_first_byte or now
                ctx.watchdog.kick("tts_stall")
                await out.add(chunk, piece)
            await out.flush(piece)
            stage.end = ctx.clock.now()
        except ProviderError as exc:
            stage.end, stage.error = ctx.clock.now(), str(exc)
            provider_error("tts", exc)
            log.warning("session=%s turn %d: TTS failed: %s", ctx.session_id, turn.turn_id, exc)
            await out.flush(piece)  # what did arrive is still spoken
            ctx.send(ap.event("error", code="tts_failed", message=str(exc), turn_id=turn.turn_id))
        finally:
            ctx.watchdog.disarm("tts_stall")
            stage.attributes["vani.fallback_used"] = getattr(ctx.tts, "fallbacks", 0) > fallbacks
    if out.index:
        ctx.send(ap.audio_end(turn.turn_id, out.index, playback.audio_s))
        # The reply is over when the user has heard it: until then a barge-in can still cut it.
        while (left := playback.audio_s - playback.played_s()) > 0.001:  # a clock (and the pause event)
            await playback.unpaused.wait()  # a paused reply is not over
            await ctx.clock.sleep(min(left, 0.05) if playback.client_played_s is not None else left)
    turn.finish()
    ctx.post("REPLY_DONE", turn.turn_id)


class _AudioOut:
    """A turn's audio on its way out: whole codec frames (whole samples for PCM), paced by their
    duration (``actors/agent/audio_duration.py``), coalesced into frames of ``audio_frame_ms``.

    The first frame goes out at once (it is the user-perceived latency); later audio waits until a frame's
    worth has arrived (or the piece ends), which cuts per-frame work without a delay anyone hears.
    """

    def __init__(self, ctx: AgentContext, turn: TurnHandle) -> None:
        self.ctx, self.turn = ctx, turn
        self.lead = ctx.settings.playout_lead_ms / 1000.0
        self.frame_s = ctx.settings.audio_frame_ms / 1000.0
        self.cap_s = self.frame_s or math.inf  # audio_frame_ms = 0: each TTS chunk is one frame, whole
        self.index = 0
        self.framer: Framer | None = None

    async def add(self, chunk: TtsChunk, piece: SpokenPiece) -> None:
        if self.framer is None:
            await self.turn.playback.unpaused.wait()  # a reply paused while thinking starts no audio
            fmt = chunk.format
            self.turn.audio_format = _format(fmt)
            self.framer = framer_for(
                fmt.encoding, fmt.container, fmt.sample_rate, fmt.channels, self.ctx.settings.tts_bit_rate
            )
            self.ctx.send(ap.audio_start(self.turn.turn_id, self.turn.audio_format))
        framer = self.framer
        framer.feed(chunk.audio)
        # At most a frame's worth per send, each paced: a provider may hand over seconds of audio at once.
        while framer.has_frames() and (self.index == 0 or framer.ready_s() >= self.frame_s - 1e-9):
            await self._send(*framer.take(self.cap_s), piece)

    async def flush(self, piece: SpokenPiece) -> None:
        """The piece's TTS stream ended: send what is left of it, a frame's worth at a time."""
        if self.framer is not None:
            while self.framer.ready_s() > self.frame_s + 1e-9:
                await self._send(*self.framer.take(self.cap_s), piece)
            await self._send(*self.framer.rest(), piece)

    async def _send(self, data: bytes, seconds: float, piece: SpokenPiece) -> None:
        if not data:
            return
        turn, clock = self.turn, self.ctx.clock
        await pace(turn.playback, self.lead, clock)
        await self.ctx.outbound.put_audio(ap.encode_audio(turn.turn_id, self.index, data))
        self.index += 1
        if turn.playback.t0 is None:
            turn.playback.t0 = turn.timings.first_audio = clock.now()
            self.ctx.post("AUDIO_STARTED", turn.turn_id)
        turn.playback.audio_s += seconds
        piece.duration_s += seconds


async def pace(playback: Playback, lead: float, clock: Clock) -> None:
    """Stay at most ``lead`` seconds of audio ahead of real-time playback; hold while paused."""
    while True:
        await playback.unpaused.wait()
        if playback.t0 is None:
            return
        ahead = playback.audio_s - (clock.now() - playback.t0) - lead
        if ahead <= 1e-6:  # (not 0: a float residue must not become a sleep that ends where it began)
            return
        await clock.sleep(ahead)  # then look again: a pause may have started meanwhile


def _format(fmt: object) -> dict[str, object]:
    return {
        "encoding": getattr(fmt, "encoding", "linear16"),
        "sample_rate": getattr(fmt, "sample_rate", 24000),
        "channels": getattr(fmt, "channels", 1),
        "container": getattr(fmt, "container", "none"),
    }
