"""Finding an app's running registry, and what the data plane asks of it once: the link secret.

Kept apart from ``registry.py`` and ``deploy.py`` so that a gateway replica does not import the session
host (and with it the whole conversation stack) only to look the registry up.
"""

from __future__ import annotations

from typing import Any

import ray

from vani.actors.control.placement import registry_name
from vani.cluster.config import Settings


def registry_handle(settings: Settings) -> Any:
    """The running registry of ``settings.app_name`` (``ValueError`` when there is none)."""
    return ray.get_actor(registry_name(settings.app_name), namespace=settings.namespace)


_SECRETS: dict[int, tuple[Any, bytes]] = {}  # id(registry handle) -> (handle, its link secret), per process


async def link_secret(registry: Any) -> bytes:
    """The deployment's link secret, asked of the registry once per process (a Ray call, never a URL)."""
    known = _SECRETS.get(id(registry))
    if known is None or known[0] is not registry:
        known = (registry, await registry.link_secret.remote())
        _SECRETS[id(registry)] = known
    return known[1]
