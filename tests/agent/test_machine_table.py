"""The conversation machine's whole table (actors/agent/machine.py), every state x every event, no Ray.

``SPEC`` below is a second reading of the table in machine.py's docstring, written out by hand (not derived
from ``TRANSITIONS``): for each (state, event) it lists the guarded alternatives in order; a pair it does not
list must raise ``InvalidEvent``. Each pair is fired under every combination of the five conditions, so a
condition the spec does not name for a row must not matter.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from vani.actors.agent.machine import STATES, TRANSITIONS, ConversationMachine
from vani.actors.fsm import InvalidEvent

CONDITIONS = ("is_agent", "wants_reply", "is_current", "user_turn_is_open", "has_audio")
ACTIONS = (
    "start_speculation",
    "start_reply",
    "record_user_turn",
    "discard_speculation",
    "confirm_speculation",
    "finish_reply",
    "pause_output",
    "resume_output",
    "pause_timed_out",
    "stop_output",
    "cancel_turn",
    "watchdog_fired",
    "on_exit_paused",
)
QUIET = {"AUDIO_FRAME", "TRANSCRIPT_PARTIAL"}  # per-frame self-loops: not reported to the hook
STAY = "(stay)"

# A row: (required conditions, next state or STAY, after-actions in order). The first row whose
# conditions all hold is taken; none holding = InvalidEvent.
Row = tuple[dict[str, bool], str, tuple[str, ...]]
ALWAYS: dict[str, bool] = {}

SPEC: dict[tuple[str, str], list[Row]] = {}


def rows(states: str, events: str, *alternatives: Row) -> None:
    for state in states.split("|"):
        for ev in events.split("|"):
            assert (state, ev) not in SPEC, f"spec lists ({state}, {ev}) twice"
            SPEC[(state, ev)] = list(alternatives)


# Read top to bottom from the docstring of actors/agent/machine.py.
rows("idle", "AUDIO_FRAME", (ALWAYS, "listening", ()))
rows("listening", "AUDIO_FRAME", (ALWAYS, STAY, ()))
rows("idle|listening", "TURN_START", (ALWAYS, "transcribing", ()))
rows("transcribing|speculating", "TRANSCRIPT_PARTIAL", (ALWAYS, STAY, ()))
rows(
    "transcribing",
    "EAGER_EOT",
    ({"is_agent": True}, "speculating", ("start_speculation",)),
    (ALWAYS, STAY, ()),
)
rows(
    "transcribing",
    "TRANSCRIPT_FINAL",
    ({"wants_reply": True}, "thinking", ("start_reply",)),
    (ALWAYS, "listening", ("record_user_turn",)),
)
rows("speculating", "TURN_RESUMED", (ALWAYS, "transcribing", ("discard_speculation",)))
rows("speculating", "TRANSCRIPT_FINAL", (ALWAYS, "thinking", ("confirm_speculation",)))
rows("thinking", "AUDIO_STARTED", ({"is_current": True}, "speaking", ()))
rows(
    "thinking|speaking|paused",
    "REPLY_DONE",
    ({"is_current": True, "user_turn_is_open": True}, "transcribing", ("finish_reply",)),
    ({"is_current": True}, "listening", ("finish_reply",)),
)
rows("listening", "SPEAK_FALLBACK", (ALWAYS, "thinking", ()))
rows("thinking|speaking", "PAUSE", (ALWAYS, "paused", ("pause_output",)))
rows("thinking|speaking", "TRANSCRIPT_PARTIAL|EAGER_EOT|TURN_RESUMED", (ALWAYS, STAY, ()))
rows("paused", "TURN_START|TRANSCRIPT_PARTIAL|EAGER_EOT|TURN_RESUMED|AUDIO_STARTED", (ALWAYS, STAY, ()))
rows(
    "paused",
    "RESUME_REPLY",
    ({"has_audio": True}, "speaking", ("resume_output",)),
    (ALWAYS, "thinking", ("resume_output",)),
)
rows(
    "paused",
    "PAUSE_TIMEOUT",
    ({"has_audio": True}, "speaking", ("pause_timed_out", "resume_output")),
    (ALWAYS, "thinking", ("pause_timed_out", "resume_output")),
)
rows("thinking|speaking|paused", "BARGE_IN", (ALWAYS, "interrupted", ("stop_output",)))
rows("interrupted", "CANCEL", (ALWAYS, "cancelling", ("cancel_turn",)))
rows(
    "cancelling",
    "CANCELLED",
    ({"user_turn_is_open": True}, "transcribing", ()),
    (ALWAYS, "listening", ()),
)
rows("transcribing", "WATCHDOG", (ALWAYS, STAY, ("watchdog_fired",)))
rows("speculating", "WATCHDOG", (ALWAYS, "transcribing", ("watchdog_fired",)))
rows("thinking|speaking", "WATCHDOG", (ALWAYS, "cancelling", ("watchdog_fired",)))
rows("cancelling", "WATCHDOG", (ALWAYS, STAY, ("watchdog_fired",)))

SPEC_STATES = [
    "idle",
    "listening",
    "transcribing",
    "speculating",
    "thinking",
    "speaking",
    "paused",
    "interrupted",
    "cancelling",
]
SPEC_EVENTS = [
    "AUDIO_FRAME",
    "TURN_START",
    "TRANSCRIPT_PARTIAL",
    "EAGER_EOT",
    "TRANSCRIPT_FINAL",
    "TURN_RESUMED",
    "AUDIO_STARTED",
    "REPLY_DONE",
    "SPEAK_FALLBACK",
    "PAUSE",
    "RESUME_REPLY",
    "PAUSE_TIMEOUT",
    "BARGE_IN",
    "CANCEL",
    "CANCELLED",
    "WATCHDOG",
]
PAIRS = list(itertools.product(SPEC_STATES, SPEC_EVENTS))
COMBOS = [dict(zip(CONDITIONS, values, strict=True)) for values in itertools.product((False, True), repeat=5)]


class Model:
    """Conditions read from ``cond``; every action and the change hook recorded in ``calls``."""

    def __init__(self) -> None:
        self.conv_state = "idle"
        self.cond = dict.fromkeys(CONDITIONS, True)
        self.calls: list[str] = []
        self.changes: list[tuple[str, str, str]] = []

    def __getattr__(self, name: str) -> Any:
        if name in CONDITIONS:
            return lambda *_a, **_k: self.cond[name]
        if name in ACTIONS:
            return lambda *_a, **_k: self.calls.append(name)
        raise AttributeError(name)

    def on_conversation_change(self, source: str, dest: str, event: str) -> None:
        self.changes.append((source, dest, event))


@pytest.fixture(scope="module")
def model_machine() -> tuple[Model, ConversationMachine]:
    model = Model()
    return model, ConversationMachine(model, "unit")  # one machine, reused: building one costs ~10 ms


def state_names() -> list[str]:
    return [s if isinstance(s, str) else s["name"] for s in STATES]


def triggers() -> set[str]:
    return {t["trigger"] for t in TRANSITIONS}


def expected(state: str, event: str, cond: dict[str, bool]) -> tuple[str, tuple[str, ...]] | None:
    """(next state, every callback in order) per SPEC, or None for InvalidEvent."""
    for need, dest, after in SPEC.get((state, event), []):
        if all(cond[c] == v for c, v in need.items()):
            dest = state if dest == STAY else dest
            # Leaving ``paused`` by any event releases the held audio lane, before the transition's actions.
            exit_ = ("on_exit_paused",) if state == "paused" and dest != "paused" else ()
            return dest, exit_ + after
    return None


def test_spec_covers_every_state_and_event_of_the_machine():
    assert sorted(state_names()) == sorted(SPEC_STATES)
    assert triggers() == set(SPEC_EVENTS)
    assert len(PAIRS) == len(SPEC_STATES) * len(SPEC_EVENTS) == 144
    assert {s for s, _ in SPEC} <= set(SPEC_STATES) and {e for _, e in SPEC} <= set(SPEC_EVENTS)
    names = {c for rows_ in SPEC.values() for need, _, _ in rows_ for c in need}
    assert names <= set(CONDITIONS)


def test_a_new_machine_is_idle():
    model = Model()
    cm = ConversationMachine(model, "unit")
    assert cm.state == model.conv_state == "idle"
    assert cm.history == [] and model.changes == []


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s}-{e}" for s, e in PAIRS])
def test_every_state_event_pair(model_machine: tuple[Model, ConversationMachine], state: str, event: str):
    model, cm = model_machine
    for cond in COMBOS:
        model.conv_state, model.cond = state, cond
        model.calls, model.changes = [], []
        cm.history.clear()
        assert cm.can(event) == ((state, event) in SPEC), (state, event)
        want = expected(state, event, cond)
        if want is None:
            with pytest.raises(InvalidEvent) as err:
                cm.fire(event, "arg")
            assert (err.value.event, err.value.state) == (event, state)
            assert model.conv_state == state, (state, event, cond)  # a refusal changes nothing
            assert model.calls == [] and model.changes == [] and cm.history == []
            continue
        dest, calls = want
        assert cm.fire(event, "arg") == dest, (state, event, cond)
        assert model.conv_state == dest
        assert model.calls == list(calls), (state, event, cond)
        reported = not (event in QUIET and dest == state)
        assert model.changes == ([(state, dest, event)] if reported else []), (state, event, cond)
        assert cm.history == ([(state, event, dest)] if reported else [])


@pytest.mark.parametrize(
    ("state", "event", "cond", "dest", "calls"),
    [
        ("transcribing", "EAGER_EOT", {"is_agent": True}, "speculating", ["start_speculation"]),
        ("transcribing", "EAGER_EOT", {"is_agent": False}, "transcribing", []),
        ("transcribing", "TRANSCRIPT_FINAL", {"wants_reply": True}, "thinking", ["start_reply"]),
        ("transcribing", "TRANSCRIPT_FINAL", {"wants_reply": False}, "listening", ["record_user_turn"]),
        ("speaking", "REPLY_DONE", {"user_turn_is_open": True}, "transcribing", ["finish_reply"]),
        ("speaking", "REPLY_DONE", {"user_turn_is_open": False}, "listening", ["finish_reply"]),
        ("paused", "REPLY_DONE", {"user_turn_is_open": True}, "transcribing", ["on_exit_paused", "finish_reply"]),
        ("paused", "RESUME_REPLY", {"has_audio": True}, "speaking", ["on_exit_paused", "resume_output"]),
        ("paused", "RESUME_REPLY", {"has_audio": False}, "thinking", ["on_exit_paused", "resume_output"]),
        (
            "paused",
            "PAUSE_TIMEOUT",
            {"has_audio": True},
            "speaking",
            ["on_exit_paused", "pause_timed_out", "resume_output"],
        ),
        (
            "paused",
            "PAUSE_TIMEOUT",
            {"has_audio": False},
            "thinking",
            ["on_exit_paused", "pause_timed_out", "resume_output"],
        ),
        ("cancelling", "CANCELLED", {"user_turn_is_open": True}, "transcribing", []),
        ("cancelling", "CANCELLED", {"user_turn_is_open": False}, "listening", []),
        ("thinking", "AUDIO_STARTED", {"is_current": True}, "speaking", []),
        ("thinking", "AUDIO_STARTED", {"is_current": False}, None, []),  # a stale turn's first audio
        ("speaking", "REPLY_DONE", {"is_current": False}, None, []),  # a stale turn's end
        ("paused", "BARGE_IN", {}, "interrupted", ["on_exit_paused", "stop_output"]),
    ],
    ids=lambda v: "-".join(f"{k}={int(b)}" for k, b in v.items()) if isinstance(v, dict) else None,
)
def test_guarded_alternatives_spelled_out(state: str, event: str, cond: dict[str, bool], dest: Any, calls: list[str]):
    """The guarded rows one by one, readable on their own (the loop above checks them under every combination)."""
    model = Model()
    cm = ConversationMachine(model, "unit")
    model.conv_state = state
    model.cond.update(cond)
    if dest is None:
        with pytest.raises(InvalidEvent):
            cm.fire(event)
        assert model.conv_state == state
    else:
        assert cm.fire(event) == dest
    assert model.calls == calls


def test_on_exit_paused_runs_exactly_when_paused_is_left(model_machine: tuple[Model, ConversationMachine]):
    model, cm = model_machine
    left = stayed = 0
    for event in SPEC_EVENTS:
        for cond in COMBOS:
            model.conv_state, model.cond, model.calls = "paused", cond, []
            try:
                dest = cm.fire(event)
            except InvalidEvent:
                assert model.calls == []
                continue
            if dest == "paused":
                stayed += 1
                assert "on_exit_paused" not in model.calls, event
            else:
                left += 1
                assert model.calls[0] == "on_exit_paused" and model.calls.count("on_exit_paused") == 1, event
    assert left and stayed


def test_a_reply_with_a_backchannel_walks_the_table():
    """One realistic path through the table from a fresh machine (no state set by hand)."""
    model = Model()
    cm = ConversationMachine(model, "unit")
    path = [
        ("AUDIO_FRAME", "listening"),
        ("AUDIO_FRAME", "listening"),
        ("TURN_START", "transcribing"),
        ("TRANSCRIPT_PARTIAL", "transcribing"),
        ("EAGER_EOT", "speculating"),
        ("TRANSCRIPT_FINAL", "thinking"),
        ("AUDIO_STARTED", "speaking"),
        ("PAUSE", "paused"),
        ("RESUME_REPLY", "speaking"),
        ("PAUSE", "paused"),
        ("BARGE_IN", "interrupted"),
        ("CANCEL", "cancelling"),
        ("CANCELLED", "transcribing"),
    ]
    for event, dest in path:
        assert cm.fire(event) == dest, event
    assert model.calls == [
        "start_speculation",
        "confirm_speculation",
        "pause_output",
        "on_exit_paused",
        "resume_output",
        "pause_output",
        "on_exit_paused",
        "stop_output",
        "cancel_turn",
    ]
    # The quiet self-loops (the second AUDIO_FRAME, the partial) are neither in the history nor reported.
    reported = [e for e, _ in path]
    reported.remove("TRANSCRIPT_PARTIAL")
    reported.remove("AUDIO_FRAME")
    assert [e for _, e, _ in cm.history] == reported
    assert len(model.changes) == len(cm.history)


def test_an_unknown_event_is_refused():
    model = Model()
    cm = ConversationMachine(model, "unit")
    assert not cm.can("NOT_AN_EVENT")
    with pytest.raises(InvalidEvent):
        cm.fire("NOT_AN_EVENT")
    assert model.conv_state == "idle"


class Broken(Model):
    """``start_reply`` has a bug: it reads an attribute that does not exist."""

    def start_reply(self, *_: Any) -> None:
        self.calls.append("start_reply")
        _ = self.no_such_attribute


def test_a_bug_inside_an_action_is_not_reported_as_an_invalid_event():
    model = Broken()
    cm = ConversationMachine(model, "unit")
    model.conv_state = "transcribing"
    with pytest.raises(AttributeError):
        cm.fire("TRANSCRIPT_FINAL")
