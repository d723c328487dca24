"""The demo restaurant's booking book behind the ``book_table`` tool (pure, deterministic, no I/O).

``run_booking_tool`` is the rule (opening hours, party size, a reference derived from the request);
``BookingBook`` is one session's in-memory book: every successful booking is recorded under its
reference, the n-th booking of a session gets a reference derived from ``n`` too (two identical
requests are two bookings), and the book keeps at most ``max_entries`` (a long session stays bounded).
The session's ``ToolExecutor`` (actors/agent/tools.py) calls ``BookingBook.book`` at most once per call id.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from vani.adapters.base import ToolSpec

BOOKING_TOOL = ToolSpec(
    name="book_table",
    description="Book a table at the Saffron Table. Returns a reference or an alternative time.",
    parameters={
        "type": "object",
        "properties": {
            "party_size": {"type": "integer", "minimum": 1, "maximum": 12},
            "time": {"type": "string", "description": "24 h time, HH:MM"},
            "day": {"type": "string", "description": "today, tomorrow or a weekday"},
            "name": {"type": "string", "description": "the guest's name (optional)"},
        },
        "required": ["party_size", "time"],
    },
)

OPEN_FROM, LAST_SEATING, MAX_PARTY = "17:00", "21:30", 8


def run_booking_tool(arguments: dict[str, Any], salt: str = "") -> dict[str, Any]:
    """The booking rule: ``booked`` with a reference, or ``unavailable`` with a reason (and an alternative)."""
    try:
        size = int(arguments.get("party_size") or 0)
    except (TypeError, ValueError):
        size = 0
    time = str(arguments.get("time") or "")
    day = str(arguments.get("day") or "today")
    if size < 1:
        return {"status": "unavailable", "reason": "I need to know how many people"}
    if size > MAX_PARTY:
        return {"status": "unavailable", "reason": f"parties of more than {MAX_PARTY} call us"}
    if not (OPEN_FROM <= time <= LAST_SEATING):
        return {"status": "unavailable", "reason": "outside opening hours", "alternative": "19:00"}
    ref = "ST-" + hashlib.sha1(f"{salt}{size}|{time}|{day}".encode()).hexdigest()[:4].upper()
    booking = {"status": "booked", "party_size": size, "time": time, "day": day, "reference": ref}
    if arguments.get("name"):
        booking["name"] = str(arguments["name"])[:64]
    return booking


class BookingBook:
    """One session's bookings, by reference (bounded: the oldest are forgotten past ``max_entries``)."""

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self.bookings: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.count = 0  # successful bookings made by this book, ever

    async def book(self, arguments: dict[str, Any]) -> dict[str, Any]:
        result = run_booking_tool(arguments, salt=f"{self.count}|" if self.count else "")
        if result["status"] == "booked":
            self.count += 1
            self.bookings[result["reference"]] = result
            while len(self.bookings) > self.max_entries:
                self.bookings.popitem(last=False)
        return result
