"""What every session store offers (``sqlite_store``, ``redis_store``), and the one error they raise."""

from __future__ import annotations

from typing import Protocol


class StoreError(Exception):
    """The store could not be reached or refused the operation (transient: retried by the caller)."""


class SessionStore(Protocol):
    kind: str

    async def put_many(self, records: dict[str, str], expires_at: float) -> None:
        """Write each session's record (JSON), to be dropped after ``expires_at`` (wall clock)."""
        ...

    async def get(self, session_id: str) -> str | None:
        """The session's record, or None when there is none (or it expired)."""
        ...

    async def delete_many(self, session_ids: list[str]) -> None:
        """Drop each session's record and its stored event log."""
        ...

    async def append_logs(self, chunks: dict[str, str], keep: int, expires_at: float) -> None:
        """Append a chunk (lines joined by newlines) to each session's stored event log, keeping about its
        last ``keep`` chunks; the log lives as long as the session's record."""
        ...

    async def read_log(self, session_id: str) -> list[str]:
        """The session's stored event log lines, oldest first ([] when there are none)."""
        ...

    async def touch_many(self, session_ids: list[str], expires_at: float) -> None:
        """Push the expiry of live sessions' records and logs (an idle session must not expire while alive)."""
        ...

    async def close(self) -> None: ...
