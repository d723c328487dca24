"""Locust: each user is one vani session streaming real-time PCM frames and timing every echo.

    # a vani with echo_delay_ms=0 (VANI_ECHO_DELAY_MS=0 vani up, or load/run_local.py), then:
    .venv/bin/locust -f load/locustfile.py --headless -u 100 -r 20 -t 60s \
        --host ws://127.0.0.1:8000 --frame-ms 80 --csv load/results/locust_80ms

Frame size is ``--frame-ms`` (256 = the browser's chunk, 80 = Flux's recommended chunk, 20). Each echo
is reported as a request named ``echo <N>ms`` whose response time is the round trip; a frame that
comes back out of order, twice or altered is reported as a failure (``reorder``/``duplicate``/``corrupt``),
and frames still missing when the user stops are reported as ``lost``. Uses ``websocket-client``
(blocking sockets, which gevent makes cooperative) because Locust runs on gevent, not asyncio.

Agent sessions (turns, barge-in, e2e / first-audio latency as request stats) are ``AgentSessionUser``
(load/locust_agent.py); pick the user class by name, since the two need different servers:

    .venv/bin/python load/run_local.py --agent --ingress haproxy --port 8011 &   # READY ws://... EMULATOR http://...
    .venv/bin/locust -f load/locustfile.py AgentSessionUser --headless -u 5 -r 5 -t 20s \
        --host ws://127.0.0.1:8011 --frame-ms 256 --emulator http://127.0.0.1:<port>
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import gevent
import websocket
from locust import User, events, task
from locust.env import Environment

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from load.locust_agent import AgentSessionUser  # noqa: E402,F401  (a user class Locust finds here)
from load.streams import HEADER, frame_bytes, read_stamp, stamped_frame  # noqa: E402


@events.init_command_line_parser.add_listener
def _args(parser) -> None:
    parser.add_argument("--frame-ms", type=float, default=80.0, help="PCM chunk per frame (ms of 16 kHz audio)")
    parser.add_argument("--emulator", default=None, help="agent users: provider emulator URL (scripts, bleed check)")
    parser.add_argument("--barge-every", type=int, default=3, help="agent users: interrupt every Nth turn (0: never)")


class VaniSessionUser(User):
    """One session per user for the user's whole life; the task is the real-time send loop."""

    def on_start(self) -> None:
        env: Environment = self.environment
        self.frame_ms = float(env.parsed_options.frame_ms)
        self.nbytes = frame_bytes(self.frame_ms)
        self.name = f"echo {self.frame_ms:g}ms"
        self.sid = f"locust-{uuid.uuid4().hex[:12]}"
        t0 = time.perf_counter()
        self.ws = websocket.create_connection(f"{self.host.rstrip('/')}/v1/sessions/{self.sid}", timeout=30)
        first = json.loads(self.ws.recv())
        ok = first.get("type") == "session.started"
        self._fire("session start", (time.perf_counter() - t0) * 1000, None if ok else RuntimeError(str(first)))
        self.seq = 0
        self.highest = -1
        self.seen: set[int] = set()
        self.receiver = gevent.spawn(self._receive)

    def _fire(self, name: str, ms: float, exc: Exception | None, length: int = 0) -> None:
        self.environment.events.request.fire(
            request_type="WS", name=name, response_time=ms, response_length=length, exception=exc, context={}
        )

    def _receive(self) -> None:
        while True:
            try:
                opcode, data = self.ws.recv_data()
            except Exception:
                return
            if opcode != websocket.ABNF.OPCODE_BINARY:
                continue
            now = time.perf_counter_ns()
            seq, sent_ns = read_stamp(data) if len(data) >= HEADER.size else (-1, now)
            if len(data) != self.nbytes or data[HEADER.size :] != bytes([seq % 251]) * (self.nbytes - HEADER.size):
                self._fire(self.name, 0, RuntimeError("corrupt"))
            elif seq in self.seen:
                self._fire(self.name, 0, RuntimeError("duplicate"))
            else:
                self.seen.add(seq)
                reordered = seq < self.highest
                self.highest = max(self.highest, seq)
                ms = (now - sent_ns) / 1e6
                self._fire(self.name, ms, RuntimeError("reorder") if reordered else None, len(data))

    @task
    def stream(self) -> None:
        period = self.frame_ms / 1000.0
        t0 = time.perf_counter()
        while True:  # until Locust stops the user; absolute schedule, so lateness does not accumulate
            delay = t0 + self.seq * period - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            self.ws.send_binary(stamped_frame(self.seq, self.nbytes))
            self.seq += 1

    def on_stop(self) -> None:
        deadline = time.monotonic() + 5
        while len(self.seen) < self.seq and time.monotonic() < deadline:
            gevent.sleep(0.05)
        lost = self.seq - len(self.seen)
        if lost:
            self._fire("lost frames", 0, RuntimeError(f"lost {lost} of {self.seq}"))
        try:
            self.ws.send(json.dumps({"type": "close"}))
            self.ws.close()
        except Exception:
            pass
        self.receiver.kill()
