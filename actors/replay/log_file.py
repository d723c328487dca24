"""Reading an event log file (docs/event-log.md): JSON lines, a header then the entries, checked as read.

Every problem is a ``LogError`` that names the line: not JSON, not an object, a missing field, a format
version newer than this vani reads, a log that lost its start (its ring wrapped), or fewer entries than its
header says (a truncated file).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vani.actors.session.event_log import FORMAT, INPUTS, NOTES, OUTPUTS, VERSION


class LogError(ValueError):
    """A log ``vani replay`` cannot use; the message names the line."""


@dataclass
class SessionLog:
    header: dict[str, Any]
    entries: list[dict[str, Any]] = field(default_factory=list)

    def outputs(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["k"] in OUTPUTS]


def parse(lines: Iterable[str], name: str = "log") -> SessionLog:
    header: dict[str, Any] | None = None
    log: SessionLog | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LogError(f"{name}:{number}: not JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(item, dict):
            raise LogError(f"{name}:{number}: a log line is a JSON object, not {type(item).__name__}")
        if header is None:
            header = check_header(item, f"{name}:{number}")
            log = SessionLog(header)
            continue
        assert log is not None
        log.entries.append(check_entry(item, f"{name}:{number}"))
    if header is None or log is None:
        raise LogError(f"{name}: empty: no header line")
    if len(log.entries) < int(header.get("entries", 0)):
        raise LogError(
            f"{name}: truncated: the header says {header['entries']} entries, the file has {len(log.entries)}"
        )
    return log


def check_header(item: dict[str, Any], where: str) -> dict[str, Any]:
    if item.get("format") != FORMAT:
        raise LogError(f'{where}: not a vani event log (its first line has no "format": "{FORMAT}")')
    version = item.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise LogError(f"{where}: event log format version {version!r}; this vani reads version {VERSION} and older")
    if item.get("dropped"):
        raise LogError(
            f"{where}: the log lost its first {item['dropped']} entries (the session's ring wrapped): a replay "
            "needs the session from its start; raise event_log_entries"
        )
    return item


def check_entry(item: dict[str, Any], where: str) -> dict[str, Any]:
    kind = item.get("k")
    if kind not in INPUTS and kind not in OUTPUTS and kind not in NOTES:
        raise LogError(f"{where}: unknown entry kind {kind!r}")
    if not isinstance(item.get("t"), (int, float)):
        raise LogError(f'{where}: entry without a time "t"')
    return item


def read(path: str) -> SessionLog:
    try:
        with open(path, encoding="utf-8") as fh:
            return parse(fh, path)
    except UnicodeDecodeError as exc:
        raise LogError(f"{path}: not UTF-8 text ({exc.reason})") from None
