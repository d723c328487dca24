"""The voice pipeline of one session: Flux STT -> conversation machine -> LLM -> scheduler -> TTS.

Used for ``agent`` sessions (the voice agent) and ``flux`` sessions (transcription only, Flux's
``/v2/listen`` schema to the client). Everything that decides goes through one inbox consumed by
one task (``_decide_loop``): STT events, watchdog firings and turn progress are handled one at a time,
in arrival order, by the conversation machine (``actors/agent/machine.py``). The only awaits
in that loop wait for a cancelled turn to finish, so "cancelling" is a real, observable state and no
event is handled half-way through a cancellation.

Tasks and their owner (``aclose`` cancels all of them): the audio pump (inbound ring -> STT), the STT
reader (STT events -> inbox), the decide loop, small control tasks (Configure, ForceEndTurn,
CloseStream), and each assistant turn's own scope (``AssistantTurn``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from vani.actors import tracing
from vani.actors.agent import latency_report, speech_clock, watchdogs
from vani.actors.agent.barge_in import PauseControl
from vani.actors.agent.bounds import ContextWindow
from vani.actors.agent.interrupt import BargeInGuard
from vani.actors.agent.machine import ASSISTANT, REPLY, ConversationMachine
from vani.actors.agent.reply import emit_token, run_turn
from vani.actors.agent.tools import ToolExecutor, tool_spec
from vani.actors.agent.turn import AssistantTurn
from vani.actors.agent.watchdog import Watchdog
from vani.actors.fsm import InvalidEvent
from vani.actors.wire import agent as ap
from vani.adapters.base import ChatMessage, ProviderError, TurnEvent, TurnEventType
from vani.cluster.config import Settings

if TYPE_CHECKING:
    from vani.actors.session.session import Session

log = logging.getLogger("vani.pipeline")

BYTES_PER_S = 32000  # inbound audio: 16 kHz mono PCM16
STT_EVENT = {
    TurnEventType.START_OF_TURN: "TURN_START",
    TurnEventType.UPDATE: "TRANSCRIPT_PARTIAL",
    TurnEventType.EAGER_END_OF_TURN: "EAGER_EOT",
    TurnEventType.TURN_RESUMED: "TURN_RESUMED",
    TurnEventType.END_OF_TURN: "TRANSCRIPT_FINAL",
}


class Pipeline:
    def __init__(self, session: Session, settings: Settings, mode: str) -> None:
        from vani.adapters.factory import make_llm, make_stt, make_tts, stt_options, tts_options

        self.session = session
        self.session_id = session.session_id
        self.settings = settings
        self.mode = mode  # "agent" | "flux"
        self.outbound = session.outbound
        self.conv_state = "idle"  # owned by the machine
        self.machine = ConversationMachine(self, self.session_id)
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.watchdog = Watchdog(lambda name: self.post("WATCHDOG", name))
        self.guard = BargeInGuard(settings.barge_in_min_ms, settings.barge_in_min_words)
        self.barge = PauseControl(self)
        self.tools = ToolExecutor()
        self.tool = tool_spec(settings.agent_tool, settings.llm_provider) if mode == "agent" else None
        self.stt_provider = make_stt(settings)
        self.stt_options = stt_options(settings)
        self.llm = make_llm(settings) if mode == "agent" else None
        self.tts = make_tts(settings) if mode == "agent" else None
        self.tts_options = tts_options(settings)
        header = settings.provider_session_header
        for provider in (self.stt_provider, self.llm, self.tts):
            if header and isinstance(getattr(provider, "extra_headers", None), dict):
                provider.extra_headers = {**provider.extra_headers, header: self.session_id}
        if hasattr(self.stt_provider, "keepalive_s"):
            self.stt_provider.keepalive_s = settings.stt_keepalive_s
        self.stt: Any = None
        # Conversation data (not state: the state is ``conv_state``).
        self.history = ContextWindow(settings.llm_context_max_turns, settings.llm_context_max_chars)
        self.transcripts: deque[dict[str, Any]] = deque(maxlen=settings.transcript_history_turns or None)
        self.turn: AssistantTurn | None = None
        self.turn_io: dict[int, Any] = {}
        self.next_turn_id = 1
        self.user_turn_open = False
        self.llm_streams = 0
        self.llm_streams_max = 0
        self.stats = {"turns": 0, "interrupted": 0, "backchannels": 0, "eager_started": 0, "eager_discarded": 0}
        self.request_id = str(uuid.uuid4())
        self.seq = 0
        self._audio_clock: deque[tuple[int, float]] = deque(maxlen=4096)  # (stream byte end, arrival)
        self._audio_bytes = 0
        self._discarded: AssistantTurn | None = None
        self._close_requested = False  # client sent CloseStream (a request, not a conversation state)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._span = tracing.tracer().start_span("session", attributes={"session_id": self.session_id, "mode": mode})
        self._spawn(self._run(), "pipeline")

    # ------------------------------------------------------------------ plumbing
    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{name}:{self.session_id}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session=%s %s crashed: %r", self.session_id, task.get_name(), task.exception())
            self.session.fail_internal(f"internal error in {task.get_name().split(':')[0]}")

    def post(self, kind: str, data: Any = None) -> None:
        self.inbox.put_nowait((kind, data))

    def send(self, msg: str) -> None:
        """A JSON event to the client, on the priority lane (never behind audio)."""
        self.outbound.put_control(msg)

    def send_flux(self, body: dict[str, Any]) -> None:
        msg = {"type": body.pop("type"), "request_id": self.request_id, "sequence_id": self.seq, **body}
        self.seq += 1
        self.send(ap.dumps(msg))

    @property
    def client_types(self) -> frozenset[str]:
        return ap.FLUX_CLIENT_TYPES if self.flux else ap.AGENT_CLIENT_TYPES

    @property
    def flux(self) -> bool:
        return self.mode == "flux"

    def connected_message(self, resume_token: str, resumed: bool) -> dict[str, Any]:
        """Flux's ``Connected`` (first message on WS /v2/flux), plus vani's resume fields."""
        msg = {"type": "Connected", "request_id": self.request_id, "sequence_id": self.seq}
        self.seq += 1
        msg.update(session_id=self.session_id, resume_token=resume_token, resumed=resumed)
        if resumed:
            msg["history"] = list(self.transcripts)
        return msg

    # ------------------------------------------------------------------ tasks
    async def _run(self) -> None:
        try:
            self.stt = await self.stt_provider.open(self.session_id, self.stt_options)
        except ProviderError as exc:
            self._provider_failed(exc)
            return
        self._spawn(self._pump_audio(), "stt-audio")
        self._spawn(self._read_stt(), "stt-events")
        await self._decide_loop()

    async def _pump_audio(self) -> None:
        """Inbound ring -> STT. A slow STT fills the ring and the session stops reading its link."""
        ring, ready = self.session.ring, self.session.frames_ready
        while True:
            meta = ring.peek()
            if meta is None:
                if self._close_requested:
                    # CloseStream after the audio before it (Flux handles messages in order); the
                    # reader forwards the last Updates, then posts stt_closed.
                    await self.stt.close()
                    return
                ready.clear()
                await ready.wait()
                continue
            meta, pcm = ring.pop()
            self.session.space_freed()
            self._audio_bytes += len(pcm)
            self._audio_clock.append((self._audio_bytes, meta.arrived))
            if self.conv_state == "idle":
                self.post("AUDIO_FRAME")
            self.watchdog.kick("turn_no_audio")
            try:
                await self.stt.send_audio(pcm)
            except ProviderError as exc:
                self._provider_failed(exc)
                return

    async def _read_stt(self) -> None:
        try:
            async for ev in self.stt.events():
                self.post("stt", (ev, time.monotonic()))
        except ProviderError as exc:
            self._provider_failed(exc)
            return
        self.post("stt_closed")

    def _provider_failed(self, exc: ProviderError) -> None:
        log.warning("session=%s provider failed: %s", self.session_id, exc)
        if self.flux:
            self.send_flux({"type": "Error", "code": f"PROVIDER_{exc.kind.value.upper()}", "description": str(exc)})
        self.session.fail_internal(f"speech recognition failed: {exc}")

    async def _decide_loop(self) -> None:
        while True:
            kind, data = await self.inbox.get()
            try:
                if kind == "stt":
                    await self._on_stt(*data)
                elif kind == "WATCHDOG":
                    await self._on_watchdog(data)
                elif kind == "stt_closed":
                    self.session.close_normal("CloseStream: stream finished")
                    return
                elif kind == "AUDIO_FRAME":
                    if self.conv_state == "idle":
                        self.machine.fire("AUDIO_FRAME")
                elif self.turn is not None and data == self.turn.turn_id and self.machine.can(kind):
                    self.machine.fire(kind, data)  # AUDIO_STARTED / REPLY_DONE of the current turn
                else:
                    log.debug("session=%s stale %s(%s) in %s", self.session_id, kind, data, self.conv_state)
            except InvalidEvent as exc:
                log.warning("session=%s conversation: %s", self.session_id, exc)

    # ------------------------------------------------------------------ STT events
    async def _on_stt(self, ev: TurnEvent, arrived: float) -> None:
        self.send_flux(ev.to_flux())  # agent clients see the transcripts too
        t = ev.event
        state = self.conv_state
        if state in REPLY:  # user speech during a reply: pause first, decide after
            await self.barge.on_speech(ev, arrived)
        elif t is TurnEventType.START_OF_TURN:
            self.user_turn_open = True
            self.machine.fire("TURN_START", ev)
        elif t is TurnEventType.END_OF_TURN:
            self.user_turn_open = False
            self.machine.fire("TRANSCRIPT_FINAL", ev, arrived)
        elif not self.user_turn_open:
            return  # an Update outside any turn: nothing to decide
        else:
            self.machine.fire(STT_EVENT[t], ev)
            if t is TurnEventType.TURN_RESUMED and state == "speculating":
                await self._reap_discarded()

    async def _barge_in(self, ev: TurnEvent, arrived: float) -> None:
        turn = self.turn
        assert turn is not None
        turn.timings.interrupt_event = turn.timings.interrupt_event or arrived  # speech start, when paused
        self.machine.fire("BARGE_IN", ev)
        self.machine.fire("CANCEL")
        await watchdogs.wait_cancelled(self, turn)
        self._end_turn(turn)
        self.guard.reset()
        self.machine.fire("CANCELLED")

    async def _reap_discarded(self) -> None:
        turn = self._discarded
        if turn is not None:
            await turn.wait_cancelled()
            self._discarded = None

    async def _on_watchdog(self, name: str) -> None:
        await watchdogs.handle(self, name)

    # ------------------------------------------------------------------ machine: conditions
    def is_agent(self, *_: Any) -> bool:
        return self.mode == "agent"

    def wants_reply(self, ev: TurnEvent | None = None, *_: Any) -> bool:
        return self.mode == "agent" and ev is not None and bool(ev.transcript.strip())

    def is_current(self, turn_id: int | None = None, *_: Any) -> bool:
        return self.turn is not None and turn_id == self.turn.turn_id

    def user_turn_is_open(self, *_: Any) -> bool:
        return self.user_turn_open

    def has_audio(self, *_: Any) -> bool:
        return self.turn is not None and self.turn.playback_t0 is not None

    # ``paused`` (actors/agent/barge_in.py)
    def pause_output(self, *args: Any) -> None:
        self.barge.pause_output(*args)

    def resume_output(self, *args: Any) -> None:
        self.barge.resume_output(*args)

    def pause_timed_out(self, *args: Any) -> None:
        self.barge.pause_timed_out(*args)

    def on_exit_paused(self, *args: Any) -> None:
        self.barge.on_exit_paused(*args)

    # ------------------------------------------------------------------ machine: actions (never await)
    def record_user_turn(self, ev: TurnEvent, arrived: float | None = None, *_: Any) -> None:
        self.transcripts.append({"turn_index": ev.turn_index, "transcript": ev.transcript})
        if self.mode == "agent" and ev.transcript.strip():
            self.history.append(ChatMessage("user", ev.transcript))

    def start_reply(self, ev: TurnEvent, arrived: float | None = None, *_: Any) -> None:
        self.record_user_turn(ev)
        turn = self._start_turn(ev.transcript)
        self._stamp_eot(turn, ev, arrived)

    def start_speculation(self, ev: TurnEvent, *_: Any) -> None:
        self.stats["eager_started"] += 1
        self._start_turn(ev.transcript, speculative=True)

    def discard_speculation(self, *_: Any) -> None:
        turn = self.turn
        assert turn is not None
        self.stats["eager_discarded"] += 1
        turn.outcome = "discarded"
        turn.cancel()
        self.turn_io.pop(turn.turn_id, None)
        self._discarded = turn
        self.turn = None

    def confirm_speculation(self, ev: TurnEvent, arrived: float | None = None, *_: Any) -> None:
        turn = self.turn
        assert turn is not None
        self.record_user_turn(ev)
        self._stamp_eot(turn, ev, arrived)
        held, turn.held = turn.held, []
        turn.released.set()
        for tok in held:  # release what the speculative LLM already produced, in order
            emit_token(self, turn, tok)

    def stop_output(self, *_: Any) -> None:
        """Barge-in: drop queued audio now and tell the client to flush its playback buffer."""
        turn = self.turn
        assert turn is not None
        turn.outcome = "interrupted"
        turn.played_at_interrupt = turn.played_s()
        self.stats["interrupted"] += 1
        self.outbound.clear_audio()
        self.send(ap.audio_clear(turn.turn_id, "barge_in"))

    def cancel_turn(self, *_: Any) -> None:
        assert self.turn is not None
        self.turn.cancel()

    def watchdog_fired(self, name: str, *_: Any) -> None:
        watchdogs.fired(self, name)

    def finish_reply(self, *_: Any) -> None:
        assert self.turn is not None
        self._end_turn(self.turn)

    def on_conversation_change(self, source: str, dest: str, event: str) -> None:
        if not self.flux:  # Flux clients get only Flux's schema
            self.send(ap.event("conversation", **{"from": source, "to": dest, "event": event, "turn_id": self.turn_id}))
        watchdogs.on_change(self, source, dest)
        if dest not in ASSISTANT:
            self.guard.reset()

    # ------------------------------------------------------------------ turns
    @property
    def turn_id(self) -> int | None:
        return None if self.turn is None else self.turn.turn_id

    def _start_turn(self, user_text: str, speculative: bool = False, kind: str = "reply") -> AssistantTurn:
        assert self.llm_streams == 0 or self.turn is None or self.turn.outcome != "pending", "one LLM stream"
        turn = AssistantTurn(self.next_turn_id, user_text, speculative=speculative, kind=kind)
        self.next_turn_id += 1
        self.turn = turn
        self.stats["turns"] += 1
        messages = [ChatMessage("system", self.settings.agent_system_prompt), *self._context()]
        if speculative:
            messages.append(ChatMessage("user", user_text))
        turn.span = tracing.tracer().start_span(
            "assistant_turn", attributes={"session_id": self.session_id, "turn_id": turn.turn_id, "kind": kind}
        )
        turn.spawn(run_turn(self, turn, messages), "reply")
        return turn

    def _context(self) -> list[ChatMessage]:
        return [m for m in self.history if m.content or m.tool_calls or m.role == "tool"]

    def _stamp_eot(self, turn: AssistantTurn, ev: TurnEvent, arrived: float | None) -> None:
        turn.timings.end_of_turn = arrived or time.monotonic()
        end_s = ev.words[-1].end if ev.words and ev.words[-1].end is not None else ev.audio_window_end
        turn.timings.user_end_of_speech = self._arrival_of(end_s) or turn.timings.end_of_turn

    def _arrival_of(self, audio_s: float) -> float | None:
        """When the user's real-time audio reached stream time ``audio_s`` (actors/agent/speech_clock.py)."""
        return speech_clock.moment_of(self._audio_clock, audio_s, BYTES_PER_S)

    def _end_turn(self, turn: AssistantTurn) -> None:
        """History, client summary and LatencyReport for a finished or interrupted turn."""
        self.turn_io.pop(turn.turn_id, None)
        interrupted = turn.outcome in ("interrupted", "watchdog")
        heard = turn.heard_text(turn.played_at_interrupt) if interrupted else turn.text
        self.history += turn.added
        if heard or interrupted:
            content = f"{heard} [interrupted]".strip() if interrupted else heard
            self.history.append(ChatMessage("assistant", content))
        last_sent = self.session.last_audio_sent.get(turn.turn_id)
        turn.timings.interrupt_stopped = self.barge.stopped_at(turn, last_sent)
        self.send(
            ap.event(
                "assistant.message",
                turn_id=turn.turn_id,
                text=heard,
                full_text=turn.text,
                interrupted=interrupted,
                outcome=turn.outcome,
            )
        )
        report = latency_report.build(turn)
        self.send(ap.dumps(report))
        latency_report.record(report)
        turn.span.set_attribute("outcome", turn.outcome)
        turn.span.end()

    async def _force_end_turn(self) -> None:
        with contextlib.suppress(ProviderError):
            await self.stt.force_end_turn()

    # ------------------------------------------------------------------ client control
    def on_resume(self) -> None:
        """A resumed connection (its client and its gateway gate) never saw the playing turn's
        ``audio.start``: announce it again, on the control lane, ahead of the turn's queued audio."""
        turn = self.turn
        if not self.flux and turn is not None and turn.outcome == "pending" and turn.audio_format is not None:
            self.send(ap.audio_start(turn.turn_id, turn.audio_format))
        self.barge.reannounce()

    def on_client(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "playback" and self.turn is not None and msg.get("turn_id") == self.turn.turn_id:
            self.turn.client_played_s = float(msg.get("played_ms", 0)) / 1000.0
        elif kind == "Configure":
            self._spawn(self._configure(msg), "configure")
        elif kind == "ForceEndTurn":
            self._spawn(self._force_end_turn_flux(), "force-end")
        elif kind == "CloseStream":
            self._close_stream()

    async def _configure(self, msg: dict[str, Any]) -> None:
        th = msg.get("thresholds") or {}
        try:
            await self.stt.configure(
                eot_threshold=th.get("eot_threshold"),
                eager_eot_threshold=th.get("eager_eot_threshold"),
                eot_timeout_ms=th.get("eot_timeout_ms"),
                keyterms=msg.get("keyterms"),
            )
        except ProviderError as exc:
            self.send_flux({"type": "ConfigureFailure", "code": exc.kind.value, "description": exc.message})
            return
        o = self.stt.opts
        thresholds = {"eot_threshold": o.eot_threshold, "eot_timeout_ms": o.eot_timeout_ms}
        if o.eager_eot_threshold is not None:
            thresholds["eager_eot_threshold"] = o.eager_eot_threshold
        self.send_flux({"type": "ConfigureSuccess", "thresholds": thresholds, "keyterms": list(o.keyterms)})

    async def _force_end_turn_flux(self) -> None:
        if not self.user_turn_open:
            self.send_flux(
                {
                    "type": "Warning",
                    "code": "FORCE_END_TURN_NO_ACTIVE_TURN",
                    "description": "ForceEndTurn received with no active turn",
                }
            )
            return
        await self._force_end_turn()

    def _close_stream(self) -> None:
        self._close_requested = True
        self.session.frames_ready.set()  # wake the audio pump: it closes STT once the ring is empty

    # ------------------------------------------------------------------ views and teardown
    def snapshot(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "conversation": self.conv_state,
            "turn_id": self.turn_id,
            "history": [{"role": m.role, "content": m.content} for m in self.history],
            "transcripts": len(self.transcripts),
            "llm_streams_max": self.llm_streams_max,
            "tool_executions": dict(self.tools.executions),
            "tool_results": len(self.tools),
            "stats": dict(self.stats),
            "watchdogs_fired": list(self.watchdog.fired),
        }

    async def aclose(self) -> None:
        """Cancel every task this pipeline owns and close the providers."""
        self.watchdog.disarm_all()
        if self.turn is not None:
            self.turn.cancel()
        self.tools.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.stt is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.stt.close(), 2.0)
        for provider in (self.llm, self.tts):
            closer = getattr(provider, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
        self._span.end()
