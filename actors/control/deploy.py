"""Starting and stopping an app's registry (and through it, its session hosts).

``cluster/run.py`` calls ``start_registry`` before it runs the gateway app and ``stop_registry`` after it
deleted it. Finding the running registry is ``handle.py`` (light: gateway replicas import it).
"""

from __future__ import annotations

from typing import Any

import ray

from vani.actors.control.handle import registry_handle
from vani.actors.control.placement import registry_name
from vani.actors.control.registry import Registry
from vani.actors.wire import link_auth
from vani.cluster.config import Settings


def start_registry(settings: Settings, timeout_s: float) -> Any:
    """Create the app's registry (or get the running one), start its hosts and wait until they listen."""
    registry = Registry.options(
        name=registry_name(settings.app_name),
        namespace=settings.namespace,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        max_concurrency=10000,
    ).remote(settings.to_dict(), link_auth.new_secret())  # ignored when the registry exists: it keeps its own
    ray.get(registry.start.remote(), timeout=timeout_s)
    return registry


def stop_registry(settings: Settings) -> None:
    """Kill the app's registry and every host it created (nothing to do when there is no registry)."""
    try:
        registry = registry_handle(settings)
    except ValueError:
        return
    ray.get(registry.shutdown.remote(), timeout=30)
    ray.kill(registry, no_restart=True)
