"""The seam between a session and what it runs: echo, the voice agent, transcription-only.

A ``Session`` (``actors/session/session.py``) owns transport and lifecycle: the link, ordering, the inbound
ring, the two-lane outbound queue, mute, suspend/resume, TTL, close codes. It knows nothing of turns, Flux or
providers. What happens to the audio is an ``Engine``'s, built by a factory the session host passes in
(``actors/engines.py`` maps a deployment's mode to one), given the session's ``SessionIO``.

An engine owns its wire formatting: the first message a client gets (``greeting``), the client message
types it handles, how it reads its own outbound frames (``on_frame_sent``), and whether its client speaks
vani's session schema at all (Flux clients get only Flux's messages).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from vani.actors.clock import Clock
from vani.actors.session.event_log import EventLog
from vani.actors.session.outbound import OutboundQueue
from vani.actors.session.ring_buffer import RingBuffer
from vani.actors.tracing.session_trace import SessionTrace


class SessionIO(Protocol):
    """What a session offers its engine (and nothing else of itself)."""

    session_id: str
    clock: Clock
    ring: RingBuffer  # inbound audio, in sequence order
    outbound: OutboundQueue  # control lane (never behind audio) + audio lane (backpressured)
    events: EventLog  # the engine's inputs and outputs, for export and replay
    trace: SessionTrace  # the session's spans (actors/tracing/session_trace.py)

    @property
    def frames_ready(self) -> asyncio.Event:
        """Set when the ring has frames; the engine clears it before waiting."""
        ...

    def space_freed(self) -> None:
        """The engine popped audio from the ring: a link waiting for space may go on."""
        ...

    def fail_internal(self, reason: str) -> None:
        """The engine cannot go on (provider gone, a task crashed): close the session with 1011."""
        ...

    def close_normal(self, reason: str) -> None:
        """The engine finished the session (e.g. Flux ``CloseStream`` done): close with 1000."""
        ...

    def checkpoint(self) -> None:
        """The engine's durable state changed (a turn boundary): write it to the session store soon."""
        ...


class Engine(Protocol):
    client_types: frozenset[str]  # client JSON message types the engine handles (others are the session's)
    vani_schema: bool  # False: the client gets no vani session.state / error messages (e.g. Flux clients)

    def greeting(self, started: dict[str, Any], resumed: bool) -> dict[str, Any]:
        """The first message of a connection, given vani's ``session.started`` payload."""
        ...

    def on_client(self, msg: dict[str, Any]) -> None:
        """A validated client message of one of ``client_types`` (synchronous: hands I/O to tasks)."""
        ...

    def on_resume(self) -> None:
        """A new connection took the session back (re-announce what that connection never saw)."""
        ...

    def on_frame_sent(self, frame: bytes) -> None:
        """One of the engine's binary frames just left on the link."""
        ...

    def snapshot(self) -> dict[str, Any]: ...

    def durable_state(self) -> dict[str, Any]:
        """What must survive the host (JSON-able): ``actors/store/record.py`` keeps it as ``engine``."""
        ...

    def restore(self, state: dict[str, Any]) -> dict[str, Any]:
        """Take back a stored ``durable_state`` (a new engine, before its first connection); returns what the
        first ``session.started`` adds (e.g. the turn that was in flight when the old host died)."""
        ...

    async def aclose(self) -> None:
        """Cancel every task the engine owns and close its providers."""
        ...


EngineFactory = Callable[[SessionIO], Engine]
