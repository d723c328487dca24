"""The browser client (client/web) in headless Chromium, through the real gateway.

The fake microphone loops a WAV of real speech (the booking sentence, then 3 s of silence). On ``/agent``
the STT, LLM and TTS are the provider emulator, scripted per session id (the page takes ``?session=``);
on ``/local`` they are the embedded offline models, so the real words of the recording come back.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from websockets.sync.client import connect

from tests.browser.conftest import BOOKING_TEXT, WAIT_S, artifact, state, wait_state, worklet_script
from tests.support.wer import wer

LONG_REPLY = " ".join(f"Sentence number {i} is here, and it keeps going." for i in range(12))
FLUX_EVENTS = {"StartOfTurn", "Update", "EagerEndOfTurn", "TurnResumed", "EndOfTurn"}
WEB_FILES = [
    "index.html",
    "transcribe.html",
    "agent.html",
    "style.css",
    "ui.js",
    "vani-client.js",
    "messages.js",
    "transcribe-page.js",
    "agent-page.js",
    "flux-capture-worklet.js",
    "playback-worklet.js",
]


def sid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def script(emulator: str, key: str, **body: Any) -> None:
    """The emulator's script for one session id (transcripts per user turn, LLM reply)."""
    httpx.post(f"{emulator}/__emulator/scripts/{key}", json=body, timeout=10).raise_for_status()


def open_page(driver: Any, url: str) -> None:
    """Load a page and press Start (a real click: the user gesture browsers want for audio)."""
    driver.get(url)
    wait_state(driver, lambda s: s["status"] == "idle", "the page to load")
    driver.find_element(By.ID, "start").click()


def text(driver: Any, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def of_type(s: dict[str, Any], kind: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in s["events"] if e.get("type") == kind and all(e.get(k) == v for k, v in match.items())]


def test_web_files_served_beside_the_api(vani_cluster):
    base = vani_cluster.http_url("agent")
    with httpx.Client(timeout=10) as http:
        r = http.get(base)  # no trailing slash: redirected, so relative URLs resolve under /agent/
        assert r.status_code in (301, 307, 308) and r.headers["location"].endswith("/agent/")
        r = http.get(f"{base}/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert 'href="transcribe.html"' in r.text and 'href="agent.html"' in r.text
        for name in WEB_FILES:
            r = http.get(f"{base}/{name}")
            assert r.status_code == 200, name
            if name.endswith(".js"):  # AudioWorklet modules are refused under any other MIME type
                assert r.headers["content-type"].startswith("text/javascript"), name
                assert r.headers["access-control-allow-origin"] == "*"  # importable from other origins
        assert http.get(f"{base}/healthz").json()["app"] == "agent"  # API routes are not shadowed
        assert "sessions" in http.get(f"{base}/v1/status").json()
        assert http.get(f"{base}/missing.js").status_code == 404
        assert http.get(f"{base}/..%2Fapp.py").status_code == 404
        assert http.get(f"{vani_cluster.http_url()}/").status_code == 200  # the root app serves it too


def test_transcription_page_transcript_badges_mute_and_resume(vani_cluster, provider_emulator, browser):
    s = sid("web-flux")
    turns = ["hi i would like to book a table", "for two at seven tomorrow evening", "thank you", "see you then"]
    script(provider_emulator, s, transcripts=turns)
    open_page(browser, f"{vani_cluster.http_url('agent')}/transcribe.html?session={s}")

    # The live partial shows words of the open turn before its EndOfTurn.
    wait_state(browser, lambda st: st["transcript"] and st["transcript"] in turns[0], "a live partial transcript")
    wait_state(browser, lambda st: len(st["history"]) >= 2, "two user turns")
    st = state(browser)
    assert st["started"]["type"] == "Connected" and st["started"]["session_id"] == s
    assert st["history"][:2] == turns[:2]
    assert [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#history li")][:2] == turns[:2]
    infos = of_type(st, "TurnInfo")
    assert {"StartOfTurn", "Update", "EndOfTurn"} <= {e["event"] for e in infos}
    ends = [e for e in infos if e["event"] == "EndOfTurn"]
    assert [e["turn_index"] for e in ends][:2] == [0, 1] and all(e["end_of_turn_confidence"] >= 0.7 for e in ends)
    # The badges show the latest TurnInfo (read together, in one script, so they cannot disagree).
    badges, last = browser.execute_script(
        "const t = window.vaniState.events.filter(e => e.type === 'TurnInfo').at(-1);"
        "return [['badge-event', 'badge-turn', 'badge-eot'].map((id) => document.getElementById(id).textContent), t];"
    )
    assert badges == [last["event"], str(last["turn_index"]), f"{last['end_of_turn_confidence']:.2f}"]
    assert badges[0] in FLUX_EVENTS
    assert st["stats"]["chunksSent"] > 0 and st["stats"]["sendDropped"] == 0

    # Mute (in the silence after a turn): zeros keep flowing at the real-time pace, no turn starts.
    wait_state(browser, lambda st: st["badges"]["event"] == "EndOfTurn", "the end of a turn")
    n_events, n_history, sent = browser.execute_script(
        "document.getElementById('mute').click(); const s = window.vaniState;"
        "return [s.events.length, s.history.length, s.stats.chunksSent];"
    )
    wait_state(browser, lambda st: st["stats"]["chunksSent"] >= sent + 32, "8 s of muted audio sent")  # > 1 loop
    st = state(browser)
    assert not [e for e in st["events"][n_events:] if e.get("event") == "StartOfTurn"]
    assert len(st["history"]) == n_history
    browser.find_element(By.ID, "mute").click()
    wait_state(browser, lambda st: len(st["history"]) > n_history, "a turn after unmuting")

    # A dropped socket: the page reconnects with its resume token, the session and its history come back.
    token = st["started"]["resume_token"]
    before = state(browser)["history"]
    browser.execute_script("window.vaniTest.drop()")
    wait_state(browser, lambda st: st["stats"]["resumed"] >= 1 and st["status"] == "open", "the resumed session")
    st = state(browser)
    assert st["started"]["resumed"] is True and st["started"]["resume_token"] == token
    assert st["history"][: len(before)] == before  # restored from Connected.history
    assert st["errors"] == []
    wait_state(browser, lambda st: len(st["history"]) > len(before), "a turn after the resume")


def test_agent_page_plays_audio_and_interruption_flushes_it(vani_cluster, provider_emulator, browser):
    s = sid("web-agent")
    # The assistant's long reply is still playing when the next loop of the recording talks over it.
    script(provider_emulator, s, transcripts=["tell me everything", "no wait stop please"], reply=LONG_REPLY)
    open_page(browser, f"{vani_cluster.http_url('agent')}/agent.html?session={s}")
    wait_state(browser, lambda st: st["stats"]["playedChunks"] > 0, "assistant audio played")
    wait_state(browser, lambda st: st.get("clears"), "an audio.clear applied by the playback worklet")
    wait_state(browser, lambda st: of_type(st, "assistant.message", turn_id=1), "turn 1's assistant.message")
    wait_state(browser, lambda st: of_type(st, "LatencyReport", turn_id=1), "turn 1's LatencyReport")
    wait_state(browser, lambda st: len(st["history"]) >= 2, "the end of the interrupting user turn")
    time.sleep(1.0)  # any late frame of the cleared turn would now have been played (and counted)
    st = state(browser)

    assert of_type(st, "audio.clear")[0] == {"type": "audio.clear", "turn_id": 1, "reason": "barge_in"}
    clear = st["clears"][0]
    assert clear["turnId"] == 1 and clear["playedMs"] > 0  # it interrupted audio that was playing
    assert clear["flushedChunks"] >= 1  # buffered audio was thrown away, not played out
    assert st["stats"]["playedAfterClear"] == 0  # no chunk of the cleared turn played after the clear
    msg = of_type(st, "assistant.message", turn_id=1)[0]
    assert msg["interrupted"] and msg["outcome"] == "interrupted"
    # What was heard (from the page's playback reports) is a strict prefix of the reply.
    assert msg["text"] and LONG_REPLY.startswith(msg["text"].rstrip(".,")) and msg["text"] != LONG_REPLY
    states = [e["to"] for e in of_type(st, "conversation")]
    assert states.index("speaking") < states.index("interrupted")
    # Paused first (the worklet stopped playing at audio.pause), cleared once the guard confirmed.
    assert states.index("paused") < states.index("interrupted") and st["stats"]["pauses"] >= 1
    events = [e["type"] for e in st["events"] if e.get("turn_id") == 1]
    assert events.index("audio.pause") < events.index("audio.clear")
    assert st["history"][:2] == ["tell me everything", "no wait stop please"]
    assert st["assistant"]["1"] == LONG_REPLY  # every token shown as text
    report = of_type(st, "LatencyReport", turn_id=1)[0]
    assert report["outcome"] == "interrupted" and report["interrupt_stop_latency"] >= 0
    assert browser.find_element(By.CSS_SELECTOR, "#latency tr[data-turn='1']").text.split()[0] == "1"
    # The badge follows the page's state (read together: the looping recording keeps the conversation moving).
    wait_state(browser, lambda st: text(browser, "badge-conversation") == st["badges"]["conversation"], "the badge")
    assert "[interrupted]" in text(browser, "conversation")


# 6 s between the loops: the first reply must play out in full before the recording talks again (with
# 3 s, a busy box can still be playing it then, and speech over a reply pauses it at once).
@pytest.mark.mic_silence(6.0)
def test_agent_page_resumes_after_a_dropped_socket(vani_cluster, provider_emulator, browser):
    s = sid("web-resume")
    script(provider_emulator, s, transcripts=["hello there", "are you still there"], reply="Yes, I am here.")
    open_page(browser, f"{vani_cluster.http_url('agent')}/agent.html?session={s}")
    wait_state(browser, lambda st: of_type(st, "assistant.message", turn_id=1), "the first reply")
    st = state(browser)
    first = of_type(st, "assistant.message", turn_id=1)[0]
    # The page reported playback to the end ("done"), so the server saw the reply heard in full.
    assert not first["interrupted"] and first["outcome"] == "done" and first["text"] == "Yes, I am here."
    token, played = st["started"]["resume_token"], st["stats"]["playedChunks"]
    assert played > 0

    browser.execute_script("window.vaniTest.drop()")
    wait_state(browser, lambda st: st["stats"]["resumed"] >= 1 and st["status"] == "open", "the resumed session")
    st = state(browser)
    started = [e for e in st["events"] if e["type"] == "session.started"]
    assert [e["resumed"] for e in started] == [False, True]
    assert started[1]["session_id"] == s and started[1]["resume_token"] == token
    assert st["stats"]["reconnects"] >= 1 and st["errors"] == []
    # The conversation goes on in the same session: the next turn is answered and played.
    wait_state(browser, lambda st: of_type(st, "assistant.message", turn_id=2), "a reply after the resume")
    wait_state(browser, lambda st: st["stats"]["playedChunks"] > played, "audio after the resume")
    assert state(browser)["history"][:2] == ["hello there", "are you still there"]
    assert text(browser, "badge-resumed") == "resumed"


def test_refused_and_taken_sessions_shown_in_plain_words(vani_cluster, provider_emulator, browser):
    base = vani_cluster.http_url("agent")
    # An invalid session id is refused before the upgrade (HTTP 403): one message, no retry loop.
    open_page(browser, f"{base}/transcribe.html?session=bad.id!")
    wait_state(browser, lambda st: st["status"] == "closed" and st["errors"], "the refusal")
    time.sleep(1.0)  # a retry would show up as a reconnect
    st = state(browser)
    assert st["stats"]["reconnects"] == 0 and st["started"] is None
    assert "refused the connection" in st["error"] and "session id" in st["error"]
    assert browser.find_element(By.ID, "error").is_displayed() and text(browser, "error") == st["error"]
    assert text(browser, "status") == "closed"
    browser.save_screenshot(str(artifact("refused_403.png")))  # the page is replaced below

    # A session that already has a live connection: close code 4409, in words.
    s = sid("web-taken")
    with connect(f"{vani_cluster.url('agent')}/v1/sessions/{s}", open_timeout=WAIT_S) as holder:
        assert json.loads(holder.recv(timeout=WAIT_S))["type"] == "session.started"
        open_page(browser, f"{base}/agent.html?session={s}")
        wait_state(browser, lambda st: st["status"] == "closed" and st["errors"], "the 4409 close")
        st = state(browser)
        assert "already open somewhere else" in st["error"] and st["stats"]["reconnects"] == 0


LOCAL_TURNS = 3  # the fake microphone's loop may start mid-sentence: one of the first turns is whole


def test_transcription_page_on_local_models_hears_the_words(vani_cluster, browser):
    """``/local`` runs the embedded offline STT: the recording's real words come back.

    Each loop of the fake microphone is one user turn, but where the first loop starts (relative to when
    the page starts sending) is up to the browser, so the first turn may be cut: one of the first
    ``LOCAL_TURNS`` final transcripts must match the recording (measured WER ~0.07)."""
    open_page(browser, f"{vani_cluster.http_url('local')}/transcribe.html?session={sid('web-local')}")

    def matching(st: dict[str, Any]) -> str | None:
        turns = st["history"][:LOCAL_TURNS]
        best = min(turns, key=lambda h: wer(BOOKING_TEXT, h), default=None)
        if best is not None and wer(BOOKING_TEXT, best) <= 0.3:
            return best
        assert len(turns) < LOCAL_TURNS, f"none of the first {LOCAL_TURNS} turns matches {BOOKING_TEXT!r}: {turns}"
        return None

    wait_state(browser, matching, "a final transcript of the whole recording", timeout=(1 + LOCAL_TURNS) * WAIT_S)


PLAYBACK_SCRIPT = worklet_script(
    """
  p.postMessage({ type: "start", turnId: 1, sampleRate: 24000 });
  for (let i = 0; i < 10; i++) p.postMessage({ type: "chunk", turnId: 1, index: i, pcm: pcm(24000, 100) });
  p.postMessage({ type: "chunk", turnId: 7, index: 0, pcm: pcm(24000, 40) });
  await sleep(250);
  p.postMessage({ type: "clear", turnId: 1 });
  p.postMessage({ type: "chunk", turnId: 1, index: 10, pcm: pcm(24000, 40) });
  p.postMessage({ type: "start", turnId: 2, sampleRate: 16000 });
  for (let i = 0; i < 3; i++) p.postMessage({ type: "chunk", turnId: 2, index: i, pcm: pcm(16000, 100) });
  p.postMessage({ type: "end", turnId: 2 });
  for (let t = 0; t < 200 && !got.some((m) => m.type === "progress" && m.done); t++) await sleep(100);
  await ctx.close();
  done([ctx.sampleRate, got]);
"""
)


def test_playback_worklet_plays_current_turn_drops_stale_and_flushes_on_clear(vani_cluster, browser):
    """The playback worklet's own rules, fed directly (a conforming server never sends stale frames)."""
    browser.get(f"{vani_cluster.http_url('agent')}/index.html")
    result = browser.execute_async_script(PLAYBACK_SCRIPT)
    assert isinstance(result, list), result
    _rate, got = result
    cleared_at = next(i for i, m in enumerate(got) if m["type"] == "cleared")
    cleared = got[cleared_at]
    played_1 = [m["index"] for m in got[:cleared_at] if m["type"] == "played" and m["turnId"] == 1]
    assert played_1 == list(range(len(played_1)))  # in order
    assert cleared["turnId"] == 1 and len(played_1) + cleared["flushedChunks"] == 10  # played or flushed, never both
    assert cleared["flushedChunks"] >= 1
    after = got[cleared_at + 1 :]
    assert not [m for m in after if m["type"] == "played" and m["turnId"] == 1]  # nothing of turn 1 after the clear
    dropped = {(m["turnId"], m["index"], m["why"]) for m in got if m["type"] == "dropped"}
    assert dropped == {(7, 0, "not_current"), (1, 10, "cleared")}
    assert [m["index"] for m in after if m["type"] == "played" and m["turnId"] == 2] == [0, 1, 2]
    final = [m for m in after if m["type"] == "progress" and m["turnId"] == 2][-1]
    assert final["done"] and final["playedMs"] == 300  # the turn's whole audio, at its own 16 kHz rate
