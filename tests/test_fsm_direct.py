"""``StateMachine.fire``'s fast path for quiet self-loops (one per audio frame) does exactly what ``transitions`` does.

For every (event, state) the fast path takes, in both machines' real tables: the same actions run, in the same
order, with the same arguments, the state stays, nothing is logged into the history and no change is reported.
"""

from __future__ import annotations

from typing import Any

import pytest
from transitions import Machine

from vani.actors.agent import machine as agent_machine
from vani.actors.fsm import StateMachine, direct_steps
from vani.actors.session import machine as session_machine

TABLES = {
    "session": (session_machine.STATES, session_machine.TRANSITIONS, session_machine._QUIET),
    "agent": (agent_machine.STATES, agent_machine.TRANSITIONS, agent_machine._QUIET),
}
CALLBACK_KEYS = ("after", "before", "prepare", "conditions", "unless")


def recording_model(transitions: list[dict[str, Any]]) -> Any:
    """A model with every callback and condition the table names; each records (name, args) and says yes."""
    names = {
        n for t in transitions for k in CALLBACK_KEYS for n in ([t[k]] if isinstance(t.get(k), str) else t.get(k) or [])
    }

    def recorder(name: str) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> bool:
            self.calls.append((name, args, kwargs))
            return True

        return call

    cls = type("Model", (), {n: recorder(n) for n in names} | {"changes": None})
    model = cls()
    model.calls, model.changes = [], []
    model.on_change = lambda source, dest, event: model.changes.append((source, dest, event))
    return model


def cases() -> list[tuple[str, str, str]]:
    return [
        (table, event, state)
        for table, (_, transitions, quiet) in TABLES.items()
        for (event, state) in direct_steps(transitions, quiet)
    ]


def test_the_per_frame_events_take_the_fast_path() -> None:
    assert {("AUDIO_FRAME", "streaming"), ("AUDIO_FRAME", "muted")} <= set(
        direct_steps(session_machine.TRANSITIONS, session_machine._QUIET)
    )
    agent = direct_steps(agent_machine.TRANSITIONS, agent_machine._QUIET)
    assert ("AUDIO_FRAME", "listening") in agent
    assert ("AUDIO_FRAME", "idle") not in agent  # idle -> listening changes state: through transitions


@pytest.mark.parametrize(("table", "event", "state"), cases())
def test_fast_path_equals_transitions(table: str, event: str, state: str) -> None:
    states, transitions, quiet = TABLES[table]
    args, kwargs = (b"\x00\x01", 12.5), {}
    fast = recording_model(transitions)
    sm = StateMachine(
        fast, name=table, session_id="s", states=states, transitions=transitions, initial=state,
        attribute="st", hook="on_change", quiet=quiet,
    )  # fmt: skip
    assert sm.fire(event, *args, **kwargs) == state
    slow = recording_model(transitions)
    Machine(
        model=slow, states=states, transitions=transitions, initial=state, auto_transitions=False,
        ignore_invalid_triggers=False, send_event=False, model_attribute="st",
    )  # fmt: skip
    assert getattr(slow, event)(*args, **kwargs) is True
    assert (fast.st, fast.calls) == (slow.st, slow.calls) == (state, slow.calls)
    assert sm.history == [] and fast.changes == []


def test_a_table_with_a_condition_or_a_second_candidate_is_not_short_cut() -> None:
    base = {"trigger": "F", "source": "a", "dest": None, "after": "x"}
    assert direct_steps([base], {"F"}) == {("F", "a"): ("x",)}
    assert direct_steps([base], set()) == {}  # not quiet: logged and reported
    assert direct_steps([{**base, "conditions": "ok"}], {"F"}) == {}
    assert direct_steps([{**base, "unless": "no"}], {"F"}) == {}
    assert direct_steps([{**base, "before": "y"}], {"F"}) == {}
    assert direct_steps([{**base, "dest": "b"}], {"F"}) == {}
    assert direct_steps([base, {**base, "after": "z"}], {"F"}) == {}
    assert direct_steps([base, {**base, "source": "*", "dest": "b"}], {"F"}) == {}
