"""Sessions' durable state in a SQLite file (one per app and node; the hosts of a node share it).

SQLite's calls block, so they run on one thread of this store's own (never on the host's event loop), which
also serialises them. WAL mode lets the node's hosts write the same file at once; ``busy_timeout`` waits out
another host's write instead of failing. The directory is created private (0700), the file 0600: it holds
what users said.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vani.actors.store.base import StoreError

TRIM_EVERY = 10
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, record TEXT NOT NULL, expires REAL NOT NULL)",
    # Event log writes (a chunk of lines each), in rowid order per session; they live as long as the session's
    # record (deleted with it, expired with it).
    "CREATE TABLE IF NOT EXISTS event_log (id TEXT NOT NULL, chunk TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS event_log_id ON event_log (id)",
)


def private_dir(directory: str) -> None:
    """Refuse a directory someone else could read or plant files in (the default is under the shared /tmp)."""
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError(f"{directory} must be a directory of this user, mode 0700 (is {stat.S_IMODE(st.st_mode):o})")


class SqliteStore:
    kind = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vani-sqlite")
        self._db: sqlite3.Connection | None = None
        self._writes: dict[str, int] = {}  # event log writes per session (used on the store's one thread only)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            directory = os.path.dirname(self.path)
            os.makedirs(directory, mode=0o700, exist_ok=True)
            private_dir(directory)
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
            os.close(fd)
            db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash; a power cut may lose the last
            for statement in SCHEMA:
                db.execute(statement)
            self._db = db
        return self._db

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite {self.path}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"sqlite {self.path}: {exc}") from exc

    def _put(self, records: dict[str, str], expires_at: float) -> None:
        db = self._conn()
        with db:
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO sessions (id, record, expires) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET record = excluded.record, expires = excluded.expires",
                [(sid, rec, expires_at) for sid, rec in records.items()],
            )
            # Records of sessions that crashed and never came back: gone once expired, and their logs.
            if db.execute("DELETE FROM sessions WHERE expires < ?", (time.time(),)).rowcount:
                db.execute("DELETE FROM event_log WHERE id NOT IN (SELECT id FROM sessions)")

    def _get(self, session_id: str) -> str | None:
        row = (
            self._conn()
            .execute("SELECT record FROM sessions WHERE id = ? AND expires >= ?", (session_id, time.time()))
            .fetchone()
        )
        return None if row is None else row[0]

    def _delete(self, session_ids: list[str]) -> None:
        db = self._conn()
        with db:
            db.execute("BEGIN")
            db.executemany("DELETE FROM sessions WHERE id = ?", [(s,) for s in session_ids])
            db.executemany("DELETE FROM event_log WHERE id = ?", [(s,) for s in session_ids])
            for sid in session_ids:
                self._writes.pop(sid, None)

    def _touch(self, session_ids: list[str], expires_at: float) -> None:
        db = self._conn()
        with db:
            db.execute("BEGIN")
            db.executemany("UPDATE sessions SET expires = ? WHERE id = ?", [(expires_at, s) for s in session_ids])

    def _append(self, chunks: dict[str, str], keep: int) -> None:
        db = self._conn()
        with db:
            db.execute("BEGIN")
            db.executemany("INSERT INTO event_log (id, chunk) VALUES (?, ?)", list(chunks.items()))
            for sid in chunks:
                # Trimmed every TRIM_EVERY writes of a session, not each: the query walks its last ``keep``.
                self._writes[sid] = n = self._writes.get(sid, 0) + 1
                if n % TRIM_EVERY == 0:
                    db.execute(
                        "DELETE FROM event_log WHERE id = ? AND rowid <= "
                        "(SELECT rowid FROM event_log WHERE id = ? ORDER BY rowid DESC LIMIT 1 OFFSET ?)",
                        (sid, sid, keep),
                    )

    def _read_log(self, session_id: str) -> list[str]:
        rows = self._conn().execute(
            "SELECT chunk FROM event_log WHERE id = ? AND EXISTS "
            "(SELECT 1 FROM sessions WHERE id = ? AND expires >= ?) ORDER BY rowid",
            (session_id, session_id, time.time()),
        )
        return [line for (chunk,) in rows for line in chunk.split("\n")]

    async def put_many(self, records: dict[str, str], expires_at: float) -> None:
        await self._run(self._put, records, expires_at)

    async def get(self, session_id: str) -> str | None:
        return await self._run(self._get, session_id)

    async def delete_many(self, session_ids: list[str]) -> None:
        await self._run(self._delete, session_ids)

    async def touch_many(self, session_ids: list[str], expires_at: float) -> None:
        await self._run(self._touch, session_ids, expires_at)

    async def append_logs(self, chunks: dict[str, str], keep: int, expires_at: float) -> None:
        await self._run(self._append, chunks, keep)

    async def read_log(self, session_id: str) -> list[str]:
        return await self._run(self._read_log, session_id)

    async def close(self) -> None:
        def _close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(_close)
        self._pool.shutdown(wait=False)
