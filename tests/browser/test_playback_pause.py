"""The playback worklet's pause / resume (``audio.pause`` / ``audio.resume``), fed directly in headless
Chromium: paused, it stops pulling from its buffer (keeping it, and frames still arriving); resumed, it
plays on from exactly where it stopped; its ``progress`` reports never count paused time. The pages are
served from ``client/web/`` by a plain loopback HTTP server (the worklet needs no vani cluster)."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import ROOT, worklet_script

PAUSE_SCRIPT = worklet_script(
    """
  p.postMessage({ type: "start", turnId: 1, sampleRate: 24000 });
  for (let i = 0; i < 6; i++) p.postMessage({ type: "chunk", turnId: 1, index: i, pcm: pcm(24000, 100) });
  await sleep(250);
  p.postMessage({ type: "pause", turnId: 1 });
  p.postMessage({ type: "chunk", turnId: 1, index: 6, pcm: pcm(24000, 100) }); // in flight at the pause
  await sleep(600);
  p.postMessage({ type: "resume", turnId: 1 });
  for (let i = 7; i < 10; i++) p.postMessage({ type: "chunk", turnId: 1, index: i, pcm: pcm(24000, 100) });
  p.postMessage({ type: "end", turnId: 1 });
  for (let t = 0; t < 200 && !got.some((m) => m.type === "progress" && m.done); t++) await sleep(50);
  // A pause the guard confirms: the clear flushes the paused buffer, nothing of the turn plays after.
  p.postMessage({ type: "start", turnId: 2, sampleRate: 24000 });
  for (let i = 0; i < 5; i++) p.postMessage({ type: "chunk", turnId: 2, index: i, pcm: pcm(24000, 100) });
  await sleep(150);
  p.postMessage({ type: "pause", turnId: 2 });
  await sleep(300);
  p.postMessage({ type: "clear", turnId: 2 });
  await sleep(300);
  await ctx.close();
  done(got);
"""
)


@pytest.fixture(scope="module")
def web_root() -> Iterator[str]:
    """``client/web/`` on a loopback HTTP server (a secure context for AudioWorklet)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(ROOT / "client" / "web"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_playback_worklet_pauses_keeps_its_buffer_and_resumes(web_root: str, browser: Any) -> None:
    browser.get(f"{web_root}/index.html")
    got = browser.execute_async_script(PAUSE_SCRIPT)
    assert isinstance(got, list), got
    turn1 = [m for m in got if m.get("turnId") == 1]
    paused_at = next(i for i, m in enumerate(turn1) if m["type"] == "paused")
    resumed_at = next(i for i, m in enumerate(turn1) if m["type"] == "resumed")
    paused, resumed = turn1[paused_at], turn1[resumed_at]
    assert paused_at < resumed_at and paused["bufferedChunks"] >= 1  # it paused with audio still buffered
    while_paused = turn1[paused_at + 1 : resumed_at]
    assert [m for m in while_paused if m["type"] == "played"] == []  # nothing pulled from the buffer
    assert {m["playedMs"] for m in while_paused if m["type"] == "progress"} <= {paused["playedMs"]}
    assert resumed["playedMs"] == paused["playedMs"]  # paused time is not counted as played
    # Every chunk played once, in order, none dropped (the one that arrived during the pause included).
    assert [m["index"] for m in turn1 if m["type"] == "played"] == list(range(10))
    assert [m for m in turn1 if m["type"] == "dropped"] == []
    final = [m for m in turn1 if m["type"] == "progress"][-1]
    assert final["done"] and final["playedMs"] == 1000  # the turn's whole audio, without the paused time
    # Turn 2: paused, then cleared: the clear flushes the paused buffer and nothing plays after the pause.
    turn2 = [m for m in got if m.get("turnId") == 2]
    p2 = next(i for i, m in enumerate(turn2) if m["type"] == "paused")
    cleared = next(m for m in turn2 if m["type"] == "cleared")
    assert [m for m in turn2[p2:] if m["type"] == "played"] == []
    assert cleared["flushedChunks"] >= 1 and int(cleared["playedMs"]) == turn2[p2]["playedMs"]
