"""``vani emulate`` with several worker processes on one port behaves as one provider: a script posted to one
worker is served by the others, its fault queue is consumed once, and its log holds every worker's events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from load.local_vani import free_port

FAST = "ttft_ms=1;tokens_per_s=2000;ttfb_ms=1;rtf=0.01"


@pytest.fixture(scope="module")
def two_workers() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "VANI_EMULATOR_WORKERS": "2", "VANI_EMULATOR_LATENCY": FAST}
    cmd = [sys.executable, "-m", "vani.cluster.cli", "emulate", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 60
        while len(pids) < 2:  # both workers up and accepting (a fresh connection per probe)
            assert time.monotonic() < deadline and proc.poll() is None, "emulator workers did not start"
            try:
                pids.add(httpx.get(f"{base}/__emulator/health", timeout=2).json()["pid"])
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(15)


def _reply(base: str, key: str) -> tuple[int, int, str]:
    """One streamed chat completion on a fresh connection: (status, serving worker pid, text)."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"Authorization": "Bearer t", "x-emulator-key": key}
    with httpx.Client() as c:
        pid = c.get(f"{base}/__emulator/health").json()["pid"]  # same keep-alive connection, same worker
        r = c.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=10)
    text = ""
    for line in r.text.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                text += choice.get("delta", {}).get("content") or ""
    return r.status_code, pid, text


def test_script_posted_to_one_worker_is_served_by_every_worker(two_workers: str) -> None:
    key = "shared-script"
    script = {"reply": "Scripted answer from the shared store.", "faults": {"llm": ["status=503"]}}
    httpx.post(f"{two_workers}/__emulator/scripts/{key}", json=script).raise_for_status()
    results = [_reply(two_workers, key) for _ in range(24)]
    served_by = {pid for status, pid, _ in results if status == 200}
    assert len(served_by) == 2, f"the kernel put every connection on one worker: {served_by}"
    assert [status for status, _, _ in results].count(503) == 1  # the queued fault is consumed exactly once
    assert all(text == script["reply"] for status, _, text in results if status == 200)
    state = httpx.get(f"{two_workers}/__emulator/scripts/{key}").json()
    events = [e["event"] for e in state["log"] if e["service"] == "llm"]
    assert events.count("rejected") == 1 and events.count("request") == 23
    assert state["faults"] == {"llm": []}
    httpx.delete(f"{two_workers}/__emulator/scripts/{key}").raise_for_status()
    assert httpx.get(f"{two_workers}/__emulator/scripts/{key}").status_code == 404
