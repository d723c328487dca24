"""Bounded parsing of a client's JSON text frame: size, nesting depth and finite numbers.

Client messages are small flat objects (``ping``, ``playback``, Flux ``Configure``...). Anything far
outside that shape is hostile or broken and gets a clear error instead of reaching code that would
choke on it: ``json.loads`` raises ``RecursionError`` (not ``ValueError``) past ~1000 levels, and
Python's ``json`` accepts ``NaN`` / ``Infinity`` / ``1e999``, which are not JSON and would be echoed
back (``pong``) as invalid JSON. Used by the gateway (validation) and the session (re-parse).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

MAX_TEXT_BYTES = 65536  # a control message is tens of bytes; Flux `Configure` with keyterms a few KB
MAX_DEPTH = 16  # vani's messages nest at most 2 levels


class ClientJsonError(ValueError):
    """A client text frame vani refuses; ``code`` is the client-visible error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _refuse_constant(name: str) -> Any:
    raise ClientJsonError("bad_json", f"numbers must be finite JSON numbers, not {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise ClientJsonError("bad_json", f"numbers must be finite JSON numbers, not {text[:32]}")
    return value


def _depth(obj: Any) -> int:
    """Nesting depth of a parsed value (iterative: no recursion on hostile input)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse(text: str) -> Any:
    """Parse one client text frame; raises ``ClientJsonError`` with the code the client gets."""
    if len(text) > MAX_TEXT_BYTES or len(text.encode()) > MAX_TEXT_BYTES:
        raise ClientJsonError("message_too_large", f"text frames are limited to {MAX_TEXT_BYTES} bytes")
    try:
        obj = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ClientJsonError:
        raise
    except RecursionError:
        raise ClientJsonError("bad_json", f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        raise ClientJsonError("bad_json", "text frames must be JSON objects") from None
    if _depth(obj) > MAX_DEPTH:
        raise ClientJsonError("bad_json", f"JSON nested deeper than {MAX_DEPTH} levels")
    return obj


def parse_message(text: str) -> dict[str, Any]:
    """``parse`` plus the shape every client message has: an object with a string ``type``."""
    obj = parse(text)
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ClientJsonError("bad_message", "JSON messages need a string 'type'")
    return obj


def check(text: str, client_types: frozenset[str]) -> tuple[str, str] | None:
    """``None`` if ``text`` is a message the route accepts, else ``(code, message)`` for an ``error``."""
    try:
        kind = parse_message(text)["type"]
    except ClientJsonError as exc:
        return (exc.code, exc.message)
    if kind not in client_types:
        return ("unknown_type", f"unknown message type {kind[:64]!r}; expected one of {sorted(client_types)}")
    return None
