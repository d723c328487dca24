"""Where sessions' durable state is kept: ``none``, ``sqlite`` (a file per node) or ``redis://...``.

``session_store`` picks the backend (``open_store``; the interface is ``base.SessionStore``). The embedded
default is SQLite: single-node ``vani up`` keeps sessions across a host crash with no extra process, but a
session can only come back on its own node. A Redis server (``VANI_SESSION_STORE=redis://host:6379/0``) is
shared by every node, so a session whose node is gone comes back on another one. Every call may raise
``StoreError``; the checkpointer (``actors/session/checkpoints.py``) counts it, keeps the state in memory and
writes it again later.
"""

from __future__ import annotations

import os
import tempfile

from vani.actors.store.base import SessionStore
from vani.cluster.config import check_store


def store_kind(setting: str) -> str:
    """``none`` | ``sqlite`` | ``redis`` (``Settings`` has refused anything else already)."""
    check_store(setting)
    return "redis" if setting not in ("none", "sqlite") else setting


def default_dir() -> str:
    return os.path.join(tempfile.gettempdir(), f"vani-sessions-{os.getuid()}")


def open_store(setting: str, directory: str, app: str, node_id: str) -> SessionStore | None:
    """The store for one session host (None when ``session_store=none``)."""
    kind = store_kind(setting)
    if kind == "none":
        return None
    if kind == "sqlite":
        from vani.actors.store.sqlite_store import SqliteStore

        return SqliteStore(os.path.join(directory or default_dir(), f"{app}-{node_id[:16]}.sqlite3"))
    from vani.actors.store.redis_store import RedisStore

    return RedisStore(setting, prefix=f"vani:{app}:session:", log_prefix=f"vani:{app}:log:")
