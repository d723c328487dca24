"""The Grafana dashboard (issue 14, item 4): every panel's query names metrics that vani exports
(``actors/metrics.CATALOG``, as Prometheus names them) or Ray's own per-process metrics, and only those.
A panel whose metric was renamed or removed fails here by name, not as an empty graph in production."""

from __future__ import annotations

import json
import os
import re

from vani.actors.metrics import CATALOG

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "vani-dashboard.json")
RAYS_OWN = {"ray_component_cpu_percentage"}  # Ray's per-process CPU (its default dashboards use it too)
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def exported() -> set[str]:
    """Every Prometheus series name vani's metrics produce."""
    return {f"ray_{name}{sfx}" for name, spec in CATALOG.items() for sfx in SUFFIXES[spec.kind]}


def unknown_metrics(dashboard: dict) -> list[str]:
    known = exported() | RAYS_OWN
    out = []
    for panel in dashboard["panels"]:
        if not panel.get("targets"):
            out.append(f"panel {panel['title']!r} has no query")
        for target in panel.get("targets", []):
            names = re.findall(r"\bray_[a-z0-9_]+", target["expr"])
            if not names:
                out.append(f"panel {panel['title']!r}: query {target['expr']!r} names no metric")
            out += [f"panel {panel['title']!r}: {n} is not exported" for n in names if n not in known]
    return out


def test_every_panel_queries_a_metric_vani_exports():
    with open(DASHBOARD) as fh:
        dashboard = json.load(fh)
    assert unknown_metrics(dashboard) == []
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("sessions", "turns per second", "barge-in", "errors", "cpu", "memory", "p95"):
        assert topic in titles, topic


def test_a_panel_naming_a_missing_metric_is_reported_by_name():
    broken = {"panels": [{"title": "Old", "targets": [{"expr": "rate(ray_vani_turns_total[1m])"}]}]}
    assert unknown_metrics(broken) == ["panel 'Old': ray_vani_turns_total is not exported"]


def test_every_declared_metric_is_on_the_dashboard():
    with open(DASHBOARD) as fh:
        text = fh.read()
    shown = {name for name in CATALOG if f"ray_{name}" in text}
    # the stage histograms not drawn are in the same family as the ones drawn (text / tool first token)
    assert set(CATALOG) - shown == {"vani_ttt_text_latency_s", "vani_ttt_tool_latency_s"}
