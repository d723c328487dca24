"""Logging set-up for every vani process (the CLI, the registry, session hosts, gateway replicas).

Part of the ground, like ``config.py``: imports nothing of vani. Each process calls ``configure_logging``
with ``Settings.log_level`` (``VANI_LOG_LEVEL``), so one setting reaches every process of a deployment.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def configure_logging(level: str) -> int:
    """Log at ``level`` (a name such as ``"INFO"`` or ``"debug"``, or a number); returns the level set.

    ``basicConfig`` does nothing in a process whose root logger already has a handler, so the level is also
    set on the ``vani`` logger, the parent of all of vani's own. An unknown name raises ``ValueError``.
    """
    name = level.strip().upper()
    value = int(name) if name.isdigit() else logging.getLevelName(name)
    if not isinstance(value, int):
        raise ValueError(f"log_level must be a logging level name (DEBUG, INFO, WARNING, ...), not {level!r}")
    logging.basicConfig(level=value, format=FORMAT)
    logging.getLogger("vani").setLevel(value)
    return value
