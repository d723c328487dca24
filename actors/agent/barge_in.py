"""Pause first, decide after: user speech that overlaps an assistant reply.

Flux opens a user turn (``StartOfTurn``) for any speech, a backchannel ("uh-huh") or a cough as well as a
real interruption, and the barge-in policy (``actors/agent/barge_in_policy.py``) needs ~400 ms and two
words to tell them apart. So the reply is paused at once and the policy decides after
(``actors/agent/decide.py`` asks it):

- ``StartOfTurn`` during ``thinking``/``speaking`` fires ``PAUSE``: the client is told ``audio.pause``
  (control lane, never behind audio), the session's audio lane holds what it has queued, and the turn's
  producer and playback clock stop (``Playback.pause``, ``actors/agent/reply.py`` ``pace``).
- the policy says ``INTERRUPT`` -> ``BARGE_IN`` (``audio.clear``, the turn is cancelled, the history is cut
  to what played before the pause);
- the policy says ``BACKCHANNEL`` (the user turn ended with only backchannel words or none) ->
  ``RESUME_REPLY``: ``audio.resume``, the lane sends on from the next queued frame and the producer from the
  next unsent chunk (nothing repeated or lost), the playback clock moves on by the paused time;
- the user turn does not end within ``watchdog_paused_s`` -> ``PAUSE_TIMEOUT``: resumed the same way, the
  client is told by a ``watchdog`` event (``name: paused``, ``outcome: reply_resumed``).

``LatencyReport.interrupt_stop_latency`` runs from the interrupting speech's start (its audio-clock time
mapped to when that audio arrived) to when the output stopped: the later of the turn's last audio frame
sent and the ``audio.pause``.
"""

from __future__ import annotations

from typing import Any

from vani.actors.agent.context import AgentContext
from vani.actors.agent.turn import TurnHandle
from vani.actors.clock import Timer
from vani.actors.wire import agent as wire
from vani.adapters.base import TurnEvent

HELD_WATCHDOGS = ("tts_stall",)  # stall watchdogs of the reply: suspended while paused, re-armed on resume


def stopped_at(turn: TurnHandle, last_sent: float | None) -> float | None:
    """When the output of an interrupted ``turn`` stopped (for ``interrupt_stop_latency``)."""
    t = turn.timings
    if t.interrupt_event is None:
        return None
    return max(t.output_paused or t.interrupt_event, last_sent or 0.0)


class PauseControl:
    """The ``paused`` state's actions (the machine's table names them; they never await)."""

    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self._timer: Timer | None = None
        self._held: list[str] = []  # watchdogs suspended by the pause

    def pause_output(self, turn: TurnHandle, ev: TurnEvent, arrived: float | None = None) -> None:
        ctx = self.ctx
        now = ctx.clock.now()
        turn.playback.pause(now)
        ctx.outbound.hold_audio()
        ctx.send(wire.event("audio.pause", turn_id=turn.turn_id))
        start = ctx.listener.arrival_of(ev.audio_window_start, starts=True)
        turn.timings.interrupt_event = min(start or arrived or now, now)
        turn.timings.output_paused = now
        self._held = [name for name in HELD_WATCHDOGS if ctx.watchdog.armed(name)]
        seconds = ctx.settings.watchdog_paused_s
        if seconds > 0:
            self._timer = ctx.clock.call_later(seconds, ctx.post, "PAUSE_TIMEOUT", turn.turn_id)

    def resume_output(self, turn: TurnHandle) -> None:
        ctx = self.ctx
        turn.playback.resume(ctx.clock.now())
        turn.timings.interrupt_event = turn.timings.output_paused = None  # it did not interrupt
        for name in self._held:
            ctx.watchdog.arm(name, getattr(ctx.settings, f"watchdog_{name}_s"))
        self._held = []
        ctx.send(wire.event("audio.resume", turn_id=turn.turn_id))

    def release(self, *_: Any) -> None:
        """Whatever ends the pause (resume, barge-in, the reply's end): the audio lane sends again.
        A barge-in clears the lane in the same decide step, before the sender can run."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.ctx.outbound.release_audio()

    def timed_out(self, turn_id: int | None) -> None:
        """``watchdog_paused_s`` passed and the policy never accepted the speech: the reply resumes."""
        self.ctx.watchdog.fired.append("paused")
        self.ctx.send(wire.event("watchdog", name="paused", state="paused", outcome="reply_resumed", turn_id=turn_id))

    def reannounce(self, conv_state: str, turn: TurnHandle | None) -> None:
        """A resumed connection is told the playing turn is paused (after its ``audio.start``)."""
        if conv_state == "paused" and turn is not None:
            self.ctx.send(wire.event("audio.pause", turn_id=turn.turn_id))
