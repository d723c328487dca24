"""The ``vani`` command line.

vani up [--address ADDR] [--port N]     start (or join) Ray, deploy, print URLs, stop on Ctrl-C
vani deploy --address ADDR              deploy onto a running cluster and return
vani status [--url URL] [--token KEY] [--sessions]  sessions, hosts, nodes (ids and usage with the API key)
vani talk --wav FILE [--url URL]        stream a WAV in real time, save what comes back
vani emulate [--port N]                 run the provider emulators on 127.0.0.1
vani providers check                    which providers are configured and whether they answer
vani sessions export ID --address ADDR [--stored]  write a session's event log (JSON lines) to a file
vani replay LOG [--set KEY=VALUE]       re-run a session from its event log; compare, or diff a change
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable


def _lazy(module: str, func: str) -> Callable[[argparse.Namespace], int]:
    # Subcommands import their module only when used: `vani talk` must not import Ray.
    def run(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(module), func)(args) or 0)

    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vani", description="Real-time voice-agent session service")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start Ray (or join --address), deploy the gateway, wait for Ctrl-C")
    up.add_argument("--address", default=None, help="existing Ray cluster address (default: start local)")
    up.add_argument("--host", default=None, help="HTTP host for the gateway (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=None, help="HTTP port for the gateway (default 8000)")
    up.add_argument(
        "--bind-host", default=None, help="node IP of the local Ray it starts, where Ray and session hosts listen"
    )
    up.add_argument("--mode", choices=["sharded", "actor"], default=None, help="session placement mode")
    up.add_argument("--no-dashboard", action="store_true", help="do not start the Ray dashboard")
    up.add_argument(
        "--ingress", choices=["haproxy", "proxy"], default=None, help="gateway path (default haproxy; see README)"
    )
    up.set_defaults(func=_lazy("vani.cluster.run", "cmd_up"))

    dep = sub.add_parser("deploy", help="deploy the gateway onto a running Ray cluster and exit")
    dep.add_argument("--address", required=True)
    dep.add_argument("--host", default=None)
    dep.add_argument("--port", type=int, default=None)
    dep.add_argument("--mode", choices=["sharded", "actor"], default=None)
    dep.set_defaults(func=_lazy("vani.cluster.run", "cmd_deploy"))

    st = sub.add_parser("status", help="sessions, hosts and nodes of a running deployment")
    st.add_argument("--url", default="http://127.0.0.1:8000", help="gateway base URL")
    st.add_argument("--json", action="store_true", help="print raw JSON")
    st.add_argument("--token", default=None, help="API key, if the server requires one (default: $VANI_API_KEY)")
    st.add_argument("--sessions", action="store_true", help="each session's usage too (needs the API key)")
    st.set_defaults(func=_lazy("vani.cluster.run", "cmd_status"))

    talk = sub.add_parser("talk", help="stream a WAV file in real time and save what comes back")
    talk.add_argument("--wav", required=True)
    talk.add_argument("--url", default="ws://127.0.0.1:8000", help="gateway base URL")
    talk.add_argument("--session", default=None, help="session id (default: random)")
    talk.add_argument("--out", default=None, help="output WAV (default: <wav>.reply.wav)")
    talk.add_argument("--frame-ms", type=int, default=80)
    talk.add_argument("--tail-s", type=float, default=1.5, help="keep listening this long after sending")
    talk.add_argument("--token", default=None, help="API key, if the server requires one")
    talk.set_defaults(func=_lazy("vani.client.talk", "cmd_talk"))

    emu = sub.add_parser("emulate", help="run the provider emulators on 127.0.0.1")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=8790)
    emu.set_defaults(func=_lazy("vani.adapters.emulator.cli", "cmd_emulate"))

    prov = sub.add_parser("providers", help="provider configuration")
    prov_sub = prov.add_subparsers(dest="providers_command", required=True)
    chk = prov_sub.add_parser("check", help="which providers are configured and whether they answer")
    chk.add_argument("--timeout", type=float, default=5.0)
    chk.set_defaults(func=_lazy("vani.adapters.check", "cmd_check"))

    sessions = sub.add_parser("sessions", help="sessions of a running deployment")
    sessions_sub = sessions.add_subparsers(dest="sessions_command", required=True)
    export = sessions_sub.add_parser("export", help="write a live session's event log to a file")
    export.add_argument("session_id")
    export.add_argument("--address", default="auto", help="the Ray cluster (Ray's own authentication applies)")
    export.add_argument("--app", default="vani", help="the Serve app (app_name) the session belongs to")
    export.add_argument("--namespace", default="vani")
    export.add_argument("-o", "--output", help="the file (default: <session_id>.events.jsonl)")
    export.add_argument(
        "--stored", action="store_true", help="the log's runs from the session store (also after a host crash)"
    )
    export.set_defaults(func=_lazy("vani.cluster.session_export", "cmd_export"))

    rep = sub.add_parser("replay", help="re-run a session's engine from its event log, no providers")
    rep.add_argument("log", help="an event log file (vani sessions export)")
    rep.add_argument(
        "--set",
        dest="changes",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="replay with a changed setting and print the diff of outputs (repeatable)",
    )
    rep.add_argument("--tolerance-ms", type=float, default=50.0, help="measured times may differ this much")
    rep.set_defaults(func=_lazy("vani.actors.replay.cli", "cmd_replay"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
