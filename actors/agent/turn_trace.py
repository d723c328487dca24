"""A conversation's turns as spans: ``user_turn`` (with its ``stt`` stage) and ``assistant_turn`` (with its
``llm``, ``tool`` and ``tts`` stages), children of the session's span (``actors/tracing/session_trace.py``).

User turns are followed live from the STT's events: StartOfTurn opens ``user_turn`` and ``stt``,
EagerEndOfTurn and TurnResumed are events on ``stt``, EndOfTurn ends both (a user turn still open when the
session ends is ended with it). An assistant turn's spans are made once, when the turn is over (played out,
interrupted, stopped by a watchdog, discarded, or alive when the session ended), from the stages its reply
stamped on the session clock (``TurnHandle.stages``), so the reply's hot path touches no span. A barge-in is
an event on its turn with the stop latency; watchdog firings are events on the session span.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import INVALID_SPAN, Span

from vani.actors.agent.turn import TurnHandle
from vani.actors.tracing.session_trace import SessionTrace
from vani.adapters.base import TurnEvent, TurnEventType


class UserTurnSpans:
    """The user's turns, as the STT reports them."""

    def __init__(self, trace: SessionTrace, stt_provider: str) -> None:
        self.trace, self.provider = trace, stt_provider
        self.turn: Span = INVALID_SPAN
        self.stt: Span = INVALID_SPAN

    def on_stt(self, ev: TurnEvent, arrived: float) -> None:
        if not self.trace.on:
            return
        t = ev.event
        if t is TurnEventType.START_OF_TURN:
            self._end(arrived, **{"vani.cut": True})  # a turn the STT never ended
            self.turn = self.trace.open("user_turn", {"vani.turn_index": ev.turn_index}, arrived)
            self.stt = self.trace.open("stt", {"vani.provider": self.provider}, arrived, parent=self.turn)
        elif t is TurnEventType.EAGER_END_OF_TURN or t is TurnEventType.TURN_RESUMED:
            self.trace.event(_EVENTS[t], self.stt, arrived, confidence=ev.end_of_turn_confidence)
        elif t is TurnEventType.END_OF_TURN:
            words = len(ev.transcript.split())
            self.trace.close(self.stt, arrived, **{"vani.words": words, "vani.trigger": ev.trigger or ""})
            self._end(arrived, **{"vani.words": words})

    def _end(self, at: float, **attributes: Any) -> None:
        self.trace.close(self.stt, at, **attributes)
        self.trace.close(self.turn, at, **attributes)
        self.turn = self.stt = INVALID_SPAN


_EVENTS = {TurnEventType.EAGER_END_OF_TURN: "eager_end_of_turn", TurnEventType.TURN_RESUMED: "turn_resumed"}


def turn_spans(trace: SessionTrace, turn: TurnHandle, report: dict[str, Any] | None = None) -> None:
    """The spans of a turn that is over (``report``: its LatencyReport, when it has one); called once per turn
    (``Turns._book``)."""
    if not trace.on:
        return
    now, t = trace.clock.now(), turn.timings
    attributes: dict[str, Any] = {
        "vani.turn_id": turn.turn_id,
        "vani.kind": turn.kind.value,
        "vani.speculative": turn.speculative,
        "vani.outcome": turn.outcome.value,
        "vani.characters": len(turn.text),
    }
    attributes.update({f"vani.{k}": v for k, v in (report or {}).items() if k.endswith("_latency")})
    events = []
    if t.output_paused is not None:
        events.append(("output_paused", t.output_paused, {}))
    if t.interrupt_event is not None and turn.interrupted:
        stop = None if t.interrupt_stopped is None else round(t.interrupt_stopped - t.interrupt_event, 4)
        events.append(("barge_in", t.interrupt_event, {} if stop is None else {"vani.stop_latency_s": stop}))
    span = trace.add("assistant_turn", turn.created, now, attributes, events=events)
    for st in turn.stages:
        cut = st.end is None
        trace.add(
            st.name,
            st.start,
            now if cut else st.end,  # type: ignore[arg-type]
            {**st.attributes, "vani.cut": cut},
            parent=span,
            events=st.events,
            error=st.error,
        )
