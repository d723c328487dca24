"""Bounded thread pools for model inference, so nothing heavy ever runs on the event loop.

Work is split into lanes so that one kind of slow job cannot starve another: ``vad`` (a fraction of a
millisecond per 32 ms frame, must never wait behind a Whisper call), ``partials`` (waits on the
pocketsphinx worker processes, best effort) and ``heavy`` (Smart Turn, Whisper, Piper). Each lane is a FIFO
``ThreadPoolExecutor`` with a fixed number of workers; a session awaits at most one heavy job at a
time, so a busy session delays others by at most one job per worker instead of stalling them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

LANES = ("vad", "partials", "heavy")
_DEFAULT_SIZES = {"vad": 1, "partials": 2, "heavy": 2}

_lock = threading.Lock()
_sizes: dict[str, int] = dict(_DEFAULT_SIZES)
_executors: dict[str, ThreadPoolExecutor] = {}


def configure(**sizes: int) -> None:
    """Set lane sizes (e.g. ``heavy=2``). Only affects lanes not started yet."""
    with _lock:
        for lane, n in sizes.items():
            if lane not in LANES:
                raise ValueError(f"unknown inference lane {lane!r}")
            if n and n > 0 and lane not in _executors:
                _sizes[lane] = int(n)


def configure_from_settings(settings: Any) -> None:
    """Read ``local_{vad,partials,heavy}_workers`` from settings when present."""
    configure(**{lane: int(getattr(settings, f"local_{lane}_workers", 0) or 0) for lane in LANES})


def executor(lane: str) -> ThreadPoolExecutor:
    with _lock:
        ex = _executors.get(lane)
        if ex is None:
            ex = ThreadPoolExecutor(max_workers=_sizes[lane], thread_name_prefix=f"vani-{lane}")
            _executors[lane] = ex
        return ex


def sizes() -> dict[str, int]:
    with _lock:
        return dict(_sizes)


async def run(lane: str, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on ``lane`` and await the result without blocking the loop.

    Cancelling the awaiting task does not interrupt the thread (Python cannot); the result is
    simply dropped. Callers keep jobs short (one frame batch, one clause, one turn).
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor(lane), fn, *args)
