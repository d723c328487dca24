"""Fault injection specs, chosen per connection.

A spec is a ``;``- or ``,``-separated list of ``name=value`` (or bare ``name`` for flags), e.g.
``drop_after=3;slow_start_ms=200``. "Units" are what the service emits: Flux messages after
``Connected``, LLM tokens, TTS audio chunks.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields
from typing import Any


@dataclass
class Fault:
    status: int | None = None  # answer the request / handshake with this HTTP status
    retry_after: float | None = None  # with status=429: Retry-After header
    drop_after: int | None = None  # drop the TCP connection (no close frame) after N units
    drop_after_ms: int | None = None  # ... or N ms after the connection opened
    stall_after: int | None = None  # stop sending (but keep the socket open) after N units
    stall_ms: int = 3_600_000  # how long a stall lasts
    malformed_after: int | None = None  # send one malformed frame after N units
    error_after: int | None = None  # Flux: fatal {"type":"Error"} after N units, then close
    slow_start_ms: int = 0  # delay before the handshake / response headers
    mp3_quirk: bool = False  # Workers AI Aura: return MP3 whatever encoding was asked for
    no_type: bool = False  # Workers AI Flux: omit "type" from TurnInfo frames
    unknown: bool = False  # add unknown message types and extra fields (clients must ignore them)
    split: bool = False  # split SSE frames across writes at odd byte offsets

    @property
    def clean(self) -> bool:
        return self == Fault()


_FIELDS = {f.name: f for f in fields(Fault)}


def parse_fault(spec: str | None) -> Fault:
    """Parse a spec string; unknown names raise ``ValueError`` so typos are not silently clean."""
    fault = Fault()
    if not spec:
        return fault
    for part in spec.replace(",", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, raw = part.partition("=")
        name = name.strip()
        if name not in _FIELDS:
            raise ValueError(f"unknown fault {name!r}")
        kind = str(_FIELDS[name].type)
        value: Any
        if kind.startswith("bool"):
            value = raw.strip().lower() not in {"0", "false", "no", "off"}
        elif kind.startswith("float"):
            value = float(raw)
        else:
            value = int(raw)
        setattr(fault, name, value)
    return fault


def merge(a: Fault, b: Fault) -> Fault:
    """``b``'s non-default fields over ``a``."""
    out = Fault(**a.__dict__)
    default = Fault()
    for name in _FIELDS:
        if getattr(b, name) != getattr(default, name):
            setattr(out, name, getattr(b, name))
    return out


class UnitCounter:
    """Counts emitted units and says what the fault wants done before the next one."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.sent = 0

    def action(self) -> str | None:
        """``drop`` | ``stall`` | ``malformed`` | ``error`` | None, checked before sending a unit."""
        f, n = self.fault, self.sent
        if f.drop_after is not None and n >= f.drop_after:
            return "drop"
        if f.error_after is not None and n == f.error_after:
            return "error"
        if f.stall_after is not None and n == f.stall_after:
            return "stall"
        if f.malformed_after is not None and n == f.malformed_after:
            return "malformed"
        return None

    async def stall(self) -> None:
        await asyncio.sleep(self.fault.stall_ms / 1000)
        self.fault.stall_after = None  # stall once


def abort_transport(receive: Any, hard: bool = False) -> bool:
    """Drop the TCP connection under an ASGI connection: no WebSocket close frame, no final HTTP chunk.

    ASGI has no "abort" message; uvicorn's ``receive`` is a bound method of the protocol (WebSocket)
    or request cycle (HTTP), both of which hold the asyncio transport. By default the bytes already
    written are flushed first (TCP FIN), so what the emulator counts as sent was really delivered and
    per-session scripts stay deterministic; ``hard=True`` resets at once, losing buffered bytes.
    Returns False if no transport was found.
    """
    owner = getattr(receive, "__self__", None)
    transport = getattr(owner, "transport", None)
    if transport is None:
        return False
    if hard:
        transport.abort()
    else:
        transport.close()
    return True


def half_close(receive: Any) -> bool:
    """Flush, then send FIN while still reading: a WebSocket "drop" without a close frame.

    Closing a socket that has unread client data makes the kernel send RST, and an RST makes the
    client's kernel discard frames it already received but the client has not read yet, so the client
    would lose messages the emulator counted as sent. The caller must keep reading (and stop writing)
    until the client goes away.
    """
    owner = getattr(receive, "__self__", None)
    transport = getattr(owner, "transport", None)
    if transport is None:
        return False
    if transport.can_write_eof():
        transport.write_eof()
    else:
        transport.close()
    return True


async def drain(ws: Any, limit_s: float = 10.0) -> None:
    """Read and discard until the client disconnects (after ``half_close``), then close for good."""
    import contextlib

    with contextlib.suppress(Exception):
        async with asyncio.timeout(limit_s):
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass
    abort_transport(ws._receive)
