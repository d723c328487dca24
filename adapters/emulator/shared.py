"""The script store shared by the emulator's worker processes (``VANI_EMULATOR_WORKERS`` > 1).

Why a shared store: N worker processes accept on one port, so the kernel picks the process of each
connection. A test or benchmark posts ``/__emulator/scripts/{key}`` to one of them, and vani's Flux,
LLM and TTS connections for that session (``x-emulator-key: {key}``) land on any of them, possibly a
different one for each connection (a Flux reconnect, every LLM request). For the emulator to behave as
one provider (protocol-faithful: the transcript cursor moves once per EndOfTurn whoever serves the
next connection, a queued fault is consumed by exactly one connection, the log shows every
connection), the script's state lives in one place all workers read and write: a SQLite file in
``/dev/shm`` (WAL, no fsync). The other designs were worse: a port per worker needs one base URL per
session (vani has one per provider) or a front proxy (an extra hop whose CPU would be counted as the
emulator's); routing by key needs the HTTP head read before the kernel chose a process.

Cost: one local SQLite statement (tens of microseconds) when a connection opens, per EndOfTurn and
per logged event; the audio path does not touch it. The unkeyed ``default`` script stays per
process (nobody can read its log across workers meaningfully; it is shared by every unkeyed session).
One worker (the default, and what the tests use) keeps the in-memory ``control.Store``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from typing import Any

from vani.adapters.emulator.control import Script, Store

ENV = "VANI_EMULATOR_STORE"  # path of the shared SQLite file; set by ``vani emulate`` for N workers
LOG_CAP = 2000  # entries kept per key, as ``Script.record``

SCHEMA = """
CREATE TABLE IF NOT EXISTS scripts (key TEXT PRIMARY KEY, body TEXT NOT NULL, turns_done INTEGER NOT NULL,
                                    faults TEXT NOT NULL, nlog INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS log (key TEXT NOT NULL, entry TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS log_key ON log (key);
"""


def new_store_path() -> str:
    """A fresh store file in shared memory (tmpfs) when the box has it."""
    where = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix="vani-emulator-", suffix=".sqlite", dir=where)
    os.close(fd)
    return path


def _db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.executescript(SCHEMA)
    return db


class SharedScript(Script):
    """A ``Script`` whose cursor and log live in the shared file (its static fields are a snapshot)."""

    def __init__(self, db: sqlite3.Connection, key: str, base: Script) -> None:
        super().__init__(**{k: v for k, v in base.__dict__.items() if k not in ("turns_done", "log")})
        object.__setattr__(self, "_db", db)
        object.__setattr__(self, "_key", key)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "turns_done" and hasattr(self, "_db"):
            self._db.execute("UPDATE scripts SET turns_done = ? WHERE key = ?", (value, self._key))
        else:
            object.__setattr__(self, name, value)

    def __getattribute__(self, name: str) -> Any:
        if name == "turns_done" and "_db" in object.__getattribute__(self, "__dict__"):
            row = self._db.execute("SELECT turns_done FROM scripts WHERE key = ?", (self._key,)).fetchone()
            return row[0] if row else 0
        return object.__getattribute__(self, name)

    def record(self, service: str, event: str, **data: Any) -> None:
        entry = json.dumps({"service": service, "event": event, "t": time.monotonic(), **data})
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.execute(
                "UPDATE scripts SET nlog = nlog + 1 WHERE key = ? AND nlog < ?", (self._key, LOG_CAP)
            )
            if cur.rowcount:
                self._db.execute("INSERT INTO log (key, entry) VALUES (?, ?)", (self._key, entry))


class SharedStore(Store):
    """``Store`` over the shared SQLite file: ``put``/``state``/``delete`` and ``conn`` see every worker's writes."""

    def __init__(self, path: str, latency: Any = None) -> None:
        super().__init__(latency)
        self.db = _db(path)

    def put(self, key: str, script: Script) -> None:
        body = {k: v for k, v in script.__dict__.items() if k not in ("turns_done", "log", "faults")}
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM log WHERE key = ?", (key,))
            self.db.execute(
                "INSERT OR REPLACE INTO scripts (key, body, turns_done, faults, nlog) VALUES (?, ?, 0, ?, 0)",
                (key, json.dumps(body), json.dumps(script.faults)),
            )

    def delete(self, key: str) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM scripts WHERE key = ?", (key,))
            self.db.execute("DELETE FROM log WHERE key = ?", (key,))

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM scripts").fetchone()[0])

    def state(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT turns_done, faults FROM scripts WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        log = [json.loads(e) for (e,) in self.db.execute("SELECT entry FROM log WHERE key = ? ORDER BY rowid", (key,))]
        return {"turns_done": row[0], "faults": json.loads(row[1]), "log": log}

    def script_for(self, key: str, service: str) -> tuple[Script, str | None]:
        """The key's script and the fault spec this connection consumes (popped atomically across workers)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT body, faults FROM scripts WHERE key = ?", (key,)).fetchone()
            if row is None:
                return self.default, None
            faults: dict[str, list[str]] = json.loads(row[1])
            spec = faults[service].pop(0) if faults.get(service) else None
            if spec is not None:
                self.db.execute("UPDATE scripts SET faults = ? WHERE key = ?", (json.dumps(faults), key))
        return SharedScript(self.db, key, Script(**json.loads(row[0]), faults=faults)), spec
