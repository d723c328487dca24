"""Headless Debian Chromium (``/usr/bin/chromium`` + ``/usr/bin/chromedriver``) with a fake microphone.

The fake microphone plays a WAV of real speech in a loop (Chrome's ``--use-file-for-fake-audio-capture``);
the WAV is the recording padded with trailing silence, so each loop is one user turn. Screenshots go to
``test-artifacts/browser/``. The browser talks to the shared ``vani_cluster`` (no other cluster).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
WAIT_S = 60.0  # generous: the box is shared and loaded; tests assert behaviour, never speed

# The playback worklet harness, run in the page by ``execute_async_script``: an AudioContext with the
# ``vani-playback`` worklet node, ``got`` collecting its port messages, ``p`` its port, ``pcm(rate, ms)``
# a constant PCM16 buffer and ``sleep(ms)``. A test's body posts to ``p`` and ends with ``done(...)``.
WORKLET_PRELUDE = """
const done = arguments[arguments.length - 1];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pcm = (rate, ms) => new Int16Array((rate / 1000) * ms).fill(1000).buffer;
(async () => {
  const ctx = new AudioContext();
  await ctx.audioWorklet.addModule("playback-worklet.js");
  const node = new AudioWorkletNode(ctx, "vani-playback", { numberOfInputs: 0, outputChannelCount: [1] });
  node.connect(ctx.destination);
  await ctx.resume();
  const got = [];
  node.port.onmessage = (e) => got.push(e.data);
  const p = node.port;
"""

BOOKING_WAV = "booking_espeak.wav"
BOOKING_TEXT = json.loads((DATA / "transcripts.json").read_text())[BOOKING_WAV]


def worklet_script(body: str) -> str:
    """``body`` run inside the worklet harness; an exception comes back as a string instead of a result."""
    return WORKLET_PRELUDE + body.lstrip("\n") + "})().catch((e) => done(String(e)));\n"


def padded_wav(src: Path, dst: Path, silence_s: float) -> Path:
    """``src`` followed by ``silence_s`` of digital silence (same format)."""
    with wave.open(str(src)) as w:
        params = w.getparams()
        frames = w.readframes(w.getnframes())
    pad = bytes(int(params.framerate * silence_s) * params.sampwidth * params.nchannels)
    with wave.open(str(dst), "wb") as out:
        out.setparams(params)
        out.writeframes(frames + pad)
    return dst


def chrome_options(wav: Path, profile: str) -> Any:
    from selenium.webdriver.chrome.options import Options

    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return opts


@pytest.fixture(scope="session")
def fake_mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The booking sentence then 3 s of silence: the emulated Flux ends the turn in the silence, and
    in agent mode the assistant speaks in it before the loop's next sentence talks over the reply."""
    return padded_wav(DATA / BOOKING_WAV, tmp_path_factory.mktemp("wav") / "booking_padded.wav", 3.0)


@pytest.fixture
def browser(fake_mic_wav: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh headless Chromium per test (own profile); a screenshot and the console log are saved
    under test-artifacts/browser/ at the end, pass or fail."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # A failure, not a skip: the browser behaviours must never pass unnoticed as "skipped".
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail("Debian chromium / chromium-driver are not installed: run bash scripts/test.sh (it installs them)")
    profile = tempfile.mkdtemp(prefix="vani-chrome-")
    wav = fake_mic_wav
    gap = request.node.get_closest_marker("mic_silence")
    if gap is not None:  # a test whose reply must play out before the loop's next sentence
        wav = padded_wav(DATA / BOOKING_WAV, Path(profile) / "booking_padded.wav", float(gap.args[0]))
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=chrome_options(wav, profile))
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = request.node.name.replace("/", "_")
        try:
            driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
            logs = driver.get_log("browser")
            (ARTIFACTS / f"{name}.console.log").write_text("\n".join(str(e) for e in logs))
        except Exception as exc:  # a dead browser must not hide the test's own failure
            print(f"artifacts for {name}: {exc!r}")
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def artifact(name: str) -> Path:
    """A path under test-artifacts/browser/ (created)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def state(driver: Any, expr: str = "") -> Any:
    """``window.vaniState`` (or an expression under it) as JSON-able data."""
    return driver.execute_script(f"return window.vaniState ? JSON.parse(JSON.stringify(window.vaniState{expr})) : null")


def wait_state(driver: Any, pred: Callable[[dict[str, Any]], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``window.vaniState`` until ``pred(state)`` is truthy; fail with the last state and errors."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        last = state(driver)
        if last is not None:
            got = pred(last)
            if got:
                return got
        time.sleep(0.25)
    summary = (
        {k: last.get(k) for k in ("status", "transcript", "history", "badges", "errors", "stats")} if last else None
    )
    raise AssertionError(f"timed out waiting for {what}; state: {summary}")
