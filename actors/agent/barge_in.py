"""Pause first, decide after: user speech that overlaps an assistant reply.

Flux opens a user turn (``StartOfTurn``) for any speech, a backchannel ("uh-huh") or a cough as well as a
real interruption, and the false-barge-in guard (``actors/agent/interrupt.py``) needs ~400 ms and two words to
tell them apart. So the reply is paused at once and the guard decides after:

- ``StartOfTurn`` during ``thinking``/``speaking`` fires ``PAUSE``: the client is told ``audio.pause``
  (control lane, never behind audio), the session's audio lane holds what it has queued, and the turn's
  producer and playback clock stop (``AssistantTurn.pause``, ``actors/agent/reply.py`` ``_pace``).
- the guard accepts the speech -> ``BARGE_IN`` as before (``audio.clear``, the turn is cancelled, the
  history is cut to what played before the pause);
- the user turn ends with only backchannel words or none -> ``RESUME_REPLY``: ``audio.resume``, the lane
  sends on from the next queued frame and the producer from the next unsent chunk (nothing repeated or
  lost), the playback clock moves on by the paused time;
- the user turn does not end within ``watchdog_paused_s`` -> ``PAUSE_TIMEOUT``: resumed the same way, the
  client is told by a ``watchdog`` event (``name: paused``, ``outcome: reply_resumed``).

``LatencyReport.interrupt_stop_latency`` runs from the interrupting speech's start (its audio-clock time
mapped to when that audio arrived) to when the output stopped: the later of the turn's last audio frame
sent and the ``audio.pause``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from vani.actors.agent import speech_clock
from vani.actors.wire import agent as ap
from vani.adapters.base import TurnEvent, TurnEventType

if TYPE_CHECKING:
    from vani.actors.agent.pipeline import Pipeline
    from vani.actors.agent.turn import AssistantTurn

BYTES_PER_S = 32000  # inbound audio: 16 kHz mono PCM16
HELD_WATCHDOGS = ("tts_stall",)  # stall watchdogs of the reply: suspended while paused, re-armed on resume


def audio_arrival(clock: Iterable[tuple[int, float]], audio_s: float) -> float | None:
    """When the user's speech starting at stream time ``audio_s`` was spoken (actors/agent/speech_clock.py)."""
    return speech_clock.moment_of(clock, audio_s, BYTES_PER_S, starts=True)


class PauseControl:
    """The pipeline's pause-first barge-in: the STT decisions and the ``paused`` state's actions."""

    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self._timer: asyncio.TimerHandle | None = None
        self._held: list[str] = []  # watchdogs suspended by the pause

    # ------------------------------------------------------------------ decide (in the decide loop)
    async def on_speech(self, ev: TurnEvent, arrived: float) -> None:
        """An STT event while a reply is under way (``thinking``, ``speaking`` or ``paused``)."""
        p = self.p
        t = ev.event
        if t is TurnEventType.START_OF_TURN:
            p.user_turn_open = True
            p.machine.fire("PAUSE" if p.conv_state != "paused" else "TURN_START", ev, arrived)
            p.guard.begin(ev)  # after PAUSE: entering ``paused`` resets the guard of the previous speech
        elif t is TurnEventType.END_OF_TURN:
            if not p.guard.final_interrupts(ev):
                p.stats["backchannels"] += 1
                p.user_turn_open = False
                p.guard.reset()
                p.send(ap.event("backchannel", transcript=ev.transcript, turn_id=p.turn_id))
                if p.conv_state == "paused":
                    p.machine.fire("RESUME_REPLY", p.turn_id)
                return
            await p._barge_in(ev, arrived)
            p.user_turn_open = False
            p.machine.fire("TRANSCRIPT_FINAL", ev, arrived)
        elif not p.user_turn_open:
            return  # an Update outside any turn: nothing to decide
        elif p.guard.interrupts(ev):
            await p._barge_in(ev, arrived)
        else:
            p.machine.fire(_OVERLAP[t], ev)

    # ------------------------------------------------------------------ machine actions (never await)
    def pause_output(self, ev: TurnEvent, arrived: float | None = None) -> None:
        p, turn = self.p, self.p.turn
        assert turn is not None
        now = time.monotonic()
        turn.pause(now)
        p.outbound.hold_audio()
        p.send(ap.event("audio.pause", turn_id=turn.turn_id))
        start = audio_arrival(p._audio_clock, ev.audio_window_start)
        turn.timings.interrupt_event = min(start or arrived or now, now)
        turn.timings.output_paused = now
        self._held = [name for name in HELD_WATCHDOGS if p.watchdog.armed(name)]
        seconds = p.settings.watchdog_paused_s
        if seconds > 0:
            self._timer = asyncio.get_running_loop().call_later(seconds, p.post, "PAUSE_TIMEOUT", turn.turn_id)

    def resume_output(self, turn_id: int | None = None, *_: Any) -> None:
        p, turn = self.p, self.p.turn
        assert turn is not None
        turn.resume(time.monotonic())
        turn.timings.interrupt_event = turn.timings.output_paused = None  # it did not interrupt
        for name in self._held:
            p.watchdog.arm(name, getattr(p.settings, f"watchdog_{name}_s"))
        self._held = []
        p.send(ap.event("audio.resume", turn_id=turn.turn_id))

    def on_exit_paused(self, *_: Any) -> None:
        """Whatever ends the pause (resume, barge-in, the reply's end): the audio lane sends again.
        A barge-in clears the lane in the same decide step, before the sender can run."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.p.outbound.release_audio()

    def pause_timed_out(self, turn_id: int | None = None, *_: Any) -> None:
        """``watchdog_paused_s`` passed and the guard never accepted the speech: the reply resumes."""
        self.p.watchdog.fired.append("paused")
        self.p.send(ap.event("watchdog", name="paused", state="paused", outcome="reply_resumed", turn_id=turn_id))

    def reannounce(self) -> None:
        """A resumed connection is told the playing turn is paused (after its ``audio.start``)."""
        if self.p.conv_state == "paused" and self.p.turn is not None:
            self.p.send(ap.event("audio.pause", turn_id=self.p.turn.turn_id))

    @staticmethod
    def stopped_at(turn: AssistantTurn, last_sent: float | None) -> float | None:
        """When the output of an interrupted ``turn`` stopped (for ``interrupt_stop_latency``)."""
        t = turn.timings
        if t.interrupt_event is None:
            return None
        return max(t.output_paused or t.interrupt_event, last_sent or 0.0)


_OVERLAP = {
    TurnEventType.UPDATE: "TRANSCRIPT_PARTIAL",
    TurnEventType.EAGER_END_OF_TURN: "EAGER_EOT",
    TurnEventType.TURN_RESUMED: "TURN_RESUMED",
}
