"""Authenticating gateway -> session host links: challenge-response over a secret per deployment.

``vani.cluster.run.deploy`` creates the secret; it reaches the registry, the session hosts (constructor
arguments at spawn) and the gateway replicas (a call to the registry) only through Ray, never in a URL,
a header or a log line. When a link connects, the host sends ``link.challenge`` with a fresh random
nonce; the gateway answers with ``link.open`` carrying that ``nonce`` and ``mac`` =
HMAC-SHA256(secret, canonical JSON of the message without ``mac``). The MAC covers the nonce and every
field, so a captured ``link.open`` is worthless on any other connection (its nonce is not that
connection's) and cannot be altered. Checks run in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

SECRET_BYTES = 32
NONCE_BYTES = 32
HANDSHAKE_TIMEOUT_S = 10.0  # from challenge to link.open; the gateway answers at once (loopback RTT)


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def challenge(nonce: str) -> str:
    return json.dumps({"type": "link.challenge", "nonce": nonce}, separators=(",", ":"))


def _canonical(message: dict[str, Any]) -> bytes:
    return json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _mac(secret: bytes, message: dict[str, Any]) -> str:
    return hmac.new(secret, _canonical(message), hashlib.sha256).hexdigest()


def sign(secret: bytes, nonce: str, message: dict[str, Any]) -> str:
    """The ``link.open`` text answering challenge ``nonce``."""
    signed = {**message, "nonce": nonce}
    signed["mac"] = _mac(secret, signed)
    return json.dumps(signed, separators=(",", ":"), allow_nan=False)


def verify(secret: bytes, nonce: str, raw: str | bytes) -> dict[str, Any] | None:
    """The ``link.open`` body (without ``nonce`` and ``mac``) if ``raw`` answers ``nonce`` with a valid MAC."""
    if not isinstance(raw, str):
        return None
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or message.get("type") != "link.open":
        return None
    mac, got_nonce = message.pop("mac", None), message.get("nonce")
    if not isinstance(mac, str) or not isinstance(got_nonce, str):
        return None
    try:
        expected = _mac(secret, message)
    except ValueError:  # NaN / Infinity: not canonical JSON
        return None
    # Both compared, both in constant time: a stale nonce and a wrong MAC look the same from outside.
    fresh = hmac.compare_digest(got_nonce.encode(), nonce.encode())
    genuine = hmac.compare_digest(mac.encode(), expected.encode())
    if not (fresh and genuine):
        return None
    del message["nonce"]
    return message
