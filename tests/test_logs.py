"""``Settings.log_level`` and ``log_format`` reach the logging set-up of every vani process; JSON lines carry the
session, turn and trace of the task that logged them. Fast, no Ray (a host's JSON lines: tests/test_metrics.py)."""

from __future__ import annotations

import ast
import asyncio
import contextvars
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from vani.cluster.config import Settings
from vani.cluster.logs import JsonFormatter, configure_logging, log_context

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def restore_vani_level() -> Iterator[None]:
    vani = logging.getLogger("vani")
    level = vani.level
    yield
    vani.setLevel(level)


def test_the_level_reaches_vanis_loggers() -> None:
    assert configure_logging("debug") == logging.DEBUG
    assert logging.getLogger("vani.registry").isEnabledFor(logging.DEBUG)
    assert configure_logging("WARNING") == logging.WARNING
    assert not logging.getLogger("vani.host").isEnabledFor(logging.INFO)
    assert logging.getLogger("vani.host").isEnabledFor(logging.WARNING)


def test_the_level_comes_from_settings_and_the_environment() -> None:
    assert Settings().log_level == "INFO"
    settings = Settings.load(env={"VANI_LOG_LEVEL": "error"})
    assert configure_logging(settings.log_level) == logging.ERROR
    assert not logging.getLogger("vani.gateway").isEnabledFor(logging.WARNING)
    # Settings travel to the registry, hosts and gateway replicas as a dict: the level goes with them.
    assert configure_logging(Settings.from_dict(settings.to_dict()).log_level) == logging.ERROR


def test_a_wrong_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log_level"):
        configure_logging("LOUD")


def _calls(tree: ast.AST, name: str) -> int:
    return sum(
        isinstance(n, ast.Call) and getattr(n.func, "attr", getattr(n.func, "id", None)) == name for n in ast.walk(tree)
    )


def test_every_process_entry_point_configures_logging_from_its_settings() -> None:
    # The registry actor, each session host, each gateway replica and `vani up` set logging up, and only
    # through configure_logging: a hard-coded basicConfig(level=INFO) would ignore the setting.
    entry_points = ["actors/control/registry.py", "actors/session/host.py", "gateway/app.py", "cluster/run.py"]
    for path in entry_points:
        assert _calls(ast.parse((ROOT / path).read_text()), "configure_logging") == 1, path
    for pkg in ("actors", "adapters", "client", "cluster", "gateway"):
        for path in (ROOT / pkg).rglob("*.py"):
            if path != ROOT / "cluster" / "logs.py":
                assert _calls(ast.parse(path.read_text()), "basicConfig") == 0, path


@pytest.fixture
def vani_json() -> Iterator[logging.Handler]:
    """The vani logger in JSON, its handler writing to a buffer; text again after."""
    configure_logging("INFO", "json")
    vani = logging.getLogger("vani")
    (handler,) = [h for h in vani.handlers if isinstance(h.formatter, JsonFormatter)]
    buffer = io.StringIO()
    handler.setStream(buffer)  # type: ignore[attr-defined]
    handler.buffer = buffer  # type: ignore[attr-defined]
    yield handler
    configure_logging("INFO", "text")


async def test_json_lines_carry_the_session_turn_and_trace_of_the_task(vani_json: logging.Handler) -> None:
    log = logging.getLogger("vani.host")

    async def turn_task() -> None:
        log.warning("TTS failed: %s", "status 400")

    async def session_task() -> None:
        log_context(session_id="s-1", trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
        context = contextvars.copy_context()  # as TurnHandle.spawn does
        context.run(log_context, turn_id=3)
        await asyncio.get_running_loop().create_task(turn_task(), context=context)
        log.info("session line")

    await asyncio.get_running_loop().create_task(session_task())
    log.info("outside any session")
    lines = [json.loads(line) for line in vani_json.buffer.getvalue().splitlines()]  # type: ignore[attr-defined]
    assert [(x["message"], x.get("session_id"), x.get("turn_id")) for x in lines] == [
        ("TTS failed: status 400", "s-1", 3),
        ("session line", "s-1", None),
        ("outside any session", None, None),
    ]
    assert lines[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and lines[0]["level"] == "WARNING"
    assert lines[0]["logger"] == "vani.host" and lines[0]["time"].endswith("Z")


def test_the_format_is_checked_and_configuring_twice_keeps_one_handler() -> None:
    with pytest.raises(ValueError, match="log_format"):
        configure_logging("INFO", "xml")
    with pytest.raises(ValueError, match="log_format must be one of"):
        Settings.load(env={"VANI_LOG_FORMAT": "yaml"})
    configure_logging("INFO", "json")
    configure_logging("DEBUG", "json")
    vani = logging.getLogger("vani")
    assert len([h for h in vani.handlers if isinstance(h.formatter, JsonFormatter)]) == 1 and not vani.propagate
    configure_logging("INFO", "text")
    assert not [h for h in vani.handlers if isinstance(h.formatter, JsonFormatter)] and vani.propagate
