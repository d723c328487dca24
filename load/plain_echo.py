"""The baseline: a bare ``websockets`` echo server (no Serve, no Ray), run as its own process.

.venv/bin/python -m load.plain_echo --port 8765
"""

from __future__ import annotations

import argparse
import asyncio

from websockets.asyncio.server import ServerConnection, serve


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def _main(host: str, port: int) -> None:
    async with serve(_echo, host, port, max_size=1 << 20, compression=None) as server:
        print(f"plain echo on ws://{host}:{port}", flush=True)
        await server.serve_forever()


def main() -> None:
    """Serve an echo websocket on ``--host``/``--port`` until killed."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    asyncio.run(_main(args.host, args.port))


if __name__ == "__main__":
    main()
