"""The voice-agent engine: STT with turn detection -> conversation machine -> LLM -> chunker -> TTS.

It plugs into a session (``actors/session/engine.py``) and owns its wire formatting: vani's agent events, the
turn-tagged audio frames (``actors/wire/agent.py``), and the user's transcripts in Flux's ``TurnInfo``
schema. Its parts: the STT link (``listener.py``), the conversation (``conversation.py``: the machine's model
and data), the decide step (``decide.py``), the turns (``turns.py``, ``turn.py``, ``reply.py``), barge-in
(``barge_in.py`` + ``barge_in_policy.py``) and the watchdogs (``watchdogs.py``). Providers come built from
``adapters/factory.py``; time from the session's clock.
"""

from __future__ import annotations

from typing import Any

from vani.actors.agent import decide, durable
from vani.actors.agent.context import AgentContext, LlmStreams
from vani.actors.agent.conversation import Conversation
from vani.actors.agent.listening import ListeningEngine
from vani.actors.agent.tools import ToolExecutor, tool_entry, tool_spec
from vani.actors.agent.turn_trace import UserTurnSpans
from vani.actors.agent.watchdog import Watchdog
from vani.actors.session.engine import SessionIO
from vani.actors.session.event_log import TOOL
from vani.actors.wire import agent as wire
from vani.adapters.factory import Providers
from vani.cluster.config import Settings


class AgentEngine(ListeningEngine):
    mode = "agent"
    client_types = wire.AGENT_CLIENT_TYPES
    vani_schema = True

    def __init__(self, io: SessionIO, settings: Settings, providers: Providers) -> None:
        super().__init__(io, settings, providers)
        assert providers.llm is not None and providers.tts is not None, "an agent needs an LLM and a TTS"
        self.watchdog = Watchdog(lambda name: self.post("WATCHDOG", name), io.clock)
        self.ctx = AgentContext(
            session_id=self.session_id,
            settings=settings,
            clock=io.clock,
            outbound=io.outbound,
            post=self.post,
            spawn=self.spawn,
            listener=self.listener,
            llm=providers.llm,
            tts=providers.tts,
            tts_options=providers.tts_options,
            tool=tool_spec(settings.agent_tool, settings.llm_provider),
            tools=ToolExecutor(on_result=lambda call, result: io.events.add(TOOL, tool_entry(call, result))),
            watchdog=self.watchdog,
            streams=LlmStreams(),
            checkpoint=io.checkpoint,
            trace=io.trace,
        )
        self.user_turns = UserTurnSpans(io.trace, settings.stt_provider)
        self.conv = Conversation(self.ctx, self.transcripts)
        self.start()

    def on_audio(self) -> None:
        if self.conv.conv_state == "idle":
            self.post("AUDIO_FRAME")
        self.watchdog.kick("turn_no_audio")

    async def decide(self, kind: str, data: Any) -> None:
        if kind == "stt":
            self.flux.send(data[0].to_flux())  # agent clients see the transcripts too
            self.user_turns.on_stt(*data)
        await decide.step(self.conv, kind, data)

    # ------------------------------------------------------------------ Engine protocol
    def greeting(self, started: dict[str, Any], resumed: bool) -> dict[str, Any]:
        return {**started, "mode": self.mode, "conversation": self.conv.conv_state}

    def on_client(self, msg: dict[str, Any]) -> None:
        turn = self.conv.turn
        if msg.get("type") == "playback" and turn is not None and msg.get("turn_id") == turn.turn_id:
            turn.playback.client_played_s = float(msg.get("played_ms", 0)) / 1000.0

    def on_resume(self) -> None:
        """A resumed connection (its client and its gateway gate) never saw the playing turn's
        ``audio.start``: announce it again, on the control lane, ahead of the turn's queued audio."""
        turn = self.conv.turn
        if turn is not None and not turn.done and turn.audio_format is not None:
            self.send(wire.audio_start(turn.turn_id, turn.audio_format))
        self.conv.pause.reannounce(self.conv.conv_state, turn)

    def on_frame_sent(self, frame: bytes) -> None:
        turn_id, _ = wire.AUDIO_HEADER.unpack_from(frame)
        self.conv.turns.last_audio_sent[turn_id] = self.io.clock.now()

    def snapshot(self) -> dict[str, Any]:
        conv, tools = self.conv, self.ctx.tools
        return {
            **super().snapshot(),
            "conversation": conv.conv_state,
            "turn_id": None if conv.turn is None else conv.turn.turn_id,
            "history": [{"role": m.role, "content": m.content} for m in conv.history],
            "llm_streams_max": self.ctx.streams.most,
            "tool_executions": dict(tools.executions),
            "tool_results": len(tools),
            "stats": dict(conv.stats),
            "usage": conv.turns.usage.snapshot(),
            "watchdogs_fired": list(self.watchdog.fired),
            "live_turn_clocks": len(conv.turns.last_audio_sent),
        }

    def durable_state(self) -> dict[str, Any]:
        return {**super().durable_state(), **durable.capture(self.conv)}

    def restore(self, state: dict[str, Any]) -> dict[str, Any]:
        super().restore(state)
        return durable.restore(self.conv, state)

    async def aclose(self) -> None:
        self.watchdog.disarm_all()
        if self.conv.turn is not None:
            self.conv.turn.cancel()
        self.conv.turns.closing(self.conv.turn)
        self.ctx.tools.close()
        await super().aclose()
