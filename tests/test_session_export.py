"""``vani sessions export`` from the running 2-node cluster, then ``vani replay`` of the exported log (issue 13):
an agent session on the /agent app (provider emulators) talks two turns; the export, made by the CLI as a
separate Ray driver, is a private file that replays to the same outputs."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import uuid

from tests.agent_helpers import AgentClient, script, utterance
from vani.actors.replay import compare, driver, log_file


def vani(*args: str) -> subprocess.CompletedProcess[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "vani")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=180)


async def test_a_live_sessions_export_replays_to_the_same_outputs(vani_cluster, provider_emulator, tmp_path):
    s = f"ex-{uuid.uuid4().hex[:10]}"
    await script(provider_emulator, s, transcripts=["hello there", "what is on the menu"])
    c = await AgentClient.connect(f"{vani_cluster.url('agent')}/v1/sessions/{s}")
    for turn, seed in ((1, 1), (2, 2)):
        await c.send_audio(utterance(0.6, 0.5, seed=seed))
        await c.wait_type("assistant.message", 30.0, turn_id=turn)
        await c.wait_for(lambda m, t=turn: m.get("event") == "REPLY_DONE" and m.get("turn_id") == t, 10.0)
    path = str(tmp_path / "s.jsonl")
    address = vani_cluster.cluster.address
    out = await asyncio.to_thread(vani, "sessions", "export", s, "--address", address, "--app", "agent", "-o", path)
    assert out.returncode == 0 and f"of session {s}" in out.stdout, out.stdout + out.stderr
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    log = log_file.read(path)
    assert log.header["session_id"] == s and log.header["mode"] == "agent"
    assert log.header["settings"]["api_key"] is None  # Settings.public(): no secret in a log
    kinds = {e["k"] for e in log.entries}
    assert {"frame", "stt", "llm.request", "llm", "tts.request", "tts", "out", "audio"} <= kinds
    texts = [
        e["msg"]["full_text"] for e in log.outputs() if e["k"] == "out" and e["msg"]["type"] == "assistant.message"
    ]
    assert texts == [
        "Sure. You said: hello there. Anything else?",
        "Sure. You said: what is on the menu. Anything else?",
    ]
    replayed = await driver.run(log)
    found = compare.first_divergence(log.outputs(), replayed)
    assert found is None, f"{found.stream} at {found.index}:\n{found.logged}\n{found.replayed}" if found else ""
    await c.close()
    missing = await asyncio.to_thread(
        vani, "sessions", "export", "no-such-session", "--address", address, "--app", "agent"
    )
    assert missing.returncode == 1 and "no live session 'no-such-session'" in missing.stderr
