"""Ports for a Ray that vani starts: free ones, and Serve's fixed ones moved where no other Serve is.

Serve's HAProxy mode also runs a *fallback* Serve proxy on the head node, at a fixed port (8500, gRPC 9500),
bound with ``SO_REUSEPORT``. HAProxy sends a connection there when it holds every replica as down (a busy
box, a connect burst). Two Serves on one machine (two ``vani up``, a benchmark next to a test cluster) then
both listen on 8500 and the kernel splits the connections between them: a client of one deployment was
answered by the other's sessions. So a Ray that vani starts:

- binds Serve's proxies without ``SO_REUSEPORT`` (``SERVE_SOCKET_REUSE_PORT_ENABLED=0``): a port that is
  taken fails loudly (that proxy does not start) instead of silently sharing another deployment's traffic;
- puts the fallback proxy on free ports of its own, picked below the kernel's ephemeral range so no
  outgoing connection takes one between the pick and Serve's bind.

Ray's worker ports are 10002-19999 and Serve's replica ports start at 30000, so the picks are 20000-29999.
"""

from __future__ import annotations

import random
import socket

FALLBACK_PORT_VARS = ("RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT")
NO_SHARED_PORTS = {"SERVE_SOCKET_REUSE_PORT_ENABLED": "0"}
QUIET_RANGE = (20000, 29999)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, from the kernel's ephemeral range (fine for a listener bound right away)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def quiet_port(host: str = "127.0.0.1", attempts: int = 200) -> int:
    """A free port outside the ephemeral range: safe to pick now and bind later, in another process."""
    low, high = QUIET_RANGE
    for port in random.sample(range(low, high + 1), attempts):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {low}-{high} on {host}")


def serve_ports_env() -> dict[str, str]:
    """The variables for a Ray node that vani starts on this machine (set before it starts)."""
    return {**NO_SHARED_PORTS, **{var: str(quiet_port()) for var in FALLBACK_PORT_VARS}}
