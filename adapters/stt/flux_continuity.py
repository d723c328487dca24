"""One continuous Flux stream across reconnects: the unacknowledged-audio buffer and the turn bookkeeping.

If the socket drops (or the server sends a fatal ``Error``), the stream reconnects and replays the audio
not yet *acknowledged*. Flux has no explicit acks; audio counts as acknowledged once an ``EndOfTurn``
covers it (or an ``Update`` outside any turn), because everything before that point has been fully
transcribed and delivered. Replayed audio re-creates the open turn on the new connection; this ledger
shifts the new connection's audio clock and ``turn_index`` so consumers see one continuous stream, and
suppresses the repeated ``StartOfTurn``. If the lost connection had sent ``EagerEndOfTurn``, a
``TurnResumed`` is emitted, because the new connection re-decides that turn from scratch.

Pure bookkeeping: no sockets, no clock; ``FluxStream`` calls it under its send lock.
"""

from __future__ import annotations

from collections import deque

from vani.adapters.base import TurnEvent, TurnEventType


class StreamContinuity:
    """Positions are in bytes of the whole stream (across connections)."""

    def __init__(self, bytes_per_s: int, replay_max_s: float) -> None:
        self.bytes_per_s = bytes_per_s
        self.replay_max_s = replay_max_s
        self.sent = 0  # total audio accepted from the caller
        self.acked = 0  # audio fully transcribed and delivered
        # Audio from acked to sent, as the caller's chunks: trimming the front of one bytearray moved up to
        # replay_max_s of audio per chunk (~20 % of a session host's work per inbound frame, issue 12).
        self._replay: deque[bytes] = deque()
        self._replay_len = 0
        self._conn_base = 0  # stream offset where the current connection's audio clock starts
        self._turns_before_conn = 0
        self._conn_turns = 0  # EndOfTurns received on the current connection
        self._turn_active = False
        self._eager_pending = False
        self._last_end = 0.0  # latest audio_window_end delivered
        self._last_start = 0.0

    @property
    def replay_s(self) -> float:
        return self._replay_len / self.bytes_per_s

    def accept(self, pcm: bytes) -> None:
        """Audio the caller sent: kept until acknowledged, bounded by ``replay_max_s``."""
        self._replay.append(bytes(pcm))
        self._replay_len += len(pcm)
        self.sent += len(pcm)
        limit = int(self.replay_max_s * self.bytes_per_s)
        if self._replay_len > limit:  # bound memory: oldest unacknowledged audio is given up
            drop = self._replay_len - limit
            self._drop_front(drop)
            self.acked += drop

    def _drop_front(self, n: int) -> None:
        """Forget the oldest ``n`` bytes of the replay."""
        self._replay_len -= n
        while n > 0:
            head = self._replay[0]
            if len(head) <= n:
                self._replay.popleft()
                n -= len(head)
            else:
                self._replay[0] = head[n:]
                n = 0

    def connection_lost(self) -> None:
        """The turns the lost connection ended now count before the next connection's turn indices."""
        self._turns_before_conn += self._conn_turns
        self._conn_turns = 0

    def switch_over(self) -> tuple[TurnEvent | None, bytes]:
        """A new connection starts at the acknowledged point: the event to emit first (if any), the replay."""
        self._conn_base = self.acked
        resumed = None
        if self._eager_pending:
            resumed = TurnEvent(
                TurnEventType.TURN_RESUMED,
                self._turns_before_conn + self._conn_turns,
                audio_window_start=self._last_start,
                audio_window_end=self._last_end,
            )
            self._eager_pending = False
        return resumed, b"".join(self._replay)

    def on_turn(self, ev: TurnEvent) -> TurnEvent | None:
        """``ev`` on the stream's continuous clock and turn count, or None if the caller already had it."""
        base_s = self._conn_base / self.bytes_per_s
        ev.audio_window_start = round(ev.audio_window_start + base_s, 3)
        ev.audio_window_end = round(ev.audio_window_end + base_s, 3)
        for w in ev.words:
            w.start = None if w.start is None else round(w.start + base_s, 3)
            w.end = None if w.end is None else round(w.end + base_s, 3)
        ev.turn_index += self._turns_before_conn
        t = ev.event
        if t is not TurnEventType.END_OF_TURN and ev.audio_window_end < self._last_end - 1e-6:
            return None  # the replay re-describes audio the caller has already had events for
        if t is TurnEventType.START_OF_TURN:
            if self._turn_active:
                return None  # the replay re-opened a turn the caller already knows about
            self._turn_active = True
        elif t is TurnEventType.EAGER_END_OF_TURN:
            self._eager_pending = True
        elif t is TurnEventType.TURN_RESUMED:
            self._eager_pending = False
        elif t is TurnEventType.END_OF_TURN:
            self._turn_active = self._eager_pending = False
            self._conn_turns += 1
            self._ack(ev.audio_window_end)
        elif t is TurnEventType.UPDATE and not self._turn_active:
            self._ack(ev.audio_window_end)
        self._last_end = max(self._last_end, ev.audio_window_end)
        self._last_start = ev.audio_window_start
        return ev

    def _ack(self, until_s: float) -> None:
        until = min(self.sent, int(until_s * self.bytes_per_s) // 2 * 2)
        if until > self.acked:
            self._drop_front(until - self.acked)
            self.acked = until
