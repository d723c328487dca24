"""The registry's parts that decide without Ray: load reports (admission by load) and the session table."""

from __future__ import annotations

from vani.actors.control.loads import LoadBook
from vani.actors.control.session_table import Entry, SessionTable
from vani.actors.session.loop_lag import stale_after_s


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_host_is_behind_when_its_lag_is_high_or_its_reports_stop() -> None:
    clock = Clock()
    loads = LoadBook(overload_lag_ms=500.0, now=clock)
    assert not loads.behind("h1") and loads.lag_ms("h1") is None  # just started: not reported yet
    loads.report("h1", 120.0)
    loads.report("h2", 800.0)
    assert not loads.behind("h1") and loads.behind("h2")
    assert loads.lag_ms("h2") == 800.0
    assert not loads.all_behind(["h1", "h2"]) and loads.all_behind(["h2"])
    assert not loads.all_behind([])  # no hosts is "no session hosts", not "overloaded"
    clock.t += stale_after_s(500.0) + 0.1  # h1's loop stopped reporting
    assert loads.behind("h1")
    loads.forget("h1")
    assert not loads.behind("h1") and loads.lag_ms("h1") is None


def test_admission_by_load_can_be_disabled() -> None:
    clock = Clock()
    loads = LoadBook(overload_lag_ms=0.0, now=clock)
    loads.report("h1", 10_000.0)
    clock.t += 3600
    assert not loads.behind("h1")


def test_the_table_counts_per_host_and_forgets_a_lost_host() -> None:
    table = SessionTable()
    for sid, host in (("a", "h1"), ("b", "h1"), ("c", "h2")):
        assert table.add(sid, Entry(host=host)).host == host
    assert len(table) == 3 and table.per_host() == {"h1": 2, "h2": 1}
    table.forget_host("h1")
    assert len(table) == 1 and table.get("a") is None and table.get("c") is not None
    assert table.pop("c") is not None and table.pop("c") is None
    assert table.per_host() == {}
