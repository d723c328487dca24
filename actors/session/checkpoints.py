"""A session host's writes to the session store: batched, off the audio path, retried through outages.

Sessions mark themselves (``save``) at turn boundaries and on suspend: a dict assignment, never an await. One
task per host (``run``) builds the marked sessions' records every ``FLUSH_EVERY_S`` and writes them in one
batch (a record is always its session's latest state, built once however often it was marked), and pushes
the expiry of every live session's record every ``TOUCH_EVERY_S``. When the store fails, the batch stays
pending (a newer mark replaces it), the failure is counted and logged once per outage, sessions keep running
in memory, and the writes go out when the store is back.

It also appends each session's event log (``event_log.EventLog.unwritten``) to the store every
``LOG_EVERY_S``: one chunk (the new lines joined) per session, so a store's cost is per write, not per line
(one line per 20 ms frame is ~60 lines a second). The store keeps a session's last ``log_keep //
LINES_PER_WRITE`` writes, about as many lines as the ring; a log waits in its ring through an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from vani.actors.session.event_log import EventLog
from vani.actors.store.base import SessionStore, StoreError
from vani.actors.store.record import RecordError, SessionRecord

log = logging.getLogger("vani.store")

FLUSH_EVERY_S = 0.2
LOG_EVERY_S = 1.0  # event log lines are many and small: fewer, larger appends
LINES_PER_WRITE = 50  # about a second of a session's log (50 inbound frames, outbound audio, events)
TOUCH_EVERY_S = 30.0
RETRY_MAX_S = 5.0
# A record outlives its session's TTL by this much, so a host that crashed just before a touch is covered.
EXPIRY_MARGIN_S = 2 * TOUCH_EVERY_S

_DELETE = None  # a pending delete
Build = Callable[[], SessionRecord]


class Checkpointer:
    def __init__(
        self,
        store: SessionStore,
        ttl_s: float,
        live: Callable[[], list[str]],
        on_error: Callable[[str], None] = lambda op: None,
        on_written: Callable[[int, int], None] = lambda n, size: None,
        log_keep: int = 0,
    ) -> None:
        self.store = store
        self.keep_s = ttl_s + EXPIRY_MARGIN_S
        self._live = live  # the session ids this host holds now (touched)
        self._on_error, self._on_written = on_error, on_written
        self.pending: dict[str, Build | None] = {}
        self.log_keep = log_keep  # 0: event logs are not stored
        self._log_writes_kept = max(1, log_keep // LINES_PER_WRITE)
        self.logs: dict[str, EventLog] = {}
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # one batch at a time: an older batch never lands after a newer one
        self.failing = False  # in an outage now (for status and the log line)
        self.writes = self.errors = self.bytes = self.log_lines = 0

    # ------------------------------------------------------------------ from sessions (never await)
    def save(self, session_id: str, build: Build, events: EventLog | None = None) -> None:
        """Write the session's state (``build()`` at the next flush), and from now on its event log."""
        self.pending[session_id] = build
        if events is not None and events.enabled and self.log_keep > 0:
            self.logs[session_id] = events

    def forget(self, session_id: str) -> None:
        """The session ended for good (close or TTL): its record and its log go too."""
        self.pending[session_id] = _DELETE
        self.logs.pop(session_id, None)
        self._wake.set()

    def stats(self) -> dict[str, object]:
        return {
            "kind": self.store.kind,
            "failing": self.failing,
            "writes": self.writes,
            "bytes": self.bytes,
            "errors": self.errors,
            "pending": len(self.pending),
            "log_lines": self.log_lines,
        }

    # ------------------------------------------------------------------ reads
    async def load(self, session_id: str) -> SessionRecord | None:
        """The session's last saved state (a pending one first), None when there is none.

        Raises ``StoreError`` when the store cannot answer, ``RecordError`` when the record is unusable."""
        if session_id in self.pending:
            build = self.pending[session_id]
            return None if build is None else build()
        raw = await self.store.get(session_id)
        if raw is None:
            return None
        record = SessionRecord.loads(raw)
        if record.session_id != session_id:
            raise RecordError(f"stored state for {session_id!r} names session {record.session_id!r}")
        return record

    # ------------------------------------------------------------------ the writer task
    async def run(self) -> None:
        delay, last_touch, last_logs = FLUSH_EVERY_S, time.monotonic(), time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            logs = time.monotonic() - last_logs >= LOG_EVERY_S
            try:
                ok = await self.flush(logs)
            except Exception:  # a bug must not end the writer: every later checkpoint would be lost with it
                log.exception("checkpoint writer")
                ok = False
            if logs and ok:
                last_logs = time.monotonic()
            if ok and time.monotonic() - last_touch >= TOUCH_EVERY_S:
                ok = await self._touch()
                last_touch = time.monotonic()
            delay = FLUSH_EVERY_S if ok else min(RETRY_MAX_S, delay * 2)

    async def flush(self, logs: bool = True) -> bool:
        async with self._flushing:
            ok = await self._flush()
            return await self._append_logs() if ok and logs else ok

    async def _append_logs(self) -> bool:
        batch: dict[str, str] = {}
        marks: dict[str, tuple[EventLog, int]] = {}
        lines = 0
        for sid, events in self.logs.items():
            new, mark = events.unwritten()
            if new:
                batch[sid], marks[sid] = "\n".join(new), (events, mark)
                lines += len(new)
        if not batch:
            return True
        try:
            await self.store.append_logs(batch, self._log_writes_kept, time.time() + self.keep_s)
        except StoreError as exc:
            self._failed("log", exc)  # the lines stay unwritten in their rings: the next append takes them
            return False
        for events, mark in marks.values():
            events.stored(mark)
        size = sum(len(chunk) for chunk in batch.values())
        self.bytes += size
        self.log_lines += lines
        self._on_written(0, size)
        self._recovered()
        return True

    async def read_log(self, session_id: str) -> list[str]:
        """The session's stored event log (its runs), with this host's unwritten lines appended."""
        lines = await self.store.read_log(session_id)
        events = self.logs.get(session_id)
        return lines + (events.unwritten()[0] if events is not None else [])

    async def _flush(self) -> bool:
        if not self.pending:
            return True
        batch, self.pending = self.pending, {}
        puts: dict[str, str] = {}
        for sid, build in batch.items():
            if build is not None:
                try:
                    puts[sid] = build().dumps()
                except Exception:  # a bug in one session's state must not stop the others' writes
                    log.exception("checkpoint of session %s could not be built", sid)
        deletes = [sid for sid, build in batch.items() if build is None]
        try:
            if puts:
                await self.store.put_many(puts, time.time() + self.keep_s)
                size = sum(len(r) for r in puts.values())
                self.bytes += size
                self._on_written(len(puts), size)
            if deletes:
                await self.store.delete_many(deletes)
        except StoreError as exc:
            for sid, rec in batch.items():  # anything saved meanwhile is newer: it wins
                self.pending.setdefault(sid, rec)
            self._failed("write", exc)
            return False
        self.writes += len(puts) + len(deletes)
        self._recovered()
        return True

    async def _touch(self) -> bool:
        live = self._live()
        if not live:
            return True
        try:
            await self.store.touch_many(live, time.time() + self.keep_s)
        except StoreError as exc:
            self._failed("touch", exc)
            return False
        return True

    def _failed(self, op: str, exc: Exception) -> None:
        self.errors += 1
        self._on_error(op)
        if not self.failing:
            log.warning("session store unavailable (%s): %s; sessions go on in memory, writes are retried", op, exc)
        self.failing = True

    def _recovered(self) -> None:
        if self.failing:
            log.warning("session store is back; pending checkpoints written")
        self.failing = False

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.flush()
        with contextlib.suppress(Exception):
            await self.store.close()
