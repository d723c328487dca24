"""Logging set-up for every vani process (the CLI, the registry, session hosts, gateway replicas).

Part of the ground, like ``config.py``: imports nothing of vani. Each process calls ``configure_logging``
with ``Settings.log_level`` and ``Settings.log_format`` (``VANI_LOG_LEVEL``, ``VANI_LOG_FORMAT``), so one
setting reaches every process of a deployment.

``log_format=json``: one JSON object per line on stderr, with ``session_id``, ``turn_id`` and ``trace_id``
when the line was logged inside a session or a turn. Those come from a context variable that the session
host sets when it takes a link (``log_context``) and that every task the session or its turns start
inherits (asyncio copies the context into each task; a turn's tasks get the turn id), so no log call has
to pass them. ``text`` (the default) keeps the plain format.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from typing import Any

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
FORMATS = ("text", "json")
FIELDS = ("session_id", "turn_id", "trace_id")

_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("vani_log_context", default={})  # noqa: B039 (never mutated)


def log_context(**fields: Any) -> Token[dict[str, Any]]:
    """Add ``fields`` (of ``FIELDS``) to this task's log context, and to the tasks it starts from now on."""
    return _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})


class ContextFilter(logging.Filter):
    """Puts the log context's fields on each record (``record.session_id`` ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.get().items():
            setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: getattr(record, k) for k in FIELDS if getattr(record, k, None) is not None})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str, fmt: str = "text") -> int:
    """Log at ``level`` (a name such as ``"INFO"`` or ``"debug"``, or a number) in ``fmt``; returns the level.

    ``basicConfig`` does nothing in a process whose root logger already has a handler (a Ray worker), so the
    level is also set on the ``vani`` logger, the parent of all of vani's own; JSON lines get a handler of
    their own there. An unknown name or format raises ``ValueError``.
    """
    name = level.strip().upper()
    value = int(name) if name.isdigit() else logging.getLevelName(name)
    if not isinstance(value, int):
        raise ValueError(f"log_level must be a logging level name (DEBUG, INFO, WARNING, ...), not {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log_format must be text or json, not {fmt!r}")
    logging.basicConfig(level=value, format=FORMAT)
    vani = logging.getLogger("vani")
    vani.setLevel(value)
    for handler in [h for h in vani.handlers if isinstance(h.formatter, JsonFormatter)]:
        vani.removeHandler(handler)  # configured again: one JSON handler at most
    if fmt == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(ContextFilter())
        vani.addHandler(handler)
        vani.propagate = False  # not also in the root's text format
    else:
        vani.propagate = True
    return value
