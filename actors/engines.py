"""Which engine a session runs, by the deployment's mode: ``echo``, ``agent`` or ``flux`` (transcription).

The session host asks here for an ``EngineFactory`` (``actors/session/engine.py``) when it creates a session;
providers are built here, complete, for the session that uses them (``adapters/factory.py``), and only the
modes that need them import them.
"""

from __future__ import annotations

from collections.abc import Callable

from vani.actors.session.echo import EchoEngine
from vani.actors.session.engine import Engine, EngineFactory, SessionIO
from vani.actors.session.ring_buffer import FrameMeta
from vani.cluster.config import Settings

MODES = ("echo", "agent", "flux")


def engine_factory(
    mode: str, settings: Settings, on_echo: Callable[[FrameMeta, float], None] = lambda meta, late: None
) -> EngineFactory:
    """The factory for one session in ``mode``, on ``settings`` (the deployment's, plus the client's
    validated options)."""
    if mode == "echo":

        def echo(io: SessionIO) -> Engine:
            io.events.begin(session_id=io.session_id, mode=mode)  # frames in, frames out
            return EchoEngine(io, settings.echo_delay_ms / 1000.0, on_echo)

        return echo
    if mode not in MODES:
        raise ValueError(f"unknown session mode {mode!r}")

    def build(io: SessionIO) -> Engine:
        from vani.actors.agent.recording import recording
        from vani.adapters.factory import build_providers  # provider modules load only where they are used

        io.events.begin(session_id=io.session_id, mode=mode, settings=settings.public())
        providers = recording(build_providers(settings, io.session_id, with_reply=mode == "agent"), io.events)
        if mode == "agent":
            from vani.actors.agent.engine import AgentEngine

            return AgentEngine(io, settings, providers)
        from vani.actors.agent.transcription import TranscriptionEngine

        return TranscriptionEngine(io, settings, providers)

    return build
