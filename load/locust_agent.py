"""Locust user for agent sessions: a real-time microphone, spoken turns, barge-in; latencies as request stats.

Each user opens one agent session for its whole life and streams 16 kHz PCM in real time (``--frame-ms``,
silence between turns, like a live microphone). Each task is one turn: it speaks, waits for the reply to be
sent (``audio.end``), and reports (response time in ms; ``request_type`` "AGENT"):

  ``e2e``          end of the user's speech (its last chunk sent) -> the reply's first audio frame
  ``first audio``  EndOfTurn received -> the reply's first audio frame (LLM + TTS + vani)
  ``first token``  EndOfTurn received -> the first ``assistant.text``
  ``barge-in``     the interrupting speech's start (its first chunk's audio) -> the reply stopped (``audio.pause``
                   or ``audio.clear``), every ``--barge-every``-th turn; as ``bench_agent``'s barge_stop
Failures: ``timeout`` (no answer in 30 s), ``bleed`` (a reply that does not answer this session's own words),
``stale`` (a frame of a cleared turn after its ``audio.clear``). With ``--emulator`` the user registers its
transcripts with the provider emulator (``x-emulator-key`` = session id), so bleed is checked.

    .venv/bin/python load/run_local.py --agent --ingress haproxy --port 8011 &   # prints READY ... EMULATOR ...
    .venv/bin/locust -f load/locustfile.py AgentSessionUser --headless -u 5 -r 5 -t 20s \\
        --host ws://127.0.0.1:8011 --frame-ms 256 --emulator http://127.0.0.1:<emulator port>
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import gevent
import gevent.event
import httpx
import websocket
from locust import User, between, task

from load.agent_client import BARGE_AFTER_S, BARGE_S, LONG_TURN_S, RATE, SPEECH_S, long_request, speech_chunk
from vani.actors.wire.agent import decode_audio

logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per script POST otherwise
TIMEOUT_S = 30.0
TURNS = 50  # transcripts registered per session (more than a Locust run of minutes speaks)


class AgentSessionUser(User):
    """One agent session per user; each task is a turn (every ``--barge-every``-th one interrupted)."""

    wait_time = between(1, 3)

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.chunk_s = float(opts.frame_ms) / 1000
        self.barge_every = int(getattr(opts, "barge_every", 3) or 0)
        self.sid = f"locust-agent-{uuid.uuid4().hex[:12]}"
        self.words = [f"this is {self.sid} turn {k} please" for k in range(TURNS)]
        self.emulator = getattr(opts, "emulator", None)
        if self.emulator:
            script = [heard for k in range(TURNS) for heard in self._heard(k)]
            httpx.post(
                f"{self.emulator}/__emulator/scripts/{self.sid}", json={"transcripts": script}
            ).raise_for_status()
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.first_audio: dict[int, float] = {}
        self.cleared: set[int] = set()
        self.new = gevent.event.Event()
        self.speak_total = self.speak_chunks = 0
        self.speech_start, self.speech_end = 0.0, 0.0
        self.turn, self.k = 1, 0  # the server's next turn id; this user's next turn
        t0 = time.perf_counter()
        self.ws = websocket.create_connection(f"{self.host.rstrip('/')}/v1/sessions/{self.sid}", timeout=TIMEOUT_S)
        first = json.loads(self.ws.recv())
        ok = first.get("type") == "session.started"
        self._fire("session start", time.perf_counter() - t0, None if ok else RuntimeError(str(first)))
        self.greenlets = [gevent.spawn(self._receive), gevent.spawn(self._mic)]

    def _heard(self, k: int) -> list[str]:
        """What the emulator's STT hears in turn ``k``: a barge turn is a long request, then its interruption."""
        if self._is_barge(k):
            return [long_request(self.sid), self.words[k]]
        return [self.words[k]]

    def _is_barge(self, k: int) -> bool:
        return self.barge_every > 0 and k % self.barge_every == self.barge_every - 1

    def _fire(self, name: str, seconds: float, exc: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="AGENT", name=name, response_time=seconds * 1000, response_length=0, exception=exc, context={}
        )

    def _mic(self) -> None:
        samples, t0, k = int(self.chunk_s * RATE), time.monotonic(), 0
        silence = bytes(2 * samples)
        while True:  # absolute schedule: a chunk leaves when its audio has been "recorded"
            gevent.sleep(max(0.0, t0 + (k + 1) * self.chunk_s - time.monotonic()))
            speaking = self.speak_chunks > 0
            if speaking and self.speak_chunks == self.speak_total:  # this chunk's audio began chunk_s ago
                self.speech_start = time.monotonic() - self.chunk_s
            self.ws.send_binary(speech_chunk(samples, k * samples) if speaking else silence)
            if speaking:
                self.speak_chunks -= 1
                if self.speak_chunks == 0:
                    self.speech_end = time.monotonic()
            k += 1

    def _receive(self) -> None:
        while True:
            try:
                opcode, data = self.ws.recv_data()
            except Exception:
                return
            now = time.monotonic()
            if opcode == websocket.ABNF.OPCODE_BINARY:
                turn_id = decode_audio(data)[0]
                self.first_audio.setdefault(turn_id, now)
                if turn_id in self.cleared:
                    self._fire("stale", 0, RuntimeError(f"frame of cleared turn {turn_id}"))
            elif opcode == websocket.ABNF.OPCODE_TEXT:
                ev = json.loads(data)
                self.events.append((now, ev))
                if ev.get("type") == "audio.clear":
                    self.cleared.add(ev["turn_id"])
            self.new.set()

    def _wait(self, since: int, kind: str | tuple[str, ...], **match: Any) -> tuple[float, dict[str, Any]]:
        """The first event since ``since`` of type ``kind`` (or one of them) whose fields equal ``match``."""
        kinds = (kind,) if isinstance(kind, str) else kind
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for t, ev in self.events[since:]:
                if ev.get("type") in kinds and all(ev.get(k) == v for k, v in match.items()):
                    return t, ev
            since = len(self.events)
            self.new.clear()
            if not self.new.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"no {kind} {match}")

    def _speak(self, seconds: float) -> None:
        self.speak_total = self.speak_chunks = max(1, round(seconds / self.chunk_s))

    @task
    def talk(self) -> None:
        barge, words, turn_id, mark = self._is_barge(self.k), self.words[self.k % TURNS], self.turn, len(self.events)
        self.k += 1
        self.turn += 2 if barge else 1
        try:
            self._speak(LONG_TURN_S if barge else SPEECH_S)
            t_eot, _ = self._wait(mark, "TurnInfo", event="EndOfTurn")
            t_tok, _ = self._wait(mark, "assistant.text", turn_id=turn_id)
            self._fire("first token", t_tok - t_eot)
            self._wait(mark, "audio.start", turn_id=turn_id)
            deadline = time.monotonic() + TIMEOUT_S
            while turn_id not in self.first_audio:  # frames follow their audio.start
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no audio for turn {turn_id}")
                gevent.sleep(0.005)
            self._fire("e2e", self.first_audio[turn_id] - self.speech_end)
            self._fire("first audio", self.first_audio[turn_id] - t_eot)
            if barge:
                gevent.sleep(BARGE_AFTER_S)
                self._speak(BARGE_S)
                t_stop, _ = self._wait(mark, ("audio.pause", "audio.clear"), turn_id=turn_id)
                self._fire("barge-in", t_stop - self.speech_start)
                self._wait(mark, "audio.clear", turn_id=turn_id)
                turn_id += 1  # the reply to the interrupting words
            _, msg = self._wait(mark, "assistant.message", turn_id=turn_id)
            if self.emulator and words not in msg["full_text"]:
                self._fire("bleed", 0, RuntimeError(f"reply {msg['full_text'][:60]!r}"))
            self._wait(mark, "audio.end", turn_id=turn_id)
        except TimeoutError as e:
            self._fire("timeout", TIMEOUT_S, e)

    def on_stop(self) -> None:
        try:
            self.ws.send(json.dumps({"type": "close"}))
            self.ws.close()
        except Exception:
            pass
        for g in self.greenlets:
            g.kill()
