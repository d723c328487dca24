"""The one ``transitions`` wrapper: a named table of states and events over a model, explicit about refusals.

Both of a session's machines use it: the connection lifecycle (``actors/session/machine.py``) and the
conversation (``actors/agent/machine.py``). ``fire`` never awaits (actions are synchronous; I/O goes to
tasks with an owner); an event the current state does not accept, or whose every condition fails, raises
``InvalidEvent`` and is logged: never silently dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from transitions import Machine, MachineError

# transitions logs every callback at INFO; the transition log below is the one to read.
logging.getLogger("transitions").setLevel(logging.WARNING)


class InvalidEvent(Exception):
    def __init__(self, event: str, state: str) -> None:
        super().__init__(f"event {event} is not valid in state {state}")
        self.event = event
        self.state = state


class StateMachine:
    """``transitions.Machine`` over ``model``; the state lives in ``model.<attribute>``.

    The model provides the conditions and actions the table names and may define ``on_change``-style
    hook ``change_hook(source, dest, event)`` (its name given by ``hook``). Events in ``quiet`` that do not
    change state (per-frame self-loops) are neither logged nor reported.
    """

    def __init__(
        self,
        model: Any,
        *,
        name: str,
        session_id: str,
        states: list[Any],
        transitions: list[dict[str, Any]],
        initial: str,
        attribute: str,
        hook: str,
        quiet: Collection[str] = (),
        log_level: int = logging.DEBUG,
        keep: int = 128,
    ) -> None:
        self.model = model
        self.session_id = session_id
        self.attribute = attribute
        self.history: list[tuple[str, str, str]] = []  # (source, event, dest), the latest ``keep``
        self._log = logging.getLogger(f"vani.{name}")
        self._level = log_level
        self._quiet = frozenset(quiet)
        self._keep = keep
        self._machine = Machine(
            model=model,
            states=states,
            transitions=transitions,
            initial=initial,
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=False,
            model_attribute=attribute,
        )
        self._on_change: Callable[[str, str, str], None] | None = getattr(model, hook, None)
        self._events = frozenset(t["trigger"] for t in transitions)
        self.direct = direct_steps(transitions, self._quiet)

    @property
    def state(self) -> str:
        return getattr(self.model, self.attribute)

    def can(self, event: str) -> bool:
        return event in self._machine.get_triggers(self.state)

    def fire(self, event: str, *args: Any, **kwargs: Any) -> str:
        """Fire ``event``; returns the new state or raises ``InvalidEvent``."""
        source = self.state
        steps = self.direct.get((event, source))
        if steps is not None:  # a quiet self-loop (per audio frame): its actions, as transitions would run them
            for name in steps:
                getattr(self.model, name)(*args, **kwargs)
            return source
        trigger = getattr(self.model, event, None) if event in self._events else None
        if trigger is None:  # not an event of this table at all
            self._log.warning("session=%s rejected unknown %s in %s", self.session_id, event, source)
            raise InvalidEvent(event, source)
        try:
            ok = trigger(*args, **kwargs)
        except MachineError as exc:  # (an error inside an action is a bug: it propagates as itself)
            self._log.warning("session=%s rejected %s in %s", self.session_id, event, source)
            raise InvalidEvent(event, source) from exc
        dest = self.state
        if not ok:  # every condition failed: say so instead of pretending it happened
            raise InvalidEvent(event, source)
        if event not in self._quiet or source != dest:
            self._log.log(self._level, "session=%s %s --%s--> %s", self.session_id, source, event, dest)
            self.history.append((source, event, dest))
            del self.history[: -self._keep]
            if self._on_change is not None:
                self._on_change(source, dest, event)
        return dest


def direct_steps(transitions: list[dict[str, Any]], quiet: Collection[str]) -> dict[tuple[str, str], tuple[str, ...]]:
    """(event, state) -> the ``after`` actions of transitions that ``fire`` may run without ``transitions``.

    ``transitions`` pays ~10 Python calls per trigger (event lookup, transition objects, callback resolution),
    and the session and conversation machines take one event per inbound audio frame. A step qualifies only
    when the outcome is fixed by the table alone: a quiet event, the only transition for that event in that
    state, internal (``dest`` None: no exit/enter, the state stays), no ``conditions``/``unless``/``prepare``/
    ``before``. Running its ``after`` actions in order with the event's arguments is then exactly what
    ``transitions`` does (the machine has no machine-wide callbacks; ``StateMachine`` never sets any), and
    such an event is neither logged nor reported either way.
    """
    sources: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for t in transitions:
        for src in [t["source"]] if isinstance(t["source"], str) else t["source"]:
            sources.setdefault((t["trigger"], src), []).append(t)
    wildcard = {event for event, src in sources if src == "*"}  # "*" adds a candidate in every state
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for (event, src), ts in sources.items():
        if event not in quiet or event in wildcard or len(ts) != 1:
            continue
        t = ts[0]
        if t.get("dest") is not None or any(t.get(k) for k in ("conditions", "unless", "prepare", "before")):
            continue
        after = t.get("after") or ()
        out[event, src] = (after,) if isinstance(after, str) else tuple(after)
    return out
