"""The transcription engine: ``WS /v2/flux/{id}``, Deepgram Flux's ``/v2/listen`` schema end to end.

STT events go to the client as Flux messages (``TurnInfo``); the user-turn part of the conversation machine
runs (``idle`` -> ``listening`` -> ``transcribing`` -> ``listening``) and never replies. The client's Flux
control messages are honoured: ``Configure`` (thresholds, keyterms), ``ForceEndTurn`` and ``CloseStream``
(the audio before it is transcribed, then the session closes normally). A resumed client gets ``Connected``
with the recent final transcripts.
"""

from __future__ import annotations

import contextlib
from typing import Any

from vani.actors.agent.listening import ListeningEngine
from vani.actors.agent.machine import ConversationMachine, user_turn_event
from vani.actors.fsm import InvalidEvent
from vani.actors.session.engine import SessionIO
from vani.actors.wire.agent import FLUX_CLIENT_TYPES
from vani.adapters.base import ErrorKind, ProviderError, TurnEvent
from vani.adapters.factory import Providers
from vani.cluster.config import Settings


class Transcript:
    """The conversation machine's model for a session that only listens (its table's user-turn rows)."""

    def __init__(self, engine: TranscriptionEngine) -> None:
        self.engine = engine
        self.conv_state = "idle"
        self.user_turn_open = False

    def is_agent(self, *_: Any) -> bool:
        return False

    def wants_reply(self, *_: Any) -> bool:
        return False

    def user_turn_is_open(self, *_: Any) -> bool:
        return self.user_turn_open

    def record_user_turn(self, ev: TurnEvent, *_: Any) -> None:
        self.engine.transcripts.append({"turn_index": ev.turn_index, "transcript": ev.transcript})
        self.engine.io.checkpoint()


class TranscriptionEngine(ListeningEngine):
    mode = "flux"
    client_types = FLUX_CLIENT_TYPES
    vani_schema = False  # Flux clients get only Flux's schema

    def __init__(self, io: SessionIO, settings: Settings, providers: Providers) -> None:
        super().__init__(io, settings, providers)
        self.model = Transcript(self)
        self.machine = ConversationMachine(self.model, self.session_id)
        self.start()

    def on_audio(self) -> None:
        if self.model.conv_state == "idle":
            self.post("AUDIO_FRAME")

    async def decide(self, kind: str, data: Any) -> None:
        model, machine = self.model, self.machine
        with contextlib.suppress(InvalidEvent):  # logged by the machine
            if kind == "AUDIO_FRAME" and model.conv_state == "idle":
                machine.fire("AUDIO_FRAME")
            elif kind == "stt":
                ev, arrived = data
                self.flux.send(ev.to_flux())
                event = user_turn_event(model, ev)
                if event is not None:
                    machine.fire(event, ev, arrived)

    def provider_failed(self, exc: ProviderError) -> None:
        self.flux.provider_error(exc)
        super().provider_failed(exc)

    # ------------------------------------------------------------------ Engine protocol
    def greeting(self, started: dict[str, Any], resumed: bool) -> dict[str, Any]:
        return self.flux.connected(self.session_id, started["resume_token"], resumed, self.transcripts)

    def on_client(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "Configure":
            self.spawn(self._configure(msg), "configure")
        elif kind == "ForceEndTurn":
            self.spawn(self._force_end_turn(), "force-end")
        elif kind == "CloseStream":
            self.listener.close_stream()

    async def _configure(self, msg: dict[str, Any]) -> None:
        # A Configure sent right after connecting may arrive before the STT stream is open: it waits for it
        # (it was dropped without a reply before), and fails with a reason if the stream never opens.
        stt = await self.listener.wait_open(self.settings.provider_connect_timeout_s + 1.0)
        if stt is None:
            reason = "speech recognition is not connected"
            self.flux.configure_failed(ProviderError(self.providers.stt.name, ErrorKind.UNAVAILABLE, reason))
            return
        th = msg.get("thresholds") or {}
        try:
            await stt.configure(
                eot_threshold=th.get("eot_threshold"),
                eager_eot_threshold=th.get("eager_eot_threshold"),
                eot_timeout_ms=th.get("eot_timeout_ms"),
                keyterms=msg.get("keyterms"),
            )
        except ProviderError as exc:
            self.flux.configure_failed(exc)
            return
        self.flux.configured(stt.opts)  # type: ignore[attr-defined]

    async def _force_end_turn(self) -> None:
        if not self.model.user_turn_open:
            self.flux.no_active_turn()
            return
        await self.listener.force_end_turn()

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "conversation": self.model.conv_state}
