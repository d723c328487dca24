"""What the agent load scripts share: the emulator + private vani stack, load-generator processes, and the
row of a run (CPU per part, latency percentiles, correctness counts).

CPU is split so a run tells what the box spent on vani and what on the harness:
  vani      session hosts + gateway replicas + ingress (Serve proxy or HAProxy)
  emulator  every ``vani emulate`` process (its uvicorn supervisor and N workers)
  loadgen   every load-generator process (the sum of their own ``os.times()``)
  ray_other the rest of the private Ray (GCS, raylet, controller, ...)
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import psutil

from load.bench_emulators import start_emulator
from load.local_vani import LocalVani, descendants
from load.report import cpu_seconds, memory_of, pct
from vani.cluster.ports import free_port

VANI_PARTS = ("hosts", "replicas", "proxy")
LATENCIES = ("partial", "eot", "first_token", "e2e", "overhead", "warm_overhead", "cold_e2e")


def raise_nofile() -> int:
    """Lift this process's open-file limit to the hard limit (a websocket is a file); returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@contextmanager
def agent_stack(
    ingress: str, max_sessions: int, gateway_replicas: int = 1, emulator_workers: int = 1, **overrides: Any
) -> Iterator[tuple[LocalVani, str, int]]:
    """The emulators (N workers) and a private vani of agent sessions pointed at them: (vani, emulator URL,
    emulator pid). Both are niced as Ray's workers; everything is stopped on exit."""
    from load.local_vani import local_vani
    from vani.adapters.emulator.cli import env_for

    raise_nofile()
    port = free_port()
    emu = f"http://127.0.0.1:{port}"
    proc = start_emulator(port, emulator_workers)
    psutil.Process(proc.pid).nice(15)  # its workers inherit the niceness
    os.environ.update(env_for(emu))  # dummy credentials; Ray's workers inherit them
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{emu}/__emulator/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        settings = dict(
            session_mode="agent",
            stt_provider="deepgram",
            llm_provider="openai",
            tts_provider="deepgram",
            deepgram_base_url=emu,
            openai_base_url=f"{emu}/v1",
            llm_model="emulated",
            provider_session_header="x-emulator-key",
            max_sessions=max_sessions + 10,
        )
        with local_vani(ingress, gateway_replicas=gateway_replicas, **(settings | overrides)) as vani:
            yield vani, emu, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:  # never leave an emulator behind
            proc.kill()
            proc.wait(10)


def cpu_groups(vani: LocalVani, emu_pid: int) -> dict[str, list[int]]:
    """Where the CPU goes: session hosts, gateway (replicas + Serve proxy / HAProxy), emulator, the rest of Ray."""
    hosts = vani.host_pids()
    procs = descendants()
    proxy = [pid for pid, title in procs if "ProxyActor" in title or "haproxy" in title.lower()]
    replicas = [pid for pid, title in procs if "ServeReplica:" in title]
    emulator = [emu_pid, *(p.pid for p in psutil.Process(emu_pid).children(recursive=True))]
    known = {*hosts, *proxy, *replicas, *emulator}
    rest = [pid for pid, title in procs if pid not in known and "ray" in title]
    return {"hosts": hosts, "replicas": replicas, "proxy": proxy, "emulator": emulator, "ray_other": rest}


def run_workers(
    vani: LocalVani, worker: Callable[..., list[dict[str, Any]]], shares: list[list[Any]], *args: Any
) -> tuple[list[dict[str, Any]], float, dict[str, float]]:
    """``worker(share, *args)`` in one process per share; returns the merged results, wall seconds and the
    peak memory of vani's hosts + gateway while they ran."""
    t0 = time.monotonic()
    with ProcessPoolExecutor(len(shares)) as pool:
        futs = [pool.submit(worker, share, *args) for share in shares]
        peak = {"rss_mb": 0.0}
        while not all(f.done() for f in futs):
            try:
                mem = memory_of(vani.host_pids() + vani.gateway_pids())
            except Exception as e:  # a registry too busy to answer must not end the run
                print(f"memory sample skipped: {e}", file=sys.stderr)
                mem = peak
            if mem["rss_mb"] > peak["rss_mb"]:
                peak = mem
            time.sleep(2)
        results = [r for f in futs for r in f.result()]
    return results, time.monotonic() - t0, peak


def own_cpu_s() -> float:
    """CPU seconds this process has used (a load-generator worker reports it with its results)."""
    t = os.times()
    return t.user + t.system


def session_worker(ids: list[str], urls: list[str], ramp_s: float, session: Callable[..., Any]) -> list[dict]:
    """One load-generator process: ``await session(sid, url)`` for its share of sessions on one event loop,
    started evenly over ``ramp_s``; the first result carries the process's own CPU (``loadgen_cpu_s``)."""
    os.nice(15)  # the niceness Ray gives its workers: the load must not outrank what it measures
    raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def run() -> list[Any]:
        tasks = []
        for i, sid in enumerate(ids):
            tasks.append(asyncio.create_task(session(sid, f"{urls[i % len(urls)]}/v1/sessions/{sid}")))
            await asyncio.sleep(ramp_s / max(len(ids), 1))
        return list(await asyncio.gather(*tasks))

    results = [r.__dict__ for r in asyncio.run(run())]
    results[0]["loadgen_cpu_s"] = own_cpu_s()
    return results


def cpu_row(groups: dict[str, list[int]], cpu0: dict[str, float], wall: float, results: list[dict[str, Any]]) -> dict:
    """Cores used per part over ``wall`` (1.0 = one core busy all the time), vani's total and its CPU per
    session-second held (the sessions' summed open time)."""
    row: dict[str, Any] = {}
    for k, pids in groups.items():
        row[f"cpu_{k}"] = round((cpu_seconds(pids) - cpu0[k]) / wall, 2)
    row["cpu_loadgen"] = round(sum(r.get("loadgen_cpu_s", 0.0) for r in results) / wall, 2)
    vani_s = sum(row[f"cpu_{k}"] for k in VANI_PARTS) * wall
    row["cpu_vani"] = round(vani_s / wall, 2)
    held = sum(r.get("connected_s", 0.0) for r in results)
    row["session_s"] = round(held, 1)
    row["vani_cpu_ms_per_session_s"] = round(1000 * vani_s / held, 2) if held else None
    return row


def latency_row(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Percentiles (ms) of every latency, and the correctness counts (bleed, stale frames, failed sessions)."""
    row: dict[str, Any] = {}
    for name in [*LATENCIES, "barge_stop", "clear_gap", "server_total"]:
        values = [v * 1000 for r in results for v in r[name]]
        for p in (50, 95, 99):
            row[f"{name}_p{p}"] = pct(values, p)
    row["turns"] = sum(r["turns_done"] for r in results)
    row["barge_ins"] = sum(len(r["barge_stop"]) for r in results)
    row["bleed"] = sum(r["bleed"] for r in results)
    row["mismatched"] = sum(r["mismatched"] for r in results)
    row["reply_samples"] = [x for r in results for x in r["samples"]][:5]
    row["stale_frames"] = sum(r["stale_frames"] for r in results)
    row["failed_sessions"] = sum(1 for r in results if r["errors"])
    row["error_samples"] = sorted({e for r in results for e in r["errors"]})[:5]
    return row


def message_rates(results: list[dict[str, Any]], n: int, wall: float, chunk_ms: int) -> dict[str, float]:
    """Messages per session-second, by kind (audio frames both ways, JSON events by type)."""
    kinds: dict[str, int] = {}
    for r in results:
        for k, v in r["events_in"].items():
            kinds[k] = kinds.get(k, 0) + v
    return {
        "audio_out": round(sum(r["frames_in"] for r in results) / n / wall, 2),
        "audio_in": round(1000 / chunk_ms, 2),
        **{k: round(v / n / wall, 2) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
    }
