"""CPU of reading a chunked HTTP stream, httpx vs aiohttp (issue 12: why provider streams are read with aiohttp).

A local server (its own process) streams ``--streams`` concurrent responses of ``--chunks`` chunked-encoding
chunks of 1 920 bytes (40 ms of 24 kHz PCM16, the TTS emulator's chunk) a few ms apart; the client reads them
with each library, the way the adapters do (httpx ``aiter_raw``, aiohttp ``content.iter_any``), on uvloop.
Printed: the client process's CPU seconds and microseconds per chunk sent.

    python -m load.microbench_stream
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import time

CHUNK = 1920


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunks: int) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: audio/l16\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(chunks):
                writer.write(b"%x\r\n" % CHUNK + bytes(CHUNK) + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.002)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def _serve(port: int, chunks: int, ready: multiprocessing.Event) -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: _handle(r, w, chunks), "127.0.0.1", port)
        ready.set()
        await server.serve_forever()

    asyncio.run(main())


async def read_httpx(url: str, requests: int) -> int:
    import httpx

    got = 0
    async with httpx.AsyncClient() as client:
        for _ in range(requests):
            async with client.stream("POST", url, json={"text": "hi"}) as resp:
                async for chunk in resp.aiter_raw():
                    got += len(chunk)
    return got


async def read_aiohttp(url: str, requests: int) -> int:
    import aiohttp

    got = 0
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        for _ in range(requests):
            async with session.post(url, json={"text": "hi"}) as resp:
                async for chunk in resp.content.iter_any():
                    got += len(chunk)
    return got


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    import uvloop

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--requests", type=int, default=3, help="responses per stream, one after the other")
    ap.add_argument("--chunks", type=int, default=200)
    ap.add_argument("--port", type=int, default=18777)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(args.port, args.chunks, ready), daemon=True)
    server.start()
    ready.wait(10)
    url = f"http://127.0.0.1:{args.port}/speak"
    sent = args.streams * args.requests * args.chunks
    try:
        for _ in range(args.rounds):
            for name, reader in (("httpx", read_httpx), ("aiohttp", read_aiohttp)):
                c0, t0 = cpu_s(), time.monotonic()
                got = uvloop.run(_all(reader, url, args))
                cpu = cpu_s() - c0
                assert got == sent * CHUNK
                print(
                    f"{name:8s} client CPU {cpu:.2f} s for {sent} chunks: {cpu / sent * 1e6:.0f} us per chunk"
                    f" (wall {time.monotonic() - t0:.1f} s)"
                )
    finally:
        server.terminate()
        server.join(5)


async def _all(reader, url: str, args: argparse.Namespace) -> int:
    return sum(await asyncio.gather(*(reader(url, args.requests) for _ in range(args.streams))))


if __name__ == "__main__":
    main()
