"""A checker for Deepgram Flux ``TurnInfo`` event ordering (Deepgram's Flux docs: /docs/flux/state).

Reusable by any STT provider or emulator: feed it the events one stream produced, in order, and it
returns human-readable violations (empty list = the sequence is valid Flux).
"""

from __future__ import annotations

from collections.abc import Iterable

from vani.adapters.base import TurnEvent, TurnEventType

TRIGGERS = frozenset({"model", "manual", "timeout"})

_INITIAL, _ONGOING, _AWAITING = "Initial", "TurnOngoing", "AwaitingEnd"


def check_flux_order(
    events: Iterable[TurnEvent],
    *,
    max_update_gap_s: float | None = None,
    first_turn_index: int = 0,
) -> list[str]:
    """Return the Flux state-machine rules that ``events`` break.

    Rules: StartOfTurn only from Initial; EagerEndOfTurn only during a turn and with a non-empty
    transcript; TurnResumed only right after an EagerEndOfTurn (state AwaitingEnd); EndOfTurn only
    during a turn, with ``trigger`` in model|manual|timeout, and with the eager transcript when an
    EagerEndOfTurn is pending; ``turn_index`` constant within a turn and +1 after each EndOfTurn;
    audio windows well-formed and non-decreasing. With ``max_update_gap_s``, consecutive events
    within a turn may be at most that far apart on the audio clock (Flux: Update every ~0.25 s).
    """
    errors: list[str] = []
    state = _INITIAL
    index = first_turn_index
    eager_text: str | None = None
    last_end = float("-inf")
    last_in_turn: float | None = None
    for i, ev in enumerate(events):
        where = f"#{i} {ev.event.value}(turn {ev.turn_index})"
        if ev.turn_index != index:
            errors.append(f"{where}: turn_index {ev.turn_index}, expected {index}")
        if ev.audio_window_start > ev.audio_window_end + 1e-6:
            errors.append(f"{where}: audio_window_start > audio_window_end")
        if ev.audio_window_end + 1e-6 < last_end:
            errors.append(f"{where}: audio_window_end went backwards ({ev.audio_window_end} < {last_end})")
        last_end = max(last_end, ev.audio_window_end)
        if ev.event is not TurnEventType.END_OF_TURN and ev.trigger is not None:
            errors.append(f"{where}: trigger is only allowed on EndOfTurn")
        if (
            max_update_gap_s is not None
            and state != _INITIAL
            and last_in_turn is not None
            and ev.audio_window_end - last_in_turn > max_update_gap_s + 1e-6
        ):
            errors.append(
                f"{where}: {ev.audio_window_end - last_in_turn:.3f}s of audio since the previous event "
                f"(max {max_update_gap_s}s)"
            )

        match ev.event:
            case TurnEventType.START_OF_TURN:
                if state != _INITIAL:
                    errors.append(f"{where}: StartOfTurn while {state}")
                state, eager_text = _ONGOING, None
            case TurnEventType.UPDATE:
                pass  # allowed in any state
            case TurnEventType.EAGER_END_OF_TURN:
                if state != _ONGOING:
                    errors.append(f"{where}: EagerEndOfTurn while {state}")
                if not ev.transcript.strip():
                    errors.append(f"{where}: EagerEndOfTurn with an empty transcript")
                state, eager_text = _AWAITING, ev.transcript
            case TurnEventType.TURN_RESUMED:
                if state != _AWAITING:
                    errors.append(f"{where}: TurnResumed without a pending EagerEndOfTurn ({state})")
                state, eager_text = _ONGOING, None
            case TurnEventType.END_OF_TURN:
                if state == _INITIAL:
                    errors.append(f"{where}: EndOfTurn with no active turn")
                if ev.trigger not in TRIGGERS:
                    errors.append(f"{where}: trigger {ev.trigger!r} not in {sorted(TRIGGERS)}")
                if eager_text is not None and ev.transcript != eager_text:
                    errors.append(
                        f"{where}: EndOfTurn transcript {ev.transcript!r} != EagerEndOfTurn "
                        f"transcript {eager_text!r} without a TurnResumed"
                    )
                state, eager_text = _INITIAL, None
                index += 1
        last_in_turn = ev.audio_window_end if state != _INITIAL else None
    return errors
