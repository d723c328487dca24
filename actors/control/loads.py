"""Load reports from the session hosts, and the admission question built on them: is a host behind?

Every host reports its smoothed event-loop lag every ``vani.actors.session.loop_lag.PERIOD_S``. A host
whose lag is at least ``overload_lag_ms``, or that stopped reporting (its loop cannot), takes no new
sessions; one that has not reported yet (it just started) is not behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from vani.actors.session.loop_lag import behind


class LoadBook:
    def __init__(self, overload_lag_ms: float, now: Callable[[], float] = time.monotonic) -> None:
        self.overload_lag_ms = overload_lag_ms
        self._now = now
        self._reports: dict[str, tuple[float, float]] = {}  # host -> (smoothed loop lag ms, when reported)

    def report(self, host: str, lag_ms: float) -> None:
        self._reports[host] = (lag_ms, self._now())

    def forget(self, host: str) -> None:
        self._reports.pop(host, None)

    def lag_ms(self, host: str) -> float | None:
        report = self._reports.get(host)
        return None if report is None else report[0]

    def behind(self, host: str) -> bool:
        report = self._reports.get(host)
        if report is None:  # not reported yet: a host that just started
            return False
        return behind(report[0], report[1], self._now(), self.overload_lag_ms)

    def all_behind(self, hosts: Iterable[str]) -> bool:
        """True when there are hosts and every one of them is behind."""
        hosts = list(hosts)
        return bool(hosts) and all(self.behind(h) for h in hosts)
