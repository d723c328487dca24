"""Admission for sessions on the embedded models (issue 15): the node cap, decided without Ray."""

from __future__ import annotations

from vani.actors.control import local_capacity as lc
from vani.cluster.config import Settings


def settings(**kw) -> Settings:
    return Settings.load(env={}, **kw)


def test_the_default_cap_is_two_sessions_per_core_for_apps_on_the_embedded_models() -> None:
    s = settings()  # vani up's default: an agent on the local models
    assert lc.uses_local_models(s)
    assert lc.node_cap(s, 2.0) == 4 and lc.node_cap(s, 8.0) == 16 and lc.node_cap(s, 0.5) == 1


def test_an_explicit_cap_wins_and_cloud_or_echo_apps_have_none() -> None:
    assert lc.node_cap(settings(local_max_sessions_per_node=3), 2.0) == 3
    assert lc.node_cap(settings(session_mode="echo"), 2.0) is None
    cloud = settings(stt_provider="deepgram", llm_provider="openai", tts_provider="deepgram")
    assert lc.node_cap(cloud, 2.0) is None
    assert lc.node_cap(settings(stt_provider="deepgram", tts_provider="local"), 2.0) == 4  # Piper still runs here


def test_full_nodes_and_the_cluster_total() -> None:
    s = settings(local_max_sessions_per_node=2)
    nodes = {"n1": 2.0, "n2": 2.0}
    counts = lc.per_node(["h1", "h1", "h2", "gone"], {"h1": "n1", "h2": "n2"})
    assert counts == {"n1": 2, "n2": 1}  # a session on a host no longer known counts nowhere
    assert lc.full_nodes(s, nodes, counts) == {"n1"}
    assert lc.total_cap(s, nodes) == 4
    assert lc.full_nodes(settings(session_mode="echo"), nodes, {"n1": 99}) == set()
    assert lc.total_cap(settings(session_mode="echo"), nodes) is None
