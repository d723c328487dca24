"""Reading an event log file (docs/event-log.md): JSON lines, a header then the entries, checked as read.

A file holds one run of a session, or (exported from the session store) several, each with its header.
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
    """A log of one run (what ``vani sessions export`` writes for a live session)."""
    runs = parse_runs(lines, name)
    if len(runs) > 1:
        raise LogError(f"{name}: {len(runs)} runs of the session (a stored log): read them with parse_runs")
    return runs[0]


def parse_runs(lines: Iterable[str], name: str = "log") -> list[SessionLog]:
    """A log of one or more runs: each starts with its header line (a stored log: one run per host the
    session lived on, see ``vani sessions export --stored``)."""
    runs: list[SessionLog] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LogError(f"{name}:{number}: not JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(item, dict):
            raise LogError(f"{name}:{number}: a log line is a JSON object, not {type(item).__name__}")
        if not runs or item.get("format") == FORMAT:
            if runs:
                check_complete(runs[-1], name)
            runs.append(SessionLog(check_header(item, f"{name}:{number}")))
            continue
        runs[-1].entries.append(check_entry(item, f"{name}:{number}"))
    if not runs:
        raise LogError(f"{name}: empty: no header line")
    check_complete(runs[-1], name)
    return runs


def check_complete(log: SessionLog, name: str) -> None:
    if len(log.entries) < int(log.header.get("entries", 0)):
        raise LogError(
            f"{name}: truncated: the header says {log.header['entries']} entries, the file has {len(log.entries)}"
        )


def stored_runs(lines: list[str]) -> tuple[list[str], int]:
    """A session's stored log lines (``EventLog.unwritten``, appended run by run) as an export file: each
    run's header gets its entry count, what its ring lost before a write (``dropped``) and ``cut`` (the
    run may have ended with its host: its last moments were not written). Returns the lines and how many
    lines before the first header the store's bound let go of the log's start (they are left out)."""
    runs: list[tuple[dict[str, Any], list[str]]] = []
    orphans = 0
    for raw in lines:
        item = json.loads(raw)
        if item.get("format") == FORMAT:
            runs.append(({**item, "entries": 0, "dropped": 0, "cut": True}, []))
        elif not runs:
            orphans += 1
        elif item.get("k") == "session" and "lost" in item:
            runs[-1][0]["dropped"] += item["lost"]
        else:
            runs[-1][1].append(raw)
    out: list[str] = []
    for header, entries in runs:
        header["entries"] = len(entries)
        out += [json.dumps(header, separators=(",", ":")), *entries]
    return out, orphans


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
    runs = read_runs(path)
    if len(runs) > 1:
        raise LogError(f"{path}: {len(runs)} runs of the session (a stored log): read them with read_runs")
    return runs[0]


def read_runs(path: str) -> list[SessionLog]:
    try:
        with open(path, encoding="utf-8") as fh:
            return parse_runs(fh, path)
    except UnicodeDecodeError as exc:
        raise LogError(f"{path}: not UTF-8 text ({exc.reason})") from None
