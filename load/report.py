"""Percentiles, process memory, result tables and ``load/results/<name>.json`` for the load scripts."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psutil

from load.streams import StreamResult, verdict

RESULTS = Path(__file__).resolve().parent / "results"


def pct(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (no numpy needed); ``None`` for no data."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[k]


def summarize(results: list[StreamResult], wall_s: float) -> dict[str, Any]:
    """RTT percentiles, frames/s (echoed, whole run) and the correctness verdict of one scenario."""
    rtts = [x for r in results for x in r.rtt_ms]
    starts = [r.start_ms for r in results if r.start_ms is not None]
    v = verdict(results)
    return {
        **v,
        "rtt_p50_ms": pct(rtts, 50),
        "rtt_p95_ms": pct(rtts, 95),
        "rtt_p99_ms": pct(rtts, 99),
        "rtt_max_ms": max(rtts) if rtts else None,
        "start_p50_ms": pct(starts, 50),
        "start_p95_ms": pct(starts, 95),
        "frames_per_s": round(v["received"] / wall_s, 1) if wall_s > 0 else None,
        "wall_s": round(wall_s, 2),
        "error_samples": sorted({r.error for r in results if r.error})[:5],
    }


def memory_of(pids: Iterable[int]) -> dict[str, float]:
    """Summed RSS / PSS / USS in MB of ``pids`` (RSS overstates shared libraries; PSS/USS do not)."""
    rss = pss = uss = 0.0
    for pid in pids:
        try:
            info = psutil.Process(pid).memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", 0)
        uss += info.uss
    mb = 1024 * 1024
    return {"rss_mb": round(rss / mb, 1), "pss_mb": round(pss / mb, 1), "uss_mb": round(uss / mb, 1)}


def cpu_percent_of(pids: Iterable[int], interval: float = 1.0) -> float:
    """CPU % (100 = one core) summed over ``pids``, sampled over ``interval`` seconds."""
    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            p.cpu_percent(None)
            procs.append(p)
        except psutil.NoSuchProcess:
            continue
    time.sleep(interval)
    total = 0.0
    for p in procs:
        try:
            total += p.cpu_percent(None)
        except psutil.NoSuchProcess:
            continue
    return round(total, 1)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A GitHub-markdown table of ``columns`` from ``rows`` (pasteable into the README)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where the numbers came from (the box is shared: load average tells how noisy it was)."""
    return {
        "cpus": os.cpu_count(),
        "mem_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": git_commit(),
    }


def git_commit() -> str | None:
    """The commit measured (``+dirty`` when the tree had uncommitted changes), or None outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write ``load/results/<name>.json`` and return its path (commit the results a README or an issue note
    cites; the machine block says on which commit and how loaded the box was)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2, default=str))
    return path


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (diff two readings for a rate)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total
