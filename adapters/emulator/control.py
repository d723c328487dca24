"""Per-session scripts and per-connection context for the emulators.

A *key* names a session: header ``x-emulator-key``, else query param ``tag`` (Flux and Deepgram TTS
accept ``tag``), else ``"default"``. A script registered under the key (``POST /__emulator/scripts/{key}``)
gives Flux transcripts, the LLM reply / tool use, latency overrides, and a queue of faults per service,
consumed one per connection so a test can fail the first attempt and let the retry through.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from vani.adapters.emulator.faults import Fault, merge, parse_fault
from vani.adapters.emulator.latency import Latency

SERVICES = ("flux", "llm", "tts", "tts_ws")
DEFAULT_TRANSCRIPTS = (
    "hello there",
    "what is the weather like today",
    "can you book a table for two",
    "thanks that is all",
)


@dataclass
class Script:
    transcripts: list[str] = field(default_factory=list)  # one per turn, in order
    reply: str | None = None  # LLM reply text (default: derived from the last user message)
    use_tool: bool = False  # request the offered tool once per conversation
    tool_arguments: dict[str, Any] | None = None
    latency: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, list[str]] = field(default_factory=dict)  # service -> specs, one per connection
    # What happened, for tests to assert on:
    turns_done: int = 0  # EndOfTurns emitted across all connections (the transcript cursor)
    log: list[dict[str, Any]] = field(default_factory=list)

    @staticmethod
    def from_json(d: dict[str, Any]) -> Script:
        faults = d.get("faults") or {}
        bad = set(faults) - set(SERVICES)
        if bad:
            raise ValueError(f"unknown fault service(s): {sorted(bad)}")
        for specs in faults.values():
            for spec in specs:
                parse_fault(spec)  # validate now, not mid-test
        Latency().override(d.get("latency"))
        return Script(
            transcripts=list(d.get("transcripts") or []),
            reply=d.get("reply"),
            use_tool=bool(d.get("use_tool", False)),
            tool_arguments=d.get("tool_arguments"),
            latency=dict(d.get("latency") or {}),
            faults={k: list(v) for k, v in faults.items()},
        )

    def transcript(self, turn: int) -> str:
        if turn < len(self.transcripts):
            return self.transcripts[turn]
        return DEFAULT_TRANSCRIPTS[turn % len(DEFAULT_TRANSCRIPTS)]

    def record(self, service: str, event: str, **data: Any) -> None:
        if len(self.log) < 2000:  # bounded: the default script is shared by every unkeyed session
            self.log.append({"service": service, "event": event, "t": time.monotonic(), **data})


@dataclass
class Conn:
    """What one connection does: its key, script, fault and latency."""

    key: str
    script: Script
    fault: Fault
    latency: Latency


class Store:
    def __init__(self, latency: Latency | None = None) -> None:
        self.latency = latency or Latency()
        self.scripts: dict[str, Script] = {}
        self.default = Script()

    def script(self, key: str) -> Script:
        return self.scripts.get(key, self.default)

    def put(self, key: str, script: Script) -> None:
        self.scripts[key] = script

    def delete(self, key: str) -> None:
        self.scripts.pop(key, None)

    def count(self) -> int:
        return len(self.scripts)

    def state(self, key: str) -> dict[str, Any] | None:
        """What ``GET /__emulator/scripts/{key}`` returns, or None for an unknown key."""
        s = self.scripts.get(key)
        return None if s is None else {"turns_done": s.turns_done, "faults": s.faults, "log": s.log}

    def script_for(self, key: str, service: str) -> tuple[Script, str | None]:
        """The key's script and the fault spec this connection consumes from its queue, if any."""
        script = self.script(key)
        queue = script.faults.get(service)
        return script, (queue.pop(0) if queue else None)

    def conn(self, service: str, headers: Any, query: Any) -> Conn:
        """Resolve a connection's config. Raises ``ValueError`` on a bad fault/latency header."""
        key = headers.get("x-emulator-key") or query.get("tag") or "default"
        script, spec = self.script_for(key, service)
        fault = parse_fault(headers.get("x-emulator-fault") or query.get("emulator_fault"))
        if spec is not None:
            fault = merge(fault, parse_fault(spec))
        latency = self.latency.override(script.latency).override(headers.get("x-emulator-latency"))
        return Conn(key, script, fault, latency)
