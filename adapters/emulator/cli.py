"""``vani emulate``: run the provider emulators on 127.0.0.1 and print the env to point vani at them."""

from __future__ import annotations

import argparse
import contextlib
import os

from vani.adapters.emulator.latency import Latency

SERVER_KW = {
    "ws": "websockets-sansio",
    "log_level": "warning",
    "access_log": False,
    "ws_ping_interval": None,
    "ws_per_message_deflate": False,
    "backlog": 4096,
    "timeout_keep_alive": 30,
    "timeout_graceful_shutdown": 5,  # SIGTERM ends it even with provider sockets still open
}


def env_for(base: str) -> dict[str, str]:
    """Settings and dummy credentials that route every remote provider to the emulator at ``base``."""
    return {
        "VANI_CF_BASE_URL": f"{base}/client/v4",
        "VANI_DEEPGRAM_BASE_URL": base,
        "VANI_OPENAI_BASE_URL": f"{base}/v1",
        "CF_ACCOUNT_ID": "emulated",
        "CF_API_TOKEN": "emulated-token",
        "DEEPGRAM_API_KEY": "emulated-key",
        "OPENAI_API_KEY": "emulated-key",
    }


def cmd_emulate(args: argparse.Namespace) -> int:
    """Serve the emulator app until Ctrl-C."""
    import uvicorn

    from vani.adapters.emulator.app import build_app

    host = getattr(args, "host", "127.0.0.1")
    port = int(getattr(args, "port", 8790))
    latency = Latency().override(os.environ.get("VANI_EMULATOR_LATENCY"))
    base = f"http://{host}:{port}"
    print(f"vani emulators on {base} (latency {latency})")
    print("point vani at them with:")
    for k, v in env_for(base).items():
        print(f"  export {k}={v}")
    # Several worker processes share the port (for load runs); the kernel spreads connections over them and
    # they share the scripts through one SQLite file in /dev/shm (see adapters/emulator/shared.py).
    workers = int(os.environ.get("VANI_EMULATOR_WORKERS", "1"))
    if workers > 1:
        from vani.adapters.emulator.shared import ENV, new_store_path

        mine = ENV not in os.environ  # a caller's own store file is the caller's to remove
        path = os.environ.setdefault(ENV, new_store_path())
        print(f"{workers} worker processes, scripts shared in {path}")
        try:
            uvicorn.run(
                "vani.adapters.emulator.app:app_from_env",
                factory=True,
                workers=workers,
                host=host,
                port=port,
                **SERVER_KW,
            )
        finally:
            for suffix in ("", "-wal", "-shm") if mine else ():
                with contextlib.suppress(OSError):
                    os.unlink(path + suffix)
    else:
        uvicorn.run(build_app(latency), host=host, port=port, **SERVER_KW)
    return 0
