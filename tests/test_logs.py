"""``Settings.log_level`` (``VANI_LOG_LEVEL``) reaches the logging set-up of every vani process. Fast, no Ray."""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from vani.cluster.config import Settings
from vani.cluster.logs import configure_logging

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
