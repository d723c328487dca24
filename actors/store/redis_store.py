"""Sessions' durable state in Redis, shared by every node: a session whose node is gone comes back elsewhere.

One key per session (``vani:<app>:session:<id>``) holding its JSON record, and one list per session
(``vani:<app>:log:<id>``) holding its event log's writes (a chunk of lines each), both with Redis's own
expiry. Writes of one flush go in one pipeline. The client (redis-py's asyncio client) reconnects by
itself; a call that fails raises ``StoreError`` and the checkpointer retries it later.
"""

from __future__ import annotations

import math
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from vani.actors.store.base import StoreError
from vani.cluster.config import redacted


class RedisStore:
    kind = "redis"

    def __init__(self, url: str, prefix: str, log_prefix: str) -> None:
        self.prefix, self.log_prefix = prefix, log_prefix
        self._where = redacted(url)
        # Short timeouts: a store outage must be noticed and retried, never wait on a session's behalf.
        self._r = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

    @staticmethod
    def _ttl(expires_at: float) -> int:
        return max(1, math.ceil(expires_at - time.time()))

    async def put_many(self, records: dict[str, str], expires_at: float) -> None:
        ttl = self._ttl(expires_at)
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for sid, rec in records.items():
                    pipe.set(self.prefix + sid, rec, ex=ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis {self._where}: {exc}") from exc

    async def get(self, session_id: str) -> str | None:
        try:
            raw = await self._r.get(self.prefix + session_id)
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis {self._where}: {exc}") from exc
        return None if raw is None else raw.decode()

    async def delete_many(self, session_ids: list[str]) -> None:
        try:
            await self._r.delete(*(self.prefix + s for s in session_ids), *(self.log_prefix + s for s in session_ids))
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis {self._where}: {exc}") from exc

    async def touch_many(self, session_ids: list[str], expires_at: float) -> None:
        ttl = self._ttl(expires_at)
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for sid in session_ids:
                    pipe.expire(self.prefix + sid, ttl)
                    pipe.expire(self.log_prefix + sid, ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis {self._where}: {exc}") from exc

    async def append_logs(self, chunks: dict[str, str], keep: int, expires_at: float) -> None:
        ttl = self._ttl(expires_at)
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for sid, chunk in chunks.items():
                    key = self.log_prefix + sid
                    pipe.rpush(key, chunk)
                    pipe.ltrim(key, -keep, -1)
                    pipe.expire(key, ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis {self._where}: {exc}") from exc

    async def read_log(self, session_id: str) -> list[str]:
        try:
            raw = await self._r.lrange(self.log_prefix + session_id, 0, -1)
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis {self._where}: {exc}") from exc
        return [line for chunk in raw for line in chunk.decode().split("\n")]

    async def close(self) -> None:
        await self._r.aclose()
