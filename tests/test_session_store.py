"""The session stores (actors/store/) and the checkpointer (actors/session/checkpoints.py) against real
backends: a SQLite file, and a real ``redis-server`` (Debian's package, installed by scripts/test.sh) that
this module starts on a free loopback port and stops (load/store_server.py); an outage is a real stop of it."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Iterator

import pytest

from load.store_server import PrivateRedis
from vani.actors.session.checkpoints import Checkpointer
from vani.actors.store.base import StoreError
from vani.actors.store.open_store import open_store
from vani.actors.store.record import VERSION, RecordError, SessionRecord, token_digest
from vani.actors.store.redis_store import RedisStore
from vani.actors.store.sqlite_store import TRIM_EVERY, SqliteStore
from vani.cluster.config import Settings


def record(sid: str, token: str = "tok", turns: int = 1) -> SessionRecord:
    return SessionRecord(
        session_id=sid,
        token_sha256=token_digest(token),
        mode="agent",
        request={"mode": "agent", "options": {}},
        counters={"frames_in": 3},
        engine={"history": [{"role": "user", "content": "hi"}], "stats": {"turns": turns}},
        saved_at=time.time(),
    )


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "redis"])
async def store(request, tmp_path):
    if request.param == "sqlite":
        s = SqliteStore(str(tmp_path / "store" / "app-node.sqlite3"))
        yield s
    else:
        server = request.getfixturevalue("redis_server")
        s = RedisStore(server.url, prefix=f"vani:test{os.getpid()}:session:", log_prefix=f"vani:test{os.getpid()}:log:")
        yield s
    await s.close()


async def test_records_round_trip_and_expire(store):
    await store.put_many({"a": record("a").dumps(), "b": record("b").dumps()}, time.time() + 60)
    got = SessionRecord.loads(await store.get("a"))
    assert got.session_id == "a" and got.token_matches("tok") and not got.token_matches("other")
    assert got.engine["history"] == [{"role": "user", "content": "hi"}]
    await store.put_many({"a": record("a", turns=2).dumps()}, time.time() + 60)  # newer state replaces
    assert SessionRecord.loads(await store.get("a")).engine["stats"]["turns"] == 2
    await store.delete_many(["a"])
    assert await store.get("a") is None and await store.get("b") is not None
    await store.put_many({"c": record("c").dumps(), "d": record("d").dumps()}, time.time() + 2.0)
    await store.touch_many(["c"], time.time() + 60)  # a live session's record is kept past its first expiry
    await asyncio.sleep(2.5)
    assert await store.get("c") is not None
    assert await store.get("d") is None  # never touched: gone after its expiry


async def test_event_logs_append_trim_expire_and_go_with_the_record(store):
    """A session's stored event log (actors/session/event_log.py): chunks of lines appended in order, about
    its last ``keep`` chunks kept, and living as long as its session's record: touched, deleted and expired
    with it."""
    soon, later = time.time() + 2.0, time.time() + 60
    await store.put_many({s: record(s).dumps() for s in "abcd"}, later)
    await store.append_logs({"a": "h\n1", "b": "h"}, keep=5, expires_at=later)
    for n in range(2, 13):
        await store.append_logs({"a": str(n)}, keep=5, expires_at=later)
    kept = await store.read_log("a")
    # SQLite trims every TRIM_EVERY writes, Redis at each: the newest are all there, the oldest went
    assert kept == [str(n) for n in range(13 - len(kept), 13)] and 5 <= len(kept) < 5 + TRIM_EVERY
    assert await store.read_log("b") == ["h"] and await store.read_log("none") == []
    await store.delete_many(["a"])
    assert await store.read_log("a") == [] and await store.read_log("b") == ["h"]
    await store.put_many({"c": record("c").dumps(), "d": record("d").dumps()}, soon)
    await store.append_logs({"c": "x", "d": "y"}, keep=5, expires_at=soon)
    await store.touch_many(["c"], later)
    await asyncio.sleep(2.5)
    await store.put_many({"e": record("e").dumps()}, later)  # SQLite drops expired rows on a write
    assert await store.read_log("c") == ["x"] and await store.read_log("d") == []


def test_sqlite_file_is_private(tmp_path):
    async def go() -> None:
        s = SqliteStore(str(tmp_path / "dir" / "x.sqlite3"))
        await s.put_many({"a": record("a").dumps()}, time.time() + 60)
        await s.close()

    asyncio.run(go())
    assert stat.S_IMODE(os.stat(tmp_path / "dir").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "dir" / "x.sqlite3").st_mode) == 0o600


def test_sqlite_refuses_a_directory_others_can_write(tmp_path):
    """The default directory is under the shared /tmp: one planted by someone else is never used."""
    shared = tmp_path / "planted"
    shared.mkdir()
    shared.chmod(0o777)

    async def go() -> None:
        s = SqliteStore(str(shared / "x.sqlite3"))
        with pytest.raises(StoreError, match="mode 0700"):
            await s.put_many({"a": record("a").dumps()}, time.time() + 60)
        await s.close()

    asyncio.run(go())
    assert not (shared / "x.sqlite3").exists()


def test_resume_token_is_stored_only_as_a_digest():
    raw = record("a", token="the-secret-token").dumps()
    assert "the-secret-token" not in raw and token_digest("the-secret-token") in raw


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not an object"),
        ('{"v": 99, "session_id": "a"}', "version 99"),
        ('{"v": 1, "session_id": "a"}', "missing or has a bad field"),
    ],
)
def test_bad_records_are_refused_with_a_reason(raw: str, says: str):
    with pytest.raises(RecordError, match=says):
        SessionRecord.loads(raw)
    assert VERSION == 1


def test_store_setting_is_validated_and_its_password_never_shown():
    assert open_store("none", "", "app", "node") is None
    with pytest.raises(ValueError, match="session_store must be"):
        Settings.from_dict({"session_store": "mysql://x"})
    s = Settings.from_dict({"session_store": "redis://user:hunter2@127.0.0.1:6379/0"})
    assert "hunter2" not in str(s.public()) and s.public()["session_store"] == "redis://user:***@127.0.0.1:6379/0"


async def test_checkpointer_batches_and_builds_the_latest_state(tmp_path):
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    state = {"turns": 0}
    builds = []

    def build() -> SessionRecord:
        builds.append(state["turns"])
        return record("a", turns=state["turns"])

    ck = Checkpointer(store, ttl_s=60, live=lambda: ["a"])
    for turns in range(1, 6):  # five marks between two flushes: one build, of the latest state
        state["turns"] = turns
        ck.save("a", build)
    assert (await ck.load("a")).engine["stats"]["turns"] == 5  # a pending state is read before the store
    assert await ck.flush()
    assert builds == [5, 5]
    assert SessionRecord.loads(await store.get("a")).engine["stats"]["turns"] == 5
    ck.forget("a")
    assert await ck.load("a") is None
    assert await ck.flush() and await store.get("a") is None
    await ck.aclose()


async def test_the_writer_outlives_a_bug_in_a_callback(tmp_path):
    """An exception the writer did not expect (here Ray's rule that a counter only grows: ``inc(0)``
    raises) is logged, and the next checkpoints are still written: the writer task never ends early."""
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    calls: list[int] = []

    def counter_inc(n: int, size: int) -> None:
        calls.append(n)
        if len(calls) == 1:
            raise ValueError(f"value must be >0, got {n}")

    ck = Checkpointer(store, ttl_s=60, live=lambda: [], on_written=counter_inc)
    writer = asyncio.get_running_loop().create_task(ck.run())
    ck.save("a", lambda: record("a", turns=1))
    deadline = time.monotonic() + 5
    while len(calls) < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    ck.save("b", lambda: record("b", turns=2))
    while await store.get("b") is None:
        assert time.monotonic() < deadline and not writer.done(), "the writer stopped"
        await asyncio.sleep(0.05)
    writer.cancel()
    await ck.aclose()


async def test_a_store_outage_loses_nothing_and_writes_catch_up(redis_server, tmp_path):
    errors: list[str] = []
    store = RedisStore(redis_server.url, prefix="vani:outage:session:", log_prefix="vani:outage:log:")
    ck = Checkpointer(store, ttl_s=60, live=lambda: ["a", "b"], on_error=errors.append)
    runner = asyncio.create_task(ck.run())
    ck.save("a", lambda: record("a", turns=1))
    for _ in range(100):
        if await store.get("a") is not None:
            break
        await asyncio.sleep(0.05)
    redis_server.stop()  # the store goes away for real
    t0 = time.monotonic()
    ck.save("a", lambda: record("a", turns=2))
    ck.save("b", lambda: record("b", turns=7))
    for _ in range(200):
        if ck.failing:
            break
        await asyncio.sleep(0.05)
    assert ck.failing and errors and time.monotonic() - t0 < 10  # noticed fast, never waited on
    with pytest.raises(StoreError):
        await store.get("zzz")
    assert (await ck.load("b")).engine["stats"]["turns"] == 7  # still readable from memory
    redis_server.start()  # an empty server: what was pending must be written again
    for _ in range(300):
        if not ck.failing and not ck.pending:
            break
        await asyncio.sleep(0.05)
    assert not ck.failing and not ck.pending
    assert SessionRecord.loads(await store.get("a")).engine["stats"]["turns"] == 2
    assert SessionRecord.loads(await store.get("b")).engine["stats"]["turns"] == 7
    runner.cancel()
    await ck.aclose()
