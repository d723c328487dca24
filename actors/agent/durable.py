"""An agent conversation's durable state: what a session store keeps of it, and taking it back.

Kept: the history as the LLM sees it (tool calls and results included), the stats, the next turn id, and
the turn in flight (its user text and what of the reply was heard). Not kept: audio, provider streams,
timers: a recovered conversation starts idle. The turn that was in flight when the host died is not
repeated: it joins the history as an interrupted reply (cut to what was heard, as a barge-in would) and the
first ``session.started`` reports it (``interrupted_turn``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vani.adapters.base import ChatMessage, ToolCall

if TYPE_CHECKING:
    from vani.actors.agent.conversation import Conversation


def message_to_dict(m: ChatMessage) -> dict[str, Any]:
    d: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_call_id is not None:
        d["tool_call_id"] = m.tool_call_id
    if m.tool_calls:
        d["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls]
    return d


def message_from_dict(d: dict[str, Any]) -> ChatMessage:
    calls = [ToolCall(str(c["id"]), str(c["name"]), dict(c["arguments"])) for c in d.get("tool_calls", [])]
    return ChatMessage(str(d["role"]), str(d.get("content", "")), d.get("tool_call_id"), calls)


def capture(conv: Conversation) -> dict[str, Any]:
    turn = conv.turn
    in_flight = None
    if turn is not None and not turn.done and not turn.speculative:
        # What has played by now (the reply is cut here if the host dies), not the whole text so far.
        in_flight = {"turn_id": turn.turn_id, "user_text": turn.user_text, "heard": turn.playback.heard_text()}
    return {
        "history": [message_to_dict(m) for m in conv.history],
        "stats": dict(conv.stats),
        "next_turn_id": conv.turns.next_id,
        "in_flight": in_flight,
    }


def restore(conv: Conversation, state: dict[str, Any]) -> dict[str, Any]:
    """Take ``state`` back into a new, idle conversation; returns ``session.started``'s additions."""
    for m in state.get("history", []):
        conv.history.append(message_from_dict(m))
    for k, v in state.get("stats", {}).items():
        if k in conv.stats:
            conv.stats[k] = int(v)
    conv.turns.next_id = max(conv.turns.next_id, int(state.get("next_turn_id", 1)))
    turn = state.get("in_flight")
    if not isinstance(turn, dict):
        return {}
    heard = str(turn.get("heard", ""))
    conv.history.append(ChatMessage("assistant", f"{heard} [interrupted]".strip()))
    conv.stats["interrupted"] += 1
    return {
        "interrupted_turn": {
            "turn_id": int(turn["turn_id"]),
            "user_transcript": str(turn.get("user_text", "")),
            "heard": heard,
        }
    }
