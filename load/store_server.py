"""A private Redis for a benchmark run (``--store redis``) and for the store tests: Debian's ``redis-server``
on a free loopback port, no persistence, stopped by its owner; and the session hosts' store counters."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class PrivateRedis:
    """One ``redis-server`` on 127.0.0.1; ``stop()`` and ``start()`` again on the same port (an outage)."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.workdir = tempfile.mkdtemp(prefix="vani-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen([binary, *args, "--dir", self.workdir], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def store_setting(store: str) -> Iterator[str]:
    """The ``session_store`` value for ``store``: ``none`` | ``sqlite`` | ``redis`` (a private server) | a URL."""
    if store != "redis":
        yield store
        return
    server = PrivateRedis()
    server.start()
    try:
        yield server.url
    finally:
        server.close()


def store_totals(registry: Any) -> tuple[int, int]:
    """Checkpoints written and their bytes, summed over the app's session hosts."""
    import ray

    writes = size = 0
    for host in ray.get(registry.host_stats.remote()):
        store = host.get("store") or {}
        writes += store.get("writes", 0)
        size += store.get("bytes", 0)
    return writes, size
