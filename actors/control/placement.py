"""Where a session lives: rendezvous (highest-random-weight) hashing over live hosts.

Adding a host moves only the sessions whose top-scoring host is the new one (about 1/N of new
placements); removing one moves only its own sessions. Existing sessions never move: the registry
remembers where each live session is, and only new sessions are hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def score(session_id: str, host: str) -> int:
    digest = hashlib.blake2b(f"{session_id}\x00{host}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def choose_host(session_id: str, hosts: Iterable[str]) -> str | None:
    """The host with the highest score for ``session_id``; None when there are no hosts."""
    best: tuple[int, str] | None = None
    for h in hosts:
        s = score(session_id, h)
        if best is None or (s, h) > best:
            best = (s, h)
    return None if best is None else best[1]


def host_name(app: str, node_id: str, index: int) -> str:
    return f"{app}-host-{node_id[:12]}-{index}"


def session_actor_name(app: str, session_id: str) -> str:
    return f"{app}-session-{session_id}"


def registry_name(app: str) -> str:
    return f"{app}-registry"
