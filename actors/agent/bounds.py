"""Bounded per-session structures, so a session's footprint is flat however long it runs.

- ``ContextWindow``: the conversation history sent to the LLM (after the system prompt, which is always
  sent). It keeps the most recent *turns* within a budget of ``max_turns`` user turns and ``max_chars``
  characters; the oldest whole turns are dropped first. A turn is a user message and everything after it
  up to the next user message (the assistant's reply, and any tool call with its tool result), so a tool
  call is never separated from its result. The latest turn is always kept, even over the budget.
- ``RecentTurns``: ``turn_id -> value`` for the last few (live) turns only.

Other bounds live with their owners: the transcripts kept for a Flux resume (``transcript_history_turns``),
the tool results cache (``actors/agent/tools.py``), the watchdog's fired list (``actors/agent/watchdog.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from vani.adapters.base import ChatMessage


def _chars(msg: ChatMessage) -> int:
    return len(msg.content) + sum(len(c.name) + len(str(c.arguments)) for c in msg.tool_calls)


class ContextWindow:
    """A list of ``ChatMessage`` (append / ``+=`` / iterate) trimmed to a turn and character budget."""

    def __init__(self, max_turns: int = 0, max_chars: int = 0) -> None:
        self.max_turns = max_turns  # 0 = no limit
        self.max_chars = max_chars  # 0 = no limit
        self._turns: list[list[ChatMessage]] = []
        self._chars = 0
        self.dropped_turns = 0

    def append(self, msg: ChatMessage) -> None:
        if msg.role == "user" or not self._turns:
            self._turns.append([])
        self._turns[-1].append(msg)
        self._chars += _chars(msg)
        self._trim()

    def __iadd__(self, msgs: Iterable[ChatMessage]) -> ContextWindow:
        for msg in msgs:
            self.append(msg)
        return self

    def _trim(self) -> None:
        while len(self._turns) > 1 and (
            (self.max_turns and len(self._turns) > self.max_turns) or (self.max_chars and self._chars > self.max_chars)
        ):
            dropped = self._turns.pop(0)
            self._chars -= sum(_chars(m) for m in dropped)
            self.dropped_turns += 1

    def __iter__(self) -> Iterator[ChatMessage]:
        for turn in self._turns:
            yield from turn

    def __len__(self) -> int:
        return sum(len(t) for t in self._turns)

    @property
    def turns(self) -> int:
        return len(self._turns)

    @property
    def chars(self) -> int:
        return self._chars


class RecentTurns(dict[int, float]):
    """``turn_id -> value`` for the ``keep`` highest turn ids (turn ids only grow)."""

    def __init__(self, keep: int = 4) -> None:
        super().__init__()
        self.keep = keep

    def __setitem__(self, turn_id: int, value: float) -> None:
        super().__setitem__(turn_id, value)
        if len(self) > self.keep:
            for old in sorted(self)[: len(self) - self.keep]:
                del self[old]
