"""How many sessions a node takes when they run on the embedded offline models (issue 15).

A cloud-provider session costs a host a few ms of CPU per second; a session on the embedded models
costs real inference (Silero VAD all the time, pocketsphinx while the user speaks, Smart Turn at each
pause, Whisper and Piper at each turn), all on the node's own cores. Past what the cores can do in real
time, every session on the node slows down together. So a node takes at most ``cap`` such sessions and
the next one is refused with 1013 ("try again later: the embedded models are at capacity"), which a
client can retry or send elsewhere; sessions already running are never touched.

``local_max_sessions_per_node`` sets ``cap``; 0 (the default) means ``SESSIONS_PER_CORE`` per CPU that
Ray gives the node, from ``load/bench_local.py --only-concurrency`` (load/README.md, "Several sessions
at once"). Echo apps and apps whose STT and TTS are both cloud providers have no cap here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from vani.cluster.config import Settings

SESSIONS_PER_CORE = 2
REASON = "try again later: the embedded models are at capacity"


def uses_local_models(settings: Settings) -> bool:
    return settings.session_mode != "echo" and "local" in (settings.stt_provider, settings.tts_provider)


def node_cap(settings: Settings, node_cpus: float) -> int | None:
    """Sessions one node takes, or None for no cap."""
    if not uses_local_models(settings):
        return None
    if settings.local_max_sessions_per_node > 0:
        return settings.local_max_sessions_per_node
    return max(1, int(node_cpus * SESSIONS_PER_CORE))


def full_nodes(settings: Settings, node_cpus: Mapping[str, float], sessions_per_node: Mapping[str, int]) -> set[str]:
    """The nodes that take no new session."""
    full = set()
    for node, cpus in node_cpus.items():
        cap = node_cap(settings, cpus)
        if cap is not None and sessions_per_node.get(node, 0) >= cap:
            full.add(node)
    return full


def total_cap(settings: Settings, node_cpus: Mapping[str, float]) -> int | None:
    """Sessions the whole cluster takes (``actor`` mode, where a session's node is Ray's choice)."""
    caps = [node_cap(settings, cpus) for cpus in node_cpus.values()]
    return None if not caps or caps[0] is None else sum(c or 0 for c in caps)


def per_node(host_of: Iterable[str], node_of: Mapping[str, str]) -> dict[str, int]:
    """Sessions per node, from each session's host."""
    counts: dict[str, int] = {}
    for host in host_of:
        node = node_of.get(host)
        if node is not None:
            counts[node] = counts.get(node, 0) + 1
    return counts
