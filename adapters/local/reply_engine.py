"""The local reply engine: a small deterministic dialogue engine, NOT a language model.

It plays one demo persona, the host of a restaurant ("the Saffron Table"): it answers opening
hours, directions and menu questions, books a table by filling three slots (party size, time, day)
over several turns, and books only through the tool (``book_table``, executed by the session's
``ToolExecutor``) when the slots are complete: it never claims a booking it did not make. It reads
the whole conversation from ``messages`` on every call, so it holds no state of its own and the
same messages always give the same reply. It streams its reply word by word with a small delay,
like an LLM, so the pipeline (TTS per clause, barge-in cancelling the stream) is exercised.

For a real local LLM, point the OpenAI-compatible provider at llama.cpp server, Ollama or vLLM.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from vani.adapters.base import ChatMessage, LlmDone, LlmEvent, LlmToken, LlmToolCall, ToolCall, ToolSpec
from vani.adapters.local.booking import BOOKING_TOOL, run_booking_tool
from vani.adapters.local.dialogue import Slots, intents, parse_slots

__all__ = ["BOOKING_TOOL", "ReplyEngine", "plan_reply", "run_booking_tool"]


def say_time(hhmm: str) -> str:
    h, m = (int(x) for x in hhmm.split(":"))
    suffix = "pm" if h >= 12 else "am"
    h12 = h - 12 if h > 12 else (12 if h == 0 else h)
    return f"{h12}{':' + f'{m:02d}' if m else ''} {suffix}"


FAQ = {
    "hours": "We're open from five to ten in the evening, Tuesday to Sunday.",
    "location": "We're at 12 Harbour Street, next to the old post office. There's free parking behind us.",
    "menu": "We cook Indian home food, with plenty of vegetarian and vegan dishes, and gluten-free options.",
}
GREETING = (
    "Hello, this is the Saffron Table. I can book you a table, or tell you our hours and where we are. How can I help?"
)
NO_BOOKING_TOOL = "Sorry, I can't take bookings right now. Please call us, or ask me about our hours and menu."
FALLBACK = (
    "Sorry, I can only help with table bookings, opening hours, directions and the menu. "
    "Would you like to book a table?"
)


def _booking_state(messages: list[ChatMessage]) -> tuple[bool, Slots]:
    """Whether a booking is in progress since the last tool result, and the slots heard so far."""
    active, slots = False, Slots()
    for msg in messages:
        if msg.role == "tool":
            active, slots = False, Slots()
        elif msg.role == "user":
            found = parse_slots(msg.content)
            if "book" in intents(msg.content) or found.party_size or found.time:
                active = True
            slots = slots.merge(found)
    return active, slots


def _reply_to_tool(result_text: str) -> str:
    try:
        result = json.loads(result_text)
    except (TypeError, ValueError):
        return "Sorry, I couldn't reach the booking book just now. Could you try again in a moment?"
    if result.get("status") == "booked":
        people = "person" if result.get("party_size") == 1 else "people"
        return (
            f"You're booked: a table for {result.get('party_size')} {people} {result.get('day', 'today')} "
            f"at {say_time(result.get('time', '19:00'))}. Your reference is {result.get('reference')}. "
            "Anything else?"
        )
    alt = result.get("alternative")
    tail = f" I could do {say_time(alt)} instead, if that suits you." if alt else ""
    return f"Sorry, I can't book that: {result.get('reason', 'no table free')}.{tail}"


def _call_id(messages: list[ChatMessage], args: dict[str, Any]) -> str:
    """Deterministic per conversation point: a replayed request gets the same id (the executor runs it
    once), a new booking later in the session (longer conversation) gets a new one."""
    convo = [(m.role, m.content, m.tool_call_id) for m in messages]
    digest = hashlib.sha1(json.dumps([convo, args], sort_keys=True).encode()).hexdigest()[:12]
    return f"call_{digest}"


def plan_reply(messages: list[ChatMessage], tool: ToolSpec | None) -> tuple[str, ToolCall | None]:
    """Decide the reply text and optional tool call for ``messages`` (pure, deterministic)."""
    last = messages[-1] if messages else ChatMessage("user", "")
    if last.role == "tool":
        return _reply_to_tool(last.content), None
    text = last.content if last.role == "user" else ""
    found = intents(text)
    active, slots = _booking_state(messages)
    faq = [FAQ[i] for i in ("hours", "location", "menu") if i in found]
    if active and "no" in found and not (slots.party_size or slots.time):
        return "No problem. Is there anything else I can help with?", None
    if active:
        prefix = " ".join(faq)
        if slots.party_size is None:
            return (prefix + " Sure. For how many people?").strip(), None
        if slots.time is None:
            return (prefix + f" A table for {slots.party_size}. What time would you like?").strip(), None
        args = {"party_size": slots.party_size, "time": slots.time, "day": slots.day or "today"}
        if tool is not None and tool.name == BOOKING_TOOL.name:
            return "One moment, let me check that for you.", ToolCall(_call_id(messages, args), tool.name, args)
        return NO_BOOKING_TOOL, None  # without the tool nothing is booked: never claim otherwise
    if faq:
        return " ".join(faq), None
    if "goodbye" in found:
        return "Thank you for calling the Saffron Table. Goodbye!", None
    if "thanks" in found:
        return "You're welcome. Anything else?", None
    if "greeting" in found or not text.strip():
        return GREETING, None
    if "no" in found:
        return "Alright. Is there anything else I can help with?", None
    return FALLBACK, None


def tokens(text: str) -> list[str]:
    """Split like an LLM stream: words with their leading space, punctuation attached."""
    return re.findall(r"\s*\S+", text)


class ReplyEngine:
    """``LlmProvider`` for the offline demo: deterministic replies streamed token by token."""

    name = "local-reply-engine"

    def __init__(self, token_delay_ms: float = 20.0) -> None:
        self.token_delay_s = max(0.0, token_delay_ms) / 1000.0

    @classmethod
    def from_settings(cls, settings: Any) -> ReplyEngine:
        return cls(float(getattr(settings, "local_reply_token_delay_ms", 20.0)))

    async def stream(self, messages: list[ChatMessage], tool: ToolSpec | None = None) -> AsyncIterator[LlmEvent]:
        """Tokens of the reply, then at most one tool call, then ``LlmDone`` (cancellable anywhere)."""
        text, call = plan_reply(messages, tool)
        after_tool = bool(messages) and messages[-1].role == "tool"
        toks = tokens((" " if after_tool else "") + text)  # continues the first round's sentence
        for i, tok in enumerate(toks):
            if self.token_delay_s and i:
                await asyncio.sleep(self.token_delay_s)
            yield LlmToken(tok)
        if call is not None:
            yield LlmToolCall(call)
        prompt = sum(len(m.content.split()) for m in messages)
        yield LlmDone(
            "tool_calls" if call else "stop",
            {"prompt_tokens": prompt, "completion_tokens": len(toks), "total_tokens": prompt + len(toks)},
        )
