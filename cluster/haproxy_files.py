"""Where a node's HAProxy keeps its files: a private directory per node, never Serve's shared default.

Serve's HAProxy mode puts every node's config, admin socket, server-state file and metrics socket at fixed
paths under ``/tmp/haproxy-serve/`` (its ``RAY_SERVE_HAPROXY_*`` variables). That directory is shared by
every Ray node on the machine and created world-readable by whoever comes first, which breaks two ways:

- Two nodes on one machine (a test cluster, or a second ``vani up``) overwrite each other's ``haproxy.cfg``
  and take over each other's admin socket: an HAProxy comes up with the other node's listeners and Serve's
  readiness check, which asks the admin socket for the running pid, hears the wrong HAProxy.
- Another local user who creates ``/tmp/haproxy-serve`` first controls the config file vani's HAProxy reads,
  and the admin socket (``level admin``) lets anyone who can reach it take servers in and out.

So each node's ``ray start`` names a directory of its own (mode 0700) through these variables: ``vani up``
makes one per run (and removes it on exit), ``deploy/ray-cluster.yaml`` uses ``~/.vani/haproxy``, and the
test cluster one per node. ``vani-haproxy`` also makes the admin socket mode 0600 (gateway/haproxy_bind.py).
"""

from __future__ import annotations

import os
import tempfile

# Serve's variable -> the file's name inside the node's directory (Serve adds a node-id level itself).
HAPROXY_FILES = {
    "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": ".",
    "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": "haproxy.cfg",
    "RAY_SERVE_HAPROXY_SOCKET_PATH": "admin.sock",
    "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": "server-state",
    "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": "metrics.sock",
}


def haproxy_files_env(directory: str) -> dict[str, str]:
    """The variables that put a node's HAProxy files in ``directory``."""
    return {key: os.path.normpath(os.path.join(directory, name)) for key, name in HAPROXY_FILES.items()}


def private_haproxy_dir() -> str:
    """A new directory only this user can enter (``mkdtemp`` makes it 0700 with an unguessable name)."""
    return tempfile.mkdtemp(prefix="vani-hap-")
